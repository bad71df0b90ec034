"""`fields` command line: a thin layer over functions you can call from Python; one module per subcommand
in nfields/commands (`add_parser`, `run`)."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version

from .commands import convert, distill, doctor, download, evaluate, export, fit, render, train, triplanes, view
from .engine.distributed import failure_summary, launch_rank, launched_ranks, leave, lost_contact
from .errors import FieldsError
from .interrupts import sigterm_as_interrupt

COMMANDS = (train, convert, evaluate, render, export, view, download, doctor, fit, distill, triplanes)


class Parser(argparse.ArgumentParser):
    """Usage errors in one line, naming the flag, instead of the whole usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    import shtab

    parser = Parser(prog="fields", description="Neural fields: train, evaluate, render.")
    parser.add_argument("--version", action="version", version=f"fields {version('nfields')}")
    shtab.add_argument_to(parser, ["--print-completion"], help="print a shell completion script (bash, zsh, tcsh)")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .datasets import DatasetError
    from .datasets.ingest.download import DownloadError

    args = build_parser().parse_args(argv)
    # under torchrun, errors name the rank that met them
    who = f"fields {args.command}" + (f" (rank {launch_rank()})" if launched_ranks() > 1 else "")
    try:
        with sigterm_as_interrupt():  # `kill` cleans up like Ctrl-C: checkpoints saved, partial folders removed
            return args.handler(args)
    except KeyboardInterrupt:
        print(f"{who}: interrupted", file=sys.stderr)
        return 130
    except (FieldsError, DatasetError, DownloadError) as err:
        print(f"{who}: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # a collective failed outside training (e.g. the final evaluation)
        if launched_ranks() <= 1 or not lost_contact(err):
            raise
        print(f"{who}: error: lost contact with the other ranks (one died or was stopped: {failure_summary(err)})",
              file=sys.stderr)
        return 1
    finally:
        leave()


if __name__ == "__main__":
    sys.exit(main())
