"""Files a capture names stay inside it: every path is resolved (symlinks followed) and must lie in the
capture folder or in a folder the user allowed explicitly (`fields convert --images DIR`)."""

from __future__ import annotations

import os
from pathlib import Path

from .dataset_error import DatasetError

ALLOW_HINT = "copy the file into the capture, or allow its folder explicitly with `fields convert --images DIR`"


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def capture_file(root: Path, named: str | Path, origin: Path | str, field: str,
                 allowed: tuple[Path, ...] = (), base: Path | None = None) -> Path:
    """`base / named` (base: default root; named may be absolute), refused unless it resolves inside root or
    `allowed`.

    origin: the file that names it and field: where it does (e.g. "frames[3].file_path"), for the message.
    The path is returned unresolved, so messages and output names keep the capture's own names.
    """
    path = Path(base or root) / named
    try:
        real = _real(path)
        roots = [_real(Path(r)) for r in (root, *allowed)]
    except (ValueError, OSError) as err:  # NUL bytes, over-long names
        raise DatasetError(origin, f"{field} {str(named)!r} is not a usable path ({err})") from None
    if any(_inside(real, r) for r in roots):
        return path
    via = "" if real == Path(os.path.abspath(path)) else f", which resolves to {real},"
    raise DatasetError(origin, f"{field} {str(named)!r}{via} lies outside the capture folder {root}: {ALLOW_HINT}")


def capture_files(root: Path, paths: list[Path], origin: Path | str, allowed: tuple[Path, ...] = ()) -> list[Path]:
    """Files found by listing a folder of the capture (LLFF images/, an image folder): the same rule per file."""
    return [capture_file(root, p.name, origin, "image", allowed, base=p.parent) for p in paths]
