"""A field and its volume renderer, built from a run's configuration."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..errors import FieldsError
from ..fields import Field, UnknownFieldError, build_field, default_preset
from ..fields.base import SavedConfigError
from ..renderers import VolumeRenderer
from .config import TrainConfig


def make_model(field_name: str, aabb: torch.Tensor, near: float, config: TrainConfig, device: torch.device,
               field_config: dict | None = None, unbounded: bool = False,
               checkpoint: Path | None = None) -> tuple[Field, VolumeRenderer]:
    """A field and its renderer over `aabb` (6,). An unbounded scene gets a contracting field and the
    renderer's cascaded grids and cone step (config.cascades, config.cone_angle). checkpoint: the file
    `field_config` was saved in (named by its errors)."""
    try:
        preset = config.preset or default_preset(field_name, device.type)
        field = build_field(field_name, aabb, preset=preset, config=field_config, unbounded=unbounded)
    except UnknownFieldError as err:
        raise FieldsError(f"--field / --preset: {err}") from None
    except SavedConfigError as err:
        raise FieldsError(f"{checkpoint or 'checkpoint'}: {err}") from None
    cone_angle, steps_per_diagonal = config.marching(device.type)
    diagonal = math.sqrt(3) * float((aabb[3:] - aabb[:3]).max())
    culling = {}
    if unbounded:
        alpha, early_stop, occupancy, weight = config.render_culling(device.type)
        culling = dict(alpha_threshold=config.alpha_threshold, alpha_warmup=config.alpha_warmup,
                       render_alpha_threshold=alpha,
                       render_early_stop_eps=early_stop, render_occupancy_threshold=occupancy,
                       render_weight_threshold=weight)
    renderer = VolumeRenderer(aabb, near=near, grid_resolution=config.grid_cells(unbounded, device.type),
                              occupancy_threshold=config.grid_threshold(unbounded, device.type),
                              cascades=config.cascades if unbounded else 1,
                              step_size=diagonal / steps_per_diagonal if unbounded else None,
                              cone_angle=cone_angle if unbounded else 0.0, **culling)
    return field.to(device), renderer.to(device)
