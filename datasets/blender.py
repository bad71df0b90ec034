"""NeRF-Synthetic (Blender) scenes: `transforms_{split}.json` plus RGBA PNGs, OpenGL cameras."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .cameras import Cameras
from .capture import Capture, matrix_problem
from .dataset_error import DatasetError
from .images import image_size, read_images
from .paths import capture_file
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
    problem = matrix_problem(pose, (4, 4))
    if problem:
        raise DatasetError(path, f"frames[{i}].transform_matrix {problem}")
    return pose


def _image_path(scene_dir: Path, json_path: Path, i: int, file_path: str, allowed: tuple[Path, ...]) -> Path:
    """frames[i].file_path (".png" when it has no suffix), kept inside the scene folder or `allowed`."""
    name = file_path if Path(file_path).suffix else file_path + ".png"
    return capture_file(scene_dir, name, json_path, f"frames[{i}].file_path", allowed)


def load_blender_scene(scene_dir: str | Path, split: str = "train", downscale: int = 1,
                       allowed: tuple[Path, ...] = ()) -> SceneData:
    """Load one split of a Blender scene; images stay uint8 RGBA (composite them per batch).

    downscale: integer factor; images are area-averaged and the focal length shrinks with them.
    allowed: folders outside the scene its images may lie in (see paths.capture_file).
    """
    scene_dir = Path(scene_dir)
    if not scene_dir.is_dir():
        raise DatasetError(scene_dir, "scene folder does not exist")
    json_path = scene_dir / f"transforms_{split}.json"
    meta = _read_transforms(json_path)
    poses = [_frame_pose(json_path, i, f) for i, f in enumerate(meta["frames"])]
    paths = [_image_path(scene_dir, json_path, i, f["file_path"], allowed) for i, f in enumerate(meta["frames"])]
    images = read_images(paths, [f"{json_path.name} frames[{i}].file_path" for i in range(len(paths))], downscale)
    h, w = images.shape[1:3]
    cameras = Cameras.from_fov_x(torch.from_numpy(np.stack(poses)), float(meta["camera_angle_x"]), w, h)
    return SceneData(
        cameras=cameras,
        images=torch.from_numpy(images),
        aabb=torch.tensor(BLENDER_AABB, dtype=torch.float32),
        name=scene_dir.name,
        near=BLENDER_NEAR,
    )


def read_blender_capture(scene_dir: str | Path, allowed: tuple[Path, ...] = ()) -> Capture:
    """All splits of a Blender scene as one Capture (bounded, box +-1.5, rays from 2 units).

    allowed: folders outside the scene its images may lie in (see paths.capture_file)."""
    scene_dir = Path(scene_dir)
    paths, poses, intrinsics, records, splits = [], [], [], [], {}
    size = None
    for split in ("train", "val", "test"):
        json_path = scene_dir / f"transforms_{split}.json"
        if split != "train" and not json_path.is_file():
            continue
        meta = _read_transforms(json_path)
        start = len(paths)
        for i, frame in enumerate(meta["frames"]):
            poses.append(_frame_pose(json_path, i, frame))
            paths.append(_image_path(scene_dir, json_path, i, frame["file_path"], allowed))
            records.append(f"{json_path.name} frames[{i}]")
        if size is None:
            size = image_size(paths[start], records[start])
        f = 0.5 * size[0] / np.tan(0.5 * float(meta["camera_angle_x"]))
        intrinsics += [[f, f, size[0] / 2.0, size[1] / 2.0]] * (len(paths) - start)
        splits[split] = list(range(start, len(paths)))
    n = len(paths)
    return Capture(paths, np.stack(poses).astype(np.float64), np.array(intrinsics), np.zeros((n, 6)), size[0],
                   size[1], source="blender", name=scene_dir.name, records=records, splits=splits,
                   aabb=np.array(BLENDER_AABB), near=BLENDER_NEAR, bounded=True)
