"""The scene a run trains and evaluates on: a Blender scene under the data root, or any format
`fields convert` reads (`TrainConfig.data`), at the run's resolution."""

from __future__ import annotations

from pathlib import Path

import torch

from ..datasets import Capture, SceneData, load_blender_scene, load_dataset, read_capture, resolve_scene_dir
from ..datasets.capture import choose_downscale
from .config import TrainConfig
from .devices import resolve_device


def _source(config: TrainConfig, data_root: str | None) -> tuple[Path, str | None]:
    """The path to read and its format (None: detected)."""
    if config.data is not None:
        return Path(config.data).expanduser(), None
    return resolve_scene_dir(config.scene, data_root or config.data_root), "blender"


def load_scene(config: TrainConfig, split: str, data_root: str | None = None) -> SceneData:
    """A split of the run's scene; `data_root` overrides the one the run was trained with.

    With `config.data` set, the scene is read from that path in any format `fields convert` reads, as the
    config's scene_type. A config without a downscale factor (None) is read at the factor chosen by size (see
    resolve_downscale; `train` records the factor in the run's config).
    """
    downscale = config.downscale or scene_downscale(config, data_root)
    path, fmt = _source(config, data_root)
    if fmt == "blender" and config.scene_type == "auto":
        return load_blender_scene(path, split, downscale)
    return load_dataset(path, split, downscale, fmt, scene_type=config.scene_type)


def run_capture(config: TrainConfig, data_root: str | None = None) -> Capture:
    """The run's capture as read for training (poses only): its normalisation maps capture -> scene coordinates
    (the identity for Blender scenes), ndc_near marks a forward-facing scene rendered in NDC."""
    path, fmt = _source(config, data_root)
    return read_capture(path, fmt, scene_type=config.scene_type)


def scene_downscale(config: TrainConfig, data_root: str | None = None) -> int:
    """The factor chosen by size for the config's scene on its device (see datasets.capture.choose_downscale)."""
    capture = run_capture(config, data_root)
    return choose_downscale(capture.width, capture.height, resolve_device(config.device).type)


def resolve_downscale(config: TrainConfig) -> bool:
    """Record the factor chosen by size in a config that has none; True when it was chosen so."""
    if config.downscale is not None:
        return False
    config.downscale = scene_downscale(config)
    return True


def resolution_line(scene: SceneData, downscale: int, chosen: bool) -> str:
    """e.g. 'training at 360x640 (downscale 2, chosen by size; --downscale to override)'; images of several sizes:
    'training at 2 sizes up to 360x640 (...)'."""
    how = "chosen by size; --downscale to override" if chosen else "given by --downscale"
    sizes = scene.cameras.sizes
    several = f"{len(torch.unique(sizes, dim=0))} sizes up to " if sizes is not None else ""
    return f"training at {several}{scene.cameras.width}x{scene.cameras.height} (downscale {downscale}, {how})"
