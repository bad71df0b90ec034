"""Cameras, images, rays and the capture formats. Imports nothing else of the toolkit."""

from .blender import load_blender_scene
from .cameras import Cameras, NDCFrame, RayBundle
from .capture import Capture, Normalization, capture_scene
from .data_root import resolve_scene_dir
from .dataset_error import DatasetError
from .formats import FORMATS, detect_format, load_dataset, read_capture
from .procedural import make_procedural_scene, write_blender_scene
from .scene import SceneData, composite_over

__all__ = [
    "FORMATS",
    "Cameras",
    "NDCFrame",
    "Capture",
    "DatasetError",
    "Normalization",
    "RayBundle",
    "SceneData",
    "capture_scene",
    "composite_over",
    "detect_format",
    "load_blender_scene",
    "load_dataset",
    "make_procedural_scene",
    "read_capture",
    "resolve_scene_dir",
    "write_blender_scene",
]
