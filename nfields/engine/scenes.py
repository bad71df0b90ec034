"""The scene a run trains and evaluates on: a Blender scene under the data root, or any format
`fields convert` reads (`TrainConfig.data`)."""

from __future__ import annotations

from pathlib import Path

from ..datasets import SceneData, load_blender_scene, load_dataset, resolve_scene_dir
from .config import TrainConfig


def _source(config: TrainConfig, data_root: str | None) -> tuple[Path, str | None]:
    """The path to read and its format (None: detected)."""
    if config.data is not None:
        return Path(config.data).expanduser(), None
    return resolve_scene_dir(config.scene, data_root or config.data_root), "blender"


def load_scene(config: TrainConfig, split: str, data_root: str | None = None) -> SceneData:
    """A split of the run's scene; `data_root` overrides the one the run was trained with.

    With `config.data` set, the scene is read from that path in any format `fields convert` reads, as the
    config's scene_type.
    """
    path, fmt = _source(config, data_root)
    if fmt == "blender" and config.scene_type == "auto":
        return load_blender_scene(path, split, config.downscale)
    return load_dataset(path, split, config.downscale, fmt, scene_type=config.scene_type)
