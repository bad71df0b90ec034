"""What a training run writes to its logger (tensorboard by default, see loggers.py): the step's scalars every
`log_every` steps, the quick validation's PSNR, and a validation picture (prediction | truth | depth) every
`log_images_every` seconds of training. The distiller adds its own scalars through `Trainer.log_scalars`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field as dataclass_field

import torch

from ..datasets import SceneData
from .evaluation import WHITE, render_view
from .loggers import RunLogger
from .pictures import prediction_truth_depth

PICTURE_LONG_SIDE = 400  # validation pictures are rendered at most this many pixels along their long side


@dataclass
class StepFigures:
    """What one training step measured."""

    loss: float
    batch_mse: float  # of the batch's colours against their targets (the progress bar's PSNR)
    rays: int
    samples: int  # that reached the field
    seconds: float = dataclass_field(default=0.0, compare=False)  # the step's wall-clock time

    @property
    def batch_psnr(self) -> float:
        return -10 * math.log10(max(self.batch_mse, 1e-10))


def learning_rates(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """{"lr/<group name>": rate} for every parameter group (unnamed groups by their index)."""
    return {f"lr/{group.get('name', f'group {i}')}": group["lr"] for i, group in enumerate(optimizer.param_groups)}


def step_scalars(figures: StepFigures, occupied_fraction: float) -> dict[str, float]:
    """The scalars of one step: loss, batch PSNR, speed (rays/s, step time), samples per step and per ray, and
    the share of occupied grid cells."""
    return {
        "train/loss": figures.loss,
        "train/batch_psnr": figures.batch_psnr,
        "speed/rays_per_second": figures.rays / max(figures.seconds, 1e-9),
        "speed/step_seconds": figures.seconds,
        "samples/per_step": float(figures.samples),
        "samples/per_ray": figures.samples / max(figures.rays, 1),
        "occupancy/fraction": occupied_fraction,
    }


def validation_picture(field, renderer, scene: SceneData, index: int = 0):
    """View `index` of `scene` rendered at most PICTURE_LONG_SIDE pixels wide or high, beside its photo and its
    depth: (H, 3W, 3) uint8."""
    scale = min(1.0, PICTURE_LONG_SIDE / max(scene.cameras.width, scene.cameras.height))
    cameras = scene.cameras.resized(round(scene.cameras.width * scale))
    view = render_view(field, renderer, cameras, index)
    truth = scene.image(index, WHITE)
    if cameras is not scene.cameras:
        truth = torch.nn.functional.interpolate(truth.permute(2, 0, 1)[None], size=view["rgb"].shape[:2],
                                                mode="area")[0].permute(1, 2, 0)
    return prediction_truth_depth(view, truth)


class TrainingLog:
    """Writes a run's curves and pictures through `logger`, on the steps and times they are due."""

    def __init__(self, logger: RunLogger, every: int, picture_every: float, last_picture: float = 0.0):
        self.logger, self.every, self.picture_every = logger, every, picture_every
        self.last_picture = last_picture

    def after_step(self, trainer, figures: StepFigures) -> None:
        """Every `every` steps: the step's scalars, the learning rates and the trainer's own (`log_scalars`)."""
        if trainer.step % self.every:
            return
        values = step_scalars(figures, trainer.renderer.occupancy.occupied_fraction())
        values |= learning_rates(trainer.optimizer) | trainer.log_scalars()
        self.logger.scalars(values, trainer.step)

    def after_validation(self, trainer, val_psnr: float | None) -> None:
        """The quick validation's PSNR; the validation picture when one is due."""
        if val_psnr is not None:
            self.logger.scalars({"val/psnr": val_psnr}, trainer.step)
        if (self.logger.keeps_pictures and trainer.val_scene is not None
                and trainer.train_seconds - self.last_picture >= self.picture_every):
            self.last_picture = trainer.train_seconds
            trainer.field.eval()
            with torch.no_grad():
                picture = validation_picture(trainer.field, trainer.renderer, trainer.val_scene)
            trainer.field.train()
            self.logger.image("val/prediction_truth_depth", picture, trainer.step)

    def final(self, trainer, metrics: dict) -> None:
        """The final evaluation's scores (PSNR, SSIM, LPIPS when scored)."""
        scores = {f"final/{name}": metrics[name] for name in ("psnr", "ssim", "lpips") if metrics.get(name) is not None}
        self.logger.scalars(scores, trainer.step)

    def close(self) -> None:
        self.logger.close()
