"""What several commands share: the device, data-root, thread, logger and --check-sync options (declared once,
by TrainConfig's fields), the viewer's address, and one-line warnings."""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from dataclasses import dataclass

from ..engine.config import TrainConfig
from .options import add_options

SHARED = ("device", "data_root", "threads", "logger", "check_sync")
RUN_FOLDER = {"positional": True, "help": "run folder (of `fields train` or `fields distill`)"}


@dataclass
class ViewerAddress:
    """Where the viewer serves: `fields view --host --port`, `fields train --view-host --view-port`."""
    host: str = "127.0.0.1"  # interface to bind (127.0.0.1: this machine only)
    port: int = dataclasses.field(default=8080, metadata={"min": 1})  # port (the next free one if taken)


def add_shared(parser, *names: str, help: dict[str, str] | None = None) -> None:
    """Add the shared options `names` (of SHARED), as TrainConfig declares them; `help` replaces their text."""
    add_options(parser, TrainConfig, only=names, overrides={k: {"help": v} for k, v in (help or {}).items()})


def shared(args: argparse.Namespace) -> dict:
    """The shared options' values: given, else TrainConfig's defaults."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in SHARED}
    return {name: getattr(args, name, default) for name, default in defaults.items()}


def set_threads(args: argparse.Namespace) -> None:
    """Use --threads CPU threads in PyTorch, when given."""
    threads = shared(args)["threads"]
    if threads:
        import torch

        torch.set_num_threads(threads)


def one_line_warnings() -> None:
    warnings.formatwarning = lambda message, *args, **kwargs: f"fields: warning: {message}\n"
