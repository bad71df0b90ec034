"""NeRF-Synthetic (Blender) scenes: `transforms_{split}.json` plus RGBA PNGs, OpenGL cameras."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from .cameras import Cameras
from .errors import DatasetError
from .scene import SceneData

# nerfacc and TensoRF bound Blender scenes by +-1.5 and start rays at 2 units from the camera.
BLENDER_AABB = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)
BLENDER_NEAR = 2.0


def _read_transforms(path: Path) -> dict:
    if not path.is_file():
        raise DatasetError(path, "file is missing", "A Blender scene needs transforms_{split}.json per split.")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(path, f"malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    if not isinstance(meta, dict):
        raise DatasetError(path, "top level must be a JSON object")
    if "camera_angle_x" not in meta:
        raise DatasetError(path, "field 'camera_angle_x' is missing")
    if not isinstance(meta["camera_angle_x"], (int, float)) or not 0 < meta["camera_angle_x"] < np.pi:
        raise DatasetError(path, f"field 'camera_angle_x' must be an angle in radians, got {meta['camera_angle_x']!r}")
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise DatasetError(path, "field 'frames' is missing or empty")
    return meta


def _frame_pose(path: Path, i: int, frame) -> np.ndarray:
    if not isinstance(frame, dict) or "file_path" not in frame:
        raise DatasetError(path, f"frames[{i}]: field 'file_path' is missing")
    if "transform_matrix" not in frame:
        raise DatasetError(path, f"frames[{i}]: field 'transform_matrix' is missing")
    try:
        pose = np.asarray(frame["transform_matrix"], dtype=np.float32)
    except (TypeError, ValueError):
        raise DatasetError(path, f"frames[{i}].transform_matrix is not a numeric matrix") from None
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise DatasetError(path, f"frames[{i}].transform_matrix must be a finite 4x4 matrix, got shape {pose.shape}")
    return pose


def _image_path(scene_dir: Path, file_path: str) -> Path:
    path = scene_dir / file_path
    return path if path.suffix else path.with_suffix(".png")


def _read_image(path: Path, json_path: Path, i: int, downscale: int) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(path, f"image is missing (named by {json_path.name} frames[{i}].file_path)")
    try:
        img = iio.imread(path)
    except Exception as err:  # imageio raises many types for unreadable files
        raise DatasetError(path, f"image cannot be read ({err.__class__.__name__}: {err})") from None
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.dtype != np.uint8:
        raise DatasetError(path, f"expected an 8-bit image, got {img.dtype}")
    if downscale > 1:
        h, w = img.shape[0] // downscale * downscale, img.shape[1] // downscale * downscale
        img = img[:h, :w].reshape(h // downscale, downscale, w // downscale, downscale, -1)
        img = (img.astype(np.float32).mean(axis=(1, 3)) + 0.5).astype(np.uint8)
    return img


def load_blender_scene(scene_dir: str | Path, split: str = "train", downscale: int = 1) -> SceneData:
    """Load one split of a Blender scene; images stay uint8 RGBA (composite them per batch).

    downscale: integer factor; images are area-averaged and the focal length shrinks with them.
    """
    scene_dir = Path(scene_dir)
    if not scene_dir.is_dir():
        raise DatasetError(scene_dir, "scene folder does not exist")
    json_path = scene_dir / f"transforms_{split}.json"
    meta = _read_transforms(json_path)
    poses = [_frame_pose(json_path, i, f) for i, f in enumerate(meta["frames"])]
    paths = [_image_path(scene_dir, f["file_path"]) for f in meta["frames"]]
    with ThreadPoolExecutor(max_workers=4) as pool:
        images = list(pool.map(lambda a: _read_image(a[1], json_path, a[0], downscale), enumerate(paths)))
    h, w, c = images[0].shape
    for i, (img, path) in enumerate(zip(images, paths)):
        if img.shape[:2] != (h, w):
            raise DatasetError(
                path, f"image is {img.shape[1]}x{img.shape[0]} but frames[0] ({paths[0].name}) is {w}x{h}",
                "All images of a split must share one size.",
            )
        if img.shape[2] != c:
            raise DatasetError(path, f"image has {img.shape[2]} channels but frames[0] has {c}")
    cameras = Cameras.from_fov_x(torch.from_numpy(np.stack(poses)), float(meta["camera_angle_x"]), w, h)
    return SceneData(
        cameras=cameras,
        images=torch.from_numpy(np.stack(images)),
        aabb=torch.tensor(BLENDER_AABB, dtype=torch.float32),
        name=scene_dir.name,
        near=BLENDER_NEAR,
    )
