"""`transforms.json` captures: nerfstudio (fl_x, ..., camera_model, per-frame intrinsics, applied_transform),
instant-ngp (aabb_scale, scale, offset) and the canonical layout `fields convert` writes (a `fields` block).

Poses are OpenGL camera-to-world matrices in every variant.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .capture import Capture, Normalization, apply_normalization, check_poses, holdout_splits, matrix_problem
from .dataset_error import DatasetError
from .distortion import PARAM_NAMES
from .images import image_size
from .paths import capture_file
from .pointcloud import read_ply_points

PINHOLE_MODELS = ("PINHOLE", "SIMPLE_PINHOLE", "PERSPECTIVE")
DISTORTED_MODELS = ("OPENCV",)
NGP_KEYS = ("aabb_scale", "scale", "offset")
FRAME_FILES = ("mask_path", "depth_file_path")  # read by other tools; kept inside the capture all the same


def read_json(path: Path) -> dict:
    """A JSON object; malformed files raise DatasetError with the line and column."""
    if not path.is_file():
        raise DatasetError(path, "file is missing")
    try:
        meta = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise DatasetError(path, "not a text file") from None
    except json.JSONDecodeError as err:
        raise DatasetError(path, f"malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except RecursionError:
        raise DatasetError(path, "JSON is nested too deeply") from None
    if not isinstance(meta, dict):
        raise DatasetError(path, "top level must be a JSON object")
    return meta


def _number(path: Path, where: str, record: dict, key: str, default=None, positive: bool = False) -> float | None:
    value = record.get(key)
    if value is None:  # absent or null: the default
        value = default
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value) or (
            positive and value <= 0):
        raise DatasetError(path, f"{where}field '{key}' must be a {'positive ' if positive else ''}number, "
                                 f"got {value!r}")
    return float(value)


def _finite(value: int | float) -> bool:
    """A finite float64 (JSON integers may lie beyond what numpy's isfinite takes)."""
    try:
        return bool(np.isfinite(float(value)))
    except OverflowError:
        return False


def _matrix(path: Path, where: str, value, shape: tuple[int, int]) -> np.ndarray:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError(path, f"{where} is not a numeric matrix") from None
    if m.shape == (4, 4) and shape == (3, 4):
        m = m[:3]
    problem = matrix_problem(m, shape)
    if problem:
        raise DatasetError(path, f"{where} {problem}")
    return m


def _frame_files(path: Path, i: int, frame: dict, allowed: tuple[Path, ...]) -> Path:
    """The image of frames[i] (".png" when it has no suffix); its mask and depth paths checked likewise."""
    for key in FRAME_FILES:
        if isinstance(frame.get(key), str):
            capture_file(path.parent, frame[key], path, f"frames[{i}].{key}", allowed)
    name = frame["file_path"]
    return capture_file(path.parent, name if Path(name).suffix else name + ".png", path, f"frames[{i}].file_path",
                        allowed)


def _frame_intrinsics(path: Path, i: int, frame: dict, meta: dict, size: tuple[int, int]) -> tuple[list, list]:
    """fx, fy, cx, cy and distortion of frame i: per-frame values override the file's."""
    merged = {**meta, **frame}
    where = f"frames[{i}]: " if any(k in frame for k in ("fl_x", "camera_angle_x")) else ""
    w, h = size
    fx = _number(path, where, merged, "fl_x", positive=True)
    if fx is None:
        angle = _number(path, where, merged, "camera_angle_x", positive=True)
        if angle is None:
            raise DatasetError(path, f"frames[{i}]: no focal length: give 'fl_x' (pixels) or 'camera_angle_x' "
                                     "(radians), for the file or the frame")
        fx = 0.5 * w / np.tan(0.5 * angle)
    fy = _number(path, where, merged, "fl_y", positive=True)
    if fy is None:
        angle_y = _number(path, where, merged, "camera_angle_y", positive=True)
        fy = 0.5 * h / np.tan(0.5 * angle_y) if angle_y else fx
    cx = _number(path, where, merged, "cx", w / 2.0)
    cy = _number(path, where, merged, "cy", h / 2.0)
    dist = [_number(path, where, merged, k, 0.0) for k in PARAM_NAMES]
    return [fx, fy, cx, cy], dist


def _splits(path: Path, meta: dict, names: list[str]) -> dict[str, list[int]]:
    if not any(f"{s}_filenames" in meta for s in ("train", "val", "test")):
        return holdout_splits(len(names))
    index = {name: i for i, name in enumerate(names)}
    splits = {}
    for split in ("train", "val", "test"):
        listed = meta.get(f"{split}_filenames", [])
        if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
            raise DatasetError(path, f"field '{split}_filenames' must be a list of file paths")
        unknown = [n for n in listed if n not in index]
        if unknown:
            raise DatasetError(path, f"{split}_filenames names '{unknown[0]}', which no frame's file_path names")
        splits[split] = [index[n] for n in listed]
    return splits


def read_transforms_capture(path: str | Path, allowed: tuple[Path, ...] = ()) -> tuple[Capture, dict]:
    """A transforms.json capture in the file's coordinates, and the file's top-level fields.

    Every file it names must lie in its folder or in `allowed` (see paths.capture_file)."""
    path = Path(path)
    meta = read_json(path)
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise DatasetError(path, "field 'frames' is missing or empty")
    model = meta.get("camera_model", "OPENCV")
    if model not in PINHOLE_MODELS + DISTORTED_MODELS:
        raise DatasetError(path, f"field 'camera_model': {model!r} is not supported (supported: "
                           f"{', '.join(PINHOLE_MODELS + DISTORTED_MODELS)})",
                           "Fisheye and equirectangular captures need undistorting first.")
    folder = path.parent
    names, paths, poses, intrinsics, distortion, records = [], [], [], [], [], []
    size = None
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
            raise DatasetError(path, f"frames[{i}]: field 'file_path' is missing or not a string")
        if "transform_matrix" not in frame:
            raise DatasetError(path, f"frames[{i}]: field 'transform_matrix' is missing")
        records.append(f"{path.name} frames[{i}] ({frame['file_path']})")
        names.append(frame["file_path"])
        paths.append(_frame_files(path, i, frame, allowed))
        pose = np.eye(4)
        pose[:3] = _matrix(path, f"frames[{i}].transform_matrix", frame["transform_matrix"], (3, 4))
        poses.append(pose)
        frame_size = (_number(path, f"frames[{i}]: ", {**meta, **frame}, "w", positive=True),
                      _number(path, f"frames[{i}]: ", {**meta, **frame}, "h", positive=True))
        if None in frame_size:
            frame_size = image_size(paths[-1], records[-1]) if size is None else size
        frame_size = (int(frame_size[0]), int(frame_size[1]))
        if size is not None and frame_size != size:
            raise DatasetError(path, f"frames[{i}] is {frame_size[0]}x{frame_size[1]} but frames[0] is "
                               f"{size[0]}x{size[1]}", "All images must share one size; convert each size apart.")
        size = frame_size
        intr, dist = _frame_intrinsics(path, i, frame, meta, size)
        if model in PINHOLE_MODELS and any(dist):
            raise DatasetError(path, f"frames[{i}]: camera_model {model} but distortion {dist} is given")
        intrinsics.append(intr)
        distortion.append(dist)
    capture = Capture(paths, np.stack(poses), np.array(intrinsics), np.array(distortion), size[0], size[1],
                      source="transforms", name=folder.name, records=records, splits=_splits(path, meta, names))
    check_poses(capture, path)
    ply = meta.get("ply_file_path")
    if isinstance(ply, str) and capture_file(folder, ply, path, "ply_file_path", allowed).is_file():
        capture.points, capture.colors = read_ply_points(folder / ply)
    return capture, meta


def is_instant_ngp(meta: dict) -> bool:
    return any(k in meta for k in NGP_KEYS) and "fields" not in meta


def normalise_instant_ngp(capture: Capture, meta: dict, path: Path) -> Capture:
    """instant-ngp's box: the unit cube scaled by aabb_scale about 0.5, in coordinates p * scale + offset.

    The box is mapped onto [-1, 1]^3 (bounded scene)."""
    aabb_scale = _number(path, "", meta, "aabb_scale", 1.0, positive=True)
    scale = _number(path, "", meta, "scale", 0.33, positive=True)
    offset = _matrix(path, "field 'offset'", [meta.get("offset", [0.5, 0.5, 0.5])], (1, 3))[0]
    center = (0.5 - offset) / scale
    half = 0.5 * aabb_scale / scale
    norm = Normalization(center=center, scale=1.0 / half)
    capture.source = "instant-ngp"
    return apply_normalization(capture, norm, aabb=np.array([-1.0, -1, -1, 1, 1, 1]), near=0.0, bounded=True)
