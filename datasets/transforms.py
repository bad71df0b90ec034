"""`transforms.json` captures: nerfstudio (fl_x, ..., camera_model, per-frame intrinsics and sizes w, h, mask_path,
depth_file_path), instant-ngp (aabb_scale, scale, offset, is_fisheye, depth_path) and the canonical layout
`fields convert` writes (a `fields` block).

Poses are OpenGL camera-to-world matrices in every variant. Camera models: nerfstudio's PINHOLE / SIMPLE_PINHOLE /
PERSPECTIVE, SIMPLE_RADIAL / RADIAL / OPENCV (OpenCV's radial-tangential k1..k4, p1, p2) and OPENCV_FISHEYE
(equidistant, k1..k4); instant-ngp's `is_fisheye` selects the fisheye model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .capture import (
    Capture,
    Normalization,
    apply_normalization,
    check_poses,
    holdout_splits,
    matrix_problem,
    normalise_captured,
)
from .dataset_error import DatasetError
from .distortion import PARAM_NAMES
from .images import image_size
from .paths import capture_file
from .pointcloud import read_ply_points

PINHOLE_MODELS = ("PINHOLE", "SIMPLE_PINHOLE", "PERSPECTIVE")
DISTORTED_MODELS = ("OPENCV", "SIMPLE_RADIAL", "RADIAL")  # OpenCV's radial-tangential model, k1..k4, p1, p2
FISHEYE_MODELS = ("OPENCV_FISHEYE",)  # equidistant, k1..k4
MODELS = PINHOLE_MODELS + DISTORTED_MODELS + FISHEYE_MODELS
NGP_KEYS = ("aabb_scale", "scale", "offset", "aabb")
NGP_SCALE, NGP_OFFSET = 0.33, 0.5  # instant-ngp's defaults (nerf_loader.h NERF_SCALE, nerf_loader.cu load_nerf)
NGP_OTHER_LENSES = ("ftheta_p0", "latlong", "equirectangular")  # instant-ngp lens modes not supported here
FRAME_FILES = ("mask_path", "depth_file_path", "depth_path")  # every frame or none; inside the capture
DEPTH_UNIT = 1e-3  # nerfstudio's depth_unit_scale_factor default: depth files in millimetres


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


def _frame_files(path: Path, i: int, frame: dict, allowed: tuple[Path, ...]) -> tuple[Path, dict[str, Path]]:
    """The image of frames[i] (".png" when it has no suffix) and its mask / depth files by key, each checked to
    lie inside the capture."""
    extra = {}
    for key in FRAME_FILES:
        value = frame.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise DatasetError(path, f"frames[{i}]: field '{key}' must be a file path, got {value!r}")
        extra[key] = capture_file(path.parent, value, path, f"frames[{i}].{key}", allowed)
    name = frame["file_path"]
    image = capture_file(path.parent, name if Path(name).suffix else name + ".png", path, f"frames[{i}].file_path",
                         allowed)
    return image, extra


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


def _fisheye(path: Path, meta: dict) -> bool:
    """Whether the file's cameras are fisheye: camera_model OPENCV_FISHEYE (nerfstudio) or is_fisheye (instant-ngp,
    which has no camera_model); other models are refused with the list of supported ones."""
    model = meta.get("camera_model")
    is_fisheye = meta.get("is_fisheye", False)
    if not isinstance(is_fisheye, bool):
        raise DatasetError(path, f"field 'is_fisheye' must be true or false, got {is_fisheye!r}")
    lens = next((k for k in NGP_OTHER_LENSES if k in meta), None)
    if lens:
        raise DatasetError(path, f"field '{lens}': instant-ngp's {lens.split('_')[0]} lens is not supported "
                                 "(supported: pinhole, OpenCV and OpenCV fisheye lenses)",
                           "Undistort the images to a pinhole or fisheye camera first.")
    if model is None:
        return is_fisheye
    if model not in MODELS:
        raise DatasetError(path, f"field 'camera_model': {model!r} is not supported (supported: {', '.join(MODELS)})",
                           "Equirectangular, 360 and FISHEYE624 captures need converting to one of these first.")
    if is_fisheye and model not in FISHEYE_MODELS:
        raise DatasetError(path, f"field 'is_fisheye' is true but camera_model is {model}: give one lens model")
    return model in FISHEYE_MODELS


def _check_distortion(path: Path, i: int, dist: list[float], model: str) -> None:
    if model == "pinhole" and any(dist):
        raise DatasetError(path, f"frames[{i}]: a pinhole camera_model but distortion {dist} is given")
    if model == "fisheye" and any(dist[4:]):
        raise DatasetError(path, f"frames[{i}]: the fisheye model (OPENCV_FISHEYE, is_fisheye) has k1..k4 only, but "
                                 f"p1, p2 = {dist[4:]}", "Set p1 and p2 to 0 (or drop them) for a fisheye lens.")


def _all_or_none(path: Path, extras: list[dict[str, Path]], key: str) -> list[Path] | None:
    """Per-frame files of one key: every frame names one, or none does (nerfstudio's rule)."""
    having = [key in e for e in extras]
    if not any(having):
        return None
    if not all(having):
        missing = having.index(False)
        raise DatasetError(path, f"frames[{missing}] has no '{key}' but frames[{having.index(True)}] has one",
                           f"Give '{key}' for every frame or for none.")
    return [e[key] for e in extras]


def read_transforms_capture(path: str | Path, allowed: tuple[Path, ...] = ()) -> tuple[Capture, dict]:
    """A transforms.json capture in the file's coordinates, and the file's top-level fields.

    Every file it names must lie in its folder or in `allowed` (see paths.capture_file)."""
    path = Path(path)
    meta = read_json(path)
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise DatasetError(path, "field 'frames' is missing or empty")
    fisheye = _fisheye(path, meta)
    lens = "fisheye" if fisheye else "pinhole" if meta.get("camera_model") in PINHOLE_MODELS else "opencv"
    folder = path.parent
    names, paths, extras, poses, intrinsics, distortion, records, sizes = [], [], [], [], [], [], [], []
    size = None
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
            raise DatasetError(path, f"frames[{i}]: field 'file_path' is missing or not a string")
        if "transform_matrix" not in frame:
            raise DatasetError(path, f"frames[{i}]: field 'transform_matrix' is missing")
        if "is_fisheye" in frame and frame["is_fisheye"] != fisheye:
            raise DatasetError(path, f"frames[{i}]: field 'is_fisheye' differs from the file's",
                               "Fisheye and pinhole frames in one capture are not supported: convert each apart.")
        records.append(f"{path.name} frames[{i}] ({frame['file_path']})")
        names.append(frame["file_path"])
        image, extra = _frame_files(path, i, frame, allowed)
        paths.append(image)
        extras.append(extra)
        pose = np.eye(4)
        pose[:3] = _matrix(path, f"frames[{i}].transform_matrix", frame["transform_matrix"], (3, 4))
        poses.append(pose)
        frame_size = (_number(path, f"frames[{i}]: ", {**meta, **frame}, "w", positive=True),
                      _number(path, f"frames[{i}]: ", {**meta, **frame}, "h", positive=True))
        if None in frame_size:
            frame_size = image_size(paths[-1], records[-1]) if size is None else size
        size = (int(frame_size[0]), int(frame_size[1]))  # a frame without w, h: the size of the one before
        sizes.append(size)
        intr, dist = _frame_intrinsics(path, i, frame, meta, size)
        _check_distortion(path, i, dist, lens)
        intrinsics.append(intr)
        distortion.append(dist)
    sizes = np.array(sizes)
    several = bool((sizes != sizes[0]).any())
    capture = Capture(paths, np.stack(poses), np.array(intrinsics), np.array(distortion), int(sizes[:, 0].max()),
                      int(sizes[:, 1].max()), source="transforms", name=folder.name, records=records,
                      splits=_splits(path, meta, names), fisheye=fisheye, sizes=sizes if several else None)
    check_poses(capture, path)
    capture.mask_paths = _all_or_none(path, extras, "mask_path")
    depth_key = "depth_file_path" if any("depth_file_path" in e for e in extras) else "depth_path"
    capture.depth_paths = _all_or_none(path, extras, depth_key)
    if capture.depth_paths is not None:
        # nerfstudio: depth_unit_scale_factor (a dataparser option; read from the file where `fields convert` wrote
        # it), instant-ngp: integer_depth_scale (nerf_loader.cu: depth = value * integer_depth_scale).
        if depth_key == "depth_file_path":
            capture.depth_unit = _number(path, "", meta, "depth_unit_scale_factor", DEPTH_UNIT, positive=True)
        elif _number(path, "", meta, "integer_depth_scale", -1.0) > 0:
            capture.depth_unit = _number(path, "", meta, "integer_depth_scale")
        else:  # instant-ngp reads depth_path only with a positive integer_depth_scale
            capture.depth_paths = None
    ply = meta.get("ply_file_path")
    if isinstance(ply, str) and capture_file(folder, ply, path, "ply_file_path", allowed).is_file():
        capture.points, capture.colors = read_ply_points(folder / ply)
    return capture, meta


def is_instant_ngp(meta: dict) -> bool:
    return any(k in meta for k in NGP_KEYS) and "fields" not in meta


def ngp_box(path: Path, meta: dict) -> tuple[np.ndarray, float]:
    """instant-ngp's box in the file's coordinates, (6,) min xyz then max xyz, and its aabb_scale.

    As nerf_loader.cu (load_nerf) and nerf_loader.h (nerf_position_to_ngp) read a file: a point p lies at
    p * scale + offset in instant-ngp's space (axes then cycled, which moves no box), scale 0.33 and offset 0.5 by
    default, `offset` a number or an xyz list, and an `aabb` [[min], [max]] replacing both (scale 1 / its longest
    side, its centre at 0.5); the box is the unit cube inflated about 0.5 to aabb_scale.
    """
    scale = _number(path, "", meta, "scale", NGP_SCALE, positive=True)
    offset = meta.get("offset", NGP_OFFSET)
    if isinstance(offset, (int, float)) and not isinstance(offset, bool):
        offset = [offset] * 3
    offset = _matrix(path, "field 'offset'", [offset], (1, 3))[0]
    if "aabb" in meta:
        aabb = _matrix(path, "field 'aabb'", meta["aabb"], (2, 3))
        scale = 1.0 / max(float(np.abs(aabb[1] - aabb[0]).max()), 1e-6)
        offset = 0.5 - 0.5 * (aabb[0] + aabb[1]) * scale
    aabb_scale = _number(path, "", meta, "aabb_scale", 1.0, positive=True)
    center, half = (0.5 - offset) / scale, 0.5 * aabb_scale / scale
    return np.concatenate([center - half, center + half]), aabb_scale


def normalise_instant_ngp(capture: Capture, meta: dict, path: Path) -> Capture:
    """An instant-ngp capture in scene coordinates.

    aabb_scale 1 (or none): all content lies in instant-ngp's unit cube (`ngp_box`), mapped onto [-1, 1]^3, a
    bounded scene. aabb_scale above 1 (colmap2nerf writes 16 or 32): content reaches beyond the cube into
    instant-ngp's cascades, so the capture takes the unbounded path of COLMAP captures (normalise_captured:
    cameras inside [-1, 1]^3, contraction and occupancy cascades beyond it)."""
    box, aabb_scale = ngp_box(path, meta)
    if aabb_scale > 1:
        out = normalise_captured(capture)
    else:
        center, half = 0.5 * (box[:3] + box[3:]), 0.5 * (box[3] - box[0])
        out = apply_normalization(capture, Normalization(center=center, scale=1.0 / half),
                                  aabb=np.array([-1.0, -1, -1, 1, 1, 1]), near=0.0, bounded=True)
    out.source = "instant-ngp"
    return out
