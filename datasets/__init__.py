"""Cameras, images and rays. Imports nothing else of the toolkit."""

from .blender import load_blender_scene
from .cameras import Cameras, RayBundle
from .data_root import resolve_scene_dir
from .errors import DatasetError
from .procedural import make_procedural_scene, write_blender_scene
from .scene import SceneData, composite_over

__all__ = [
    "Cameras",
    "DatasetError",
    "RayBundle",
    "SceneData",
    "composite_over",
    "load_blender_scene",
    "make_procedural_scene",
    "resolve_scene_dir",
    "write_blender_scene",
]
