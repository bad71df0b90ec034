"""Run logs beside history.json: tensorboard event files (the default), Weights & Biases when installed and
asked for, or none. `make_logger(kind, folder)` gives one; every writer of curves (training, distillation,
tri-plane fitting and classifier training) writes through the same three calls.

Event files go into the run folder itself, so `tensorboard --logdir runs` lists each run by its folder name.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..errors import FieldsError

LOGGERS = ("tensorboard", "wandb", "none")


class RunLogger:
    """Curves and pictures of one run; this base class writes nothing (`--logger none`)."""

    keeps_pictures = False  # whether `image` stores anything: no picture is rendered for a logger that drops it

    def scalars(self, values: dict[str, float], step: int) -> None:
        """Scalars by tag, e.g. {"train/loss": 0.01, "lr/features": 1e-2}, at `step`."""

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """An RGB picture (H, W, 3), uint8, at `step`."""

    def close(self) -> None:
        """Flush and close the files (the run may reopen its folder later, e.g. on resume)."""


class TensorboardLogger(RunLogger):
    """tensorboard's own event-file writer (torch.utils.tensorboard), in `folder`."""

    keeps_pictures = True

    def __init__(self, folder: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder), flush_secs=30)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


class WandbLogger(RunLogger):
    """Weights & Biases (optional, off by default): only when `--logger wandb` is asked for, so only then does
    anything reach the network; WANDB_MODE=offline keeps it on disk."""

    keeps_pictures = True

    def __init__(self, folder: Path, config: dict | None):
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project="fields", name=folder.name, dir=str(folder), config=config or {},
                              resume="allow", id=folder.name.replace("/", "-"))

    def scalars(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        self.run.log({tag: self.wandb.Image(image)}, step=step)

    def close(self) -> None:
        self.run.finish()


def make_logger(kind: str, folder: Path, config: dict | None = None) -> RunLogger:
    """The logger named `kind` (one of LOGGERS) writing into `folder`; `config` is what wandb records."""
    if kind == "none":
        return RunLogger()
    if kind == "tensorboard":
        if importlib.util.find_spec("tensorboard") is None:
            raise FieldsError("--logger tensorboard: the tensorboard package is missing (pip install tensorboard), "
                              "or pass --logger none")
        return TensorboardLogger(folder)
    if kind == "wandb":
        if importlib.util.find_spec("wandb") is None:
            raise FieldsError("--logger wandb: Weights & Biases is not installed (pip install wandb); "
                              "it is optional, the default is --logger tensorboard")
        return WandbLogger(folder, config)
    raise FieldsError(f"--logger must be one of {', '.join(LOGGERS)}, got '{kind}'")
