"""Run folders: config.json, checkpoint.pt, metrics and renders of one training run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import load_checkpoint
from .config import TrainConfig
from .datasets import SceneData, load_blender_scene, load_dataset, resolve_scene_dir
from .errors import FieldsError
from .fields import Field, UnknownFieldError, build_field, default_preset
from .renderers import VolumeRenderer

CONFIG_NAME = "config.json"
CHECKPOINT_NAME = "checkpoint.pt"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FieldsError("--device cuda: no CUDA device is available to PyTorch (torch.cuda.is_available() is False)")
    return torch.device(name)


def load_scene(config: TrainConfig, split: str, data_root: str | None = None) -> SceneData:
    """A split of the run's scene; `data_root` overrides the one the run was trained with.

    With `config.data` set, the scene is read from that path in any format `fields convert` reads.
    """
    if config.data is not None:
        return load_dataset(Path(config.data).expanduser(), split, config.downscale)
    return load_blender_scene(resolve_scene_dir(config.scene, data_root or config.data_root), split, config.downscale)


def make_model(field_name: str, aabb: torch.Tensor, near: float, config: TrainConfig, device: torch.device,
               field_config: dict | None = None, unbounded: bool = False) -> tuple[Field, VolumeRenderer]:
    """A field and its renderer over `aabb` (6,). An unbounded scene gets a contracting field and the
    renderer's cascaded grids and cone step (config.cascades, config.cone_angle)."""
    try:
        preset = config.preset or default_preset(field_name, device.type)
        field = build_field(field_name, aabb, preset=preset, config=field_config, unbounded=unbounded)
    except UnknownFieldError as err:
        raise FieldsError(f"--field / --preset: {err}") from None
    renderer = VolumeRenderer(aabb, near=near, grid_resolution=config.grid_resolution,
                              cascades=config.cascades if unbounded else 1,
                              cone_angle=config.cone_angle if unbounded else 0.0)
    return field.to(device), renderer.to(device)


@dataclass
class LoadedRun:
    folder: Path
    config: TrainConfig
    field: Field
    renderer: VolumeRenderer
    checkpoint: dict


def load_run(folder: str | Path, device: str = "auto", checkpoint: str = CHECKPOINT_NAME) -> LoadedRun:
    """Load a trained run for evaluation or rendering (`checkpoint`: e.g. a snapshot's file name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FieldsError(f"{folder}: run folder does not exist")
    config = TrainConfig.load(folder / CONFIG_NAME)
    state = load_checkpoint(folder / checkpoint)
    dev = resolve_device(device)
    aabb = state["renderer"]["aabb"]
    field, renderer = make_model(state["field_name"], aabb, state.get("near", 0.0), config, dev,
                                 field_config=state["field_config"], unbounded=state.get("unbounded", False))
    try:
        field.load_state_dict(state["field"])
        renderer.load_state_dict(state["renderer"])
    except RuntimeError as err:
        raise FieldsError(f"{folder / checkpoint}: tensors do not match the '{state['field_name']}' "
                          f"field's configuration ({str(err).splitlines()[0]})") from None
    field.eval()
    renderer.eval()
    return LoadedRun(folder, config, field, renderer, state)
