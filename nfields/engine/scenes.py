"""The scene a run trains and evaluates on: a Blender scene under the data root, or any format
`fields convert` reads (`TrainConfig.data`)."""

from __future__ import annotations

from pathlib import Path

from ..datasets import SceneData, load_blender_scene, load_dataset, resolve_scene_dir
from .config import TrainConfig


def load_scene(config: TrainConfig, split: str, data_root: str | None = None) -> SceneData:
    """A split of the run's scene; `data_root` overrides the one the run was trained with.

    With `config.data` set, the scene is read from that path in any format `fields convert` reads.
    """
    if config.data is not None:
        return load_dataset(Path(config.data).expanduser(), split, config.downscale)
    return load_blender_scene(resolve_scene_dir(config.scene, data_root or config.data_root), split, config.downscale)
