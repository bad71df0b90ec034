"""Command-line options generated from dataclasses: each field once, with its type, default and help.

A field's help is `metadata["help"]`, else its trailing `#` comment in the class source, else the comment
block just above it. Other metadata: `choices`, `min` (the smallest accepted number), `metavar`, `flag` (the
option's name), `positional`. Defaults are `argparse.SUPPRESS`, so the namespace holds only what was given;
`given` reads it back and `defaults | file | given` builds the dataclass.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import tokenize
import types
import typing
from functools import cache


def add_options(parser, cls: type, *, only: tuple[str, ...] | None = None, exclude: tuple[str, ...] = (),
                prefix: str = "", overrides: dict[str, dict] | None = None) -> None:
    """Add one argparse option per field of dataclass `cls` (or of the fields named in `only`).

    prefix: flags and dests become --PREFIX-NAME / PREFIX_NAME. overrides: argparse keywords per field name
    (`help`, `type`, `metavar`, `required`, ...) replacing the generated ones."""
    comments = field_comments(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if (only is not None and f.name not in only) or f.name in exclude:
            continue
        name = f"{prefix}_{f.name}" if prefix else f.name
        kwargs = _argument(hints[f.name], f.metadata)
        default = _default(f)
        text = f.metadata.get("help", comments.get(f.name, ""))
        kwargs.update((overrides or {}).get(f.name, {}))
        text = kwargs.pop("help", text).replace("%", "%%")
        if default is not dataclasses.MISSING and kwargs.get("action") != "store_true":
            text = f"{text} (default: {_shown(default)})".strip()
        if f.metadata.get("positional"):
            parser.add_argument(name, help=text, **kwargs)
            continue
        flag = f.metadata.get("flag", "--" + name.replace("_", "-"))
        kwargs.setdefault("required", default is dataclasses.MISSING)
        parser.add_argument(flag, dest=name, default=argparse.SUPPRESS, help=text, **kwargs)


def given(args: argparse.Namespace, cls: type, prefix: str = "") -> dict:
    """The fields of `cls` given on the command line (tuples for tuple-typed fields)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        name = f"{prefix}_{f.name}" if prefix else f.name
        if hasattr(args, name):
            value = getattr(args, name)
            values[f.name] = tuple(value) if _origin(hints[f.name]) is tuple and value is not None else value
    return values


def build(cls: type, args: argparse.Namespace, base: dict | None = None, prefix: str = ""):
    """`cls` from its defaults, then `base` (e.g. a config file's fields), then the flags given."""
    return cls(**{**(base or {}), **given(args, cls, prefix)})


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _shown(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) if value else "none"
    return str(value)


def _origin(hint):
    return typing.get_origin(hint)


def _argument(hint, metadata) -> dict:
    """argparse keywords (type, nargs, choices, action, metavar) for a field's type hint."""
    optional = False
    if _origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional, hint = len(args) < len(typing.get_args(hint)), args[0]
    kwargs = {"metavar": metadata["metavar"]} if "metavar" in metadata else {}
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    element, origin = hint, _origin(hint)
    if origin in (list, tuple):
        items = typing.get_args(hint)
        element = items[0]
        fixed = origin is tuple and Ellipsis not in items
        kwargs["nargs"] = len(items) if fixed else "*"
    if _origin(element) is typing.Literal:
        kwargs["choices"] = list(typing.get_args(element))
        element = type(kwargs["choices"][0])
    if "choices" in metadata:
        kwargs["choices"] = list(metadata["choices"])
    kwargs["type"] = _converter(element, metadata.get("min"), optional and element is not str)
    kwargs.setdefault("metavar", None if "choices" in kwargs else element.__name__.upper())
    return kwargs


def _converter(kind: type, minimum, none_allowed: bool):
    """Text -> `kind`; 'none' -> None when `none_allowed`; numbers below `minimum` rejected (naming the flag)."""
    def convert(text: str):
        if none_allowed and text.lower() == "none":
            return None
        value = kind(text)
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return value

    convert.__name__ = kind.__name__  # argparse's "invalid int value: 'x'"
    return convert


@cache
def field_comments(cls: type) -> dict[str, str]:
    """Field name -> its trailing `#` comment, else the comment lines just above it, from the class source."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    comments, block, statement, body_column = {}, [], [], None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        kind, text = token.type, token.string
        if kind in (tokenize.INDENT, tokenize.DEDENT):
            continue
        if kind == tokenize.NEWLINE:
            statement = []
        elif kind == tokenize.COMMENT:
            field = _field_of(statement, names, body_column)
            if field:
                comments[field] = _text(text)
            elif not statement:
                block.append(_text(text))
        elif kind == tokenize.NL:
            if not statement and not token.line.strip():
                block = []  # a blank line ends a comment block
        else:
            if not statement and token.start[1] > 0 and body_column is None:
                body_column = token.start[1]
            statement.append(token)
            field = _field_of(statement, names, body_column) if len(statement) == 2 else None
            if field and block:
                comments[field] = " ".join(block)
            if len(statement) == 2:
                block = []
    return comments


def _text(comment: str) -> str:
    return comment.lstrip("#").strip().removesuffix(".")


def _field_of(statement: list, names: set[str], body_column: int | None) -> str | None:
    """The field declared by a statement's first tokens (`name: ...` at the class body's indent), if any."""
    if len(statement) < 2 or statement[0].start[1] != body_column or statement[1].string != ":":
        return None
    return statement[0].string if statement[0].string in names else None
