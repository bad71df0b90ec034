"""Camera paths: keyframes saved as JSON, interpolated into the cameras of a video.

Two file formats, told apart by their keys; the viewer's path editor writes either, `fields render --path` reads
either. This toolkit's ("fields")::

    {"format": "nfields-camera-path-1", "width": 400, "height": 400, "fps": 24, "frames": 120,
     "keyframes": [{"camera_to_world": [[...4 floats...] x 4], "fov": 40.0, "time": 0.0}, ...]}

camera_to_world: 4x4, OpenGL axes (+x right, +y up, looking down -z), as in Blender's transforms.json.
fov: vertical field of view in degrees. time (optional, on every keyframe or none): seconds, increasing; the video
runs from the first keyframe's time to the last's, each keyframe reached at its time (frames then defaults to one
per 1/fps). Without times the keyframes are evenly spaced. Between keyframes the cameras follow a spline or
linear interpolation (nfields.outputs.path_interpolation).

nerfstudio's (its viewer's render panel writes it, `ns-render camera-path` reads it; nerfstudio/viewer/
render_panel.py, nerfstudio/cameras/camera_paths.py get_path_from_json, nerfstudio/scripts/render.py)::

    {"camera_type": "perspective", "render_width": 400, "render_height": 400, "fps": 24, "seconds": 5.0,
     "camera_path": [{"camera_to_world": [...16 floats, row-major 4x4...], "fov": 40.0, "aspect": 1.0}, ...],
     "keyframes": [{"matrix": [...16 floats...], "fov": 40.0, "aspect": 1.0, ...}, ...], ...}

camera_path holds every frame of the video (ns-render plays len(camera_path) / seconds frames a second, its focal
length (render_height / 2) / tan(fov / 2)); keyframes only let nerfstudio's viewer edit the path again. A
nerfstudio path is read as its camera_path, each frame a keyframe; one is written from a fields path by
interpolating `frames` cameras (its keyframes kept as nerfstudio's, keyframe times as their transition times).

Coordinates: a path lies in the scene coordinates of the run it is rendered with. nerfstudio's viewer saves
poses in nerfstudio's world, which its dataparser derives from transforms.json by orientation, centring and
scale; for a scene `fields convert` normalised by its cameras (COLMAP, nerfstudio, video captures) that world is
the fields scene (the dataparser finds the cameras centred, upright and within [-1, 1] already), so paths move
between the two unchanged. Otherwise pass nerfstudio's dataparser_transforms.json (`transform_path`).

The viewer saves paths into RUN/camera_paths/ only (`save_in_run`): plain names, no symlinks, atomic writes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..datasets import Cameras, NDCFrame
from ..engine.config import read_json_object
from ..errors import FieldsError
from .path_interpolation import interpolate_poses

FORMAT = "nfields-camera-path-1"
PATH_FORMATS = ("fields", "nerfstudio")  # camera path file formats (see the module's docstring)
RUN_FOLDER = "camera_paths"  # where the viewer saves paths inside a run
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*\.json")


@dataclass
class Keyframe:
    camera_to_world: np.ndarray  # (4, 4) float64, OpenGL axes
    fov: float  # vertical, degrees
    time: float | None = None  # seconds; None: keyframes evenly spaced in time


@dataclass
class CameraPath:
    keyframes: list[Keyframe]
    width: int = 400
    height: int = 400
    fps: float = 24  # a whole number in this toolkit's files; nerfstudio's: frames / seconds
    frames: int = 120

    def key_times(self) -> np.ndarray:
        """The keyframes' times (K,): theirs, else evenly spaced over the video ((frames - 1) / fps seconds)."""
        if self.keyframes[0].time is not None:
            return np.array([k.time for k in self.keyframes], dtype=np.float64)
        return np.linspace(0.0, max(self.frames - 1, 1) / self.fps, len(self.keyframes))

    def to_json(self, fmt: str = "fields") -> dict:
        """The file's content in one of PATH_FORMATS."""
        if fmt == "nerfstudio":
            return self.to_nerfstudio()
        if fmt != "fields":
            raise ValueError(f"unknown camera path format {fmt!r} (known: {', '.join(PATH_FORMATS)})")
        return {"format": FORMAT, "width": self.width, "height": self.height, "fps": self.fps, "frames": self.frames,
                "keyframes": [{"camera_to_world": k.camera_to_world.tolist(), "fov": k.fov}
                              | ({} if k.time is None else {"time": k.time}) for k in self.keyframes]}

    def to_nerfstudio(self) -> dict:
        """nerfstudio's camera path: `frames` interpolated cameras in camera_path, the keyframes as its viewer's."""
        c2w, fovs = interpolated_poses(self, self.frames)
        aspect = self.width / self.height
        seconds = self.frames / self.fps
        timed = self.keyframes[0].time is not None
        transitions = [None] + np.diff(self.key_times()).tolist()  # nerfstudio's: the time into each keyframe
        return {
            "default_fov": self.keyframes[0].fov,
            "default_transition_sec": seconds / max(len(self.keyframes) - 1, 1),
            "keyframes": [{"matrix": k.camera_to_world.reshape(-1).tolist(), "fov": k.fov, "aspect": aspect,
                           "override_transition_enabled": timed and sec is not None,
                           "override_transition_sec": sec if timed else None}
                          for k, sec in zip(self.keyframes, transitions)],
            "camera_type": "perspective", "render_height": self.height, "render_width": self.width,
            "fps": self.fps, "seconds": seconds, "is_cycle": False, "smoothness_value": 0.0,
            "camera_path": [{"camera_to_world": pose.reshape(-1).tolist(), "fov": float(fov), "aspect": aspect}
                            for pose, fov in zip(c2w, fovs)],
        }

    def save(self, path: str | Path, fmt: str = "fields") -> Path:
        text = json.dumps(self.to_json(fmt), indent=1) + "\n"
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def transformed(self, matrix: np.ndarray, scale: float = 1.0) -> "CameraPath":
        """The path in other coordinates: positions p -> scale * (R p + t) for matrix [R | t] (3x4 or 4x4, R a
        rotation), camera axes rotated by R."""
        m = np.eye(4)
        m[: len(matrix)] = matrix
        keyframes = []
        for k in self.keyframes:
            c2w = m @ k.camera_to_world
            c2w[:3, 3] *= scale
            keyframes.append(dataclasses.replace(k, camera_to_world=c2w))
        return CameraPath(keyframes, self.width, self.height, self.fps, self.frames)

    def cameras(self, frames: int | None = None, width: int | None = None, ndc: NDCFrame | None = None,
                interpolation: str = "spline") -> Cameras:
        """The interpolated cameras (frames of them; width overrides the path's, keeping its aspect);
        ndc: the scene's NDC frame (forward-facing scenes); interpolation: "spline" or "linear"."""
        return interpolate(self, frames or self.frames, width, ndc, interpolation)


def _is_camera_path(folder_fd: int, name: str) -> bool:
    """Whether folder/name (a regular file, not followed if a link) holds a camera path."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder_fd)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        try:
            data = json.loads(f.read(1 << 24))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return False
    return isinstance(data, dict) and (data.get("format") == FORMAT or is_nerfstudio_path(data))


def is_nerfstudio_path(data: dict) -> bool:
    """A nerfstudio camera path (its per-frame `camera_path` list) rather than this toolkit's."""
    return "camera_path" in data and "format" not in data


def _write_in(folder_fd: int, name: str, text: str) -> None:
    """Write folder/name atomically: a fresh temporary file in the same folder, then os.replace."""
    temp = f".{name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=folder_fd)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        os.unlink(temp, dir_fd=folder_fd)
        raise


def save_in_run(path: CameraPath, run_folder: Path, name: str, fmt: str = "fields") -> Path:
    """Save into run_folder/camera_paths/name in format `fmt` (one of PATH_FORMATS); FieldsError (one line) when
    the name or the place is refused.

    name: letters, digits, '_', '.', '-', ending in .json. Refused: camera_paths or the file being a symlink,
    and an existing file that is not a camera path (of either format). The run folder itself is the one the
    user opened.
    """
    text = json.dumps(path.to_json(fmt), indent=1) + "\n"
    if not NAME.fullmatch(name):
        raise FieldsError(f"{name!r}: not saved: a camera path name is letters, digits, '_', '.' and '-' ending "
                          "in .json, e.g. orbit_1.json")
    folder = Path(run_folder) / RUN_FOLDER
    target = folder / name
    try:
        if not folder.is_symlink() and not folder.exists():
            folder.mkdir()
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as err:
        raise FieldsError(f"{folder}: not saved: cannot use it as the camera path folder "
                          f"({'a symlink' if folder.is_symlink() else err.strerror})") from None
    try:
        try:
            mode = os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and stat.S_ISLNK(mode):
            raise FieldsError(f"{target}: not saved: the file is a symlink; choose another name")
        if mode is not None and not (stat.S_ISREG(mode) and _is_camera_path(folder_fd, name)):
            raise FieldsError(f"{target}: not saved: the file exists and is not a camera path; choose another name")
        _write_in(folder_fd, name, text)
    except OSError as err:
        raise FieldsError(f"{target}: not saved: {err.strerror}") from None
    finally:
        os.close(folder_fd)
    return target


def _positive_int(data: dict, key: str, default: int, where: str) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise FieldsError(f"{where}: field '{key}' must be a positive integer, got {value!r}")
    return value


def _positive_number(data: dict, key: str, default: float | None, where: str) -> float | None:
    value = data.get(key, default)
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < math.inf:
        raise FieldsError(f"{where}: field '{key}' must be a positive number, got {value!r}")
    return value


def _keyframe(entry, where: str) -> Keyframe:
    if not isinstance(entry, dict):
        raise FieldsError(f"{where}: must be an object with 'camera_to_world' and 'fov'")
    try:
        c2w = np.asarray(entry["camera_to_world"], dtype=np.float64)
    except KeyError:
        raise FieldsError(f"{where}: field 'camera_to_world' is missing") from None
    except (TypeError, ValueError):
        raise FieldsError(f"{where}: field 'camera_to_world' must be a 4x4 list of numbers") from None
    if c2w.shape == (3, 4):
        c2w = np.vstack([c2w, [0.0, 0.0, 0.0, 1.0]])
    if c2w.shape != (4, 4) or not np.isfinite(c2w).all():
        raise FieldsError(f"{where}: field 'camera_to_world' must be a finite 4x4 matrix, got shape {c2w.shape}")
    rot = c2w[:3, :3]
    if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-3) or np.linalg.det(rot) < 0:
        raise FieldsError(f"{where}: field 'camera_to_world' has no rotation in its upper-left 3x3 block")
    fov = entry.get("fov")
    if not isinstance(fov, (int, float)) or isinstance(fov, bool) or not 0 < fov < 180:
        raise FieldsError(f"{where}: field 'fov' must be a vertical field of view in degrees (0, 180), got {fov!r}")
    time = entry.get("time")
    if time is not None and (not isinstance(time, (int, float)) or isinstance(time, bool) or not math.isfinite(time)):
        raise FieldsError(f"{where}: field 'time' must be a number of seconds, got {time!r}")
    return Keyframe(c2w, float(fov), None if time is None else float(time))


def _nerfstudio_path(data: dict, path: Path) -> CameraPath:
    """A nerfstudio camera path: every frame of its camera_path a keyframe (see the module's docstring)."""
    camera_type = data.get("camera_type", "perspective")
    if camera_type != "perspective":
        raise FieldsError(f"{path}: field 'camera_type' is {camera_type!r}: only perspective camera paths render "
                          "here (not fisheye, equirectangular or stereo ones)")
    frames = data["camera_path"]
    if not isinstance(frames, list) or len(frames) < 2:
        raise FieldsError(f"{path}: field 'camera_path' must be a list of at least 2 cameras")
    keyframes = []
    for i, frame in enumerate(frames):
        where = f"{path}: camera_path[{i}]"
        if not isinstance(frame, dict) or "camera_to_world" not in frame:
            raise FieldsError(f"{where}: field 'camera_to_world' is missing")
        try:
            c2w = np.asarray(frame["camera_to_world"], dtype=np.float64)
        except (TypeError, ValueError):
            raise FieldsError(f"{where}: field 'camera_to_world' must be 16 numbers (a row-major 4x4)") from None
        keyframes.append(_keyframe({"camera_to_world": c2w.reshape(4, 4) if c2w.size == 16 else c2w,
                                    "fov": frame.get("fov")}, where))
    where = str(path)
    if "render_width" not in data or "render_height" not in data:
        raise FieldsError(f"{path}: fields 'render_width' and 'render_height' are missing (nerfstudio camera path)")
    width, height = _positive_int(data, "render_width", 0, where), _positive_int(data, "render_height", 0, where)
    seconds = _positive_number(data, "seconds", None, where)
    fps = len(frames) / seconds if seconds else _positive_number(data, "fps", 24, where)
    return CameraPath(keyframes, width, height, fps, len(frames))


def load_camera_path(path: str | Path, transform_path: str | Path | None = None) -> CameraPath:
    """Read and validate a camera path file of either format; errors name the file and the field at fault.

    transform_path: nerfstudio's dataparser_transforms.json ({"transform": 3x4, "scale": s}) of the nerfstudio run
    the path was made for, trained on this run's scene: the path is taken from nerfstudio's world
    (p = s (T p_scene)) back into the scene."""
    path = Path(path)
    data = read_json_object(path, "camera path file does not exist", "with 'keyframes'")
    if is_nerfstudio_path(data):
        loaded = _nerfstudio_path(data, path)
    else:
        loaded = _fields_path(data, path)
    if transform_path is None:
        return loaded
    transform_path = Path(transform_path)
    transform = read_json_object(transform_path, "dataparser transform file does not exist",
                                 "with 'transform' and 'scale'")
    try:
        matrix = np.vstack([np.asarray(transform["transform"], dtype=np.float64).reshape(3, 4), [0, 0, 0, 1]])
        scale = float(transform.get("scale", 1.0))
    except (KeyError, TypeError, ValueError):
        raise FieldsError(f"{transform_path}: expected 'transform' (3x4 numbers) and 'scale' (a number), as "
                          "nerfstudio's dataparser_transforms.json") from None
    rot = matrix[:3, :3]
    if not (np.isfinite(matrix).all() and np.allclose(rot @ rot.T, np.eye(3), atol=1e-4) and 0 < scale < math.inf):
        raise FieldsError(f"{transform_path}: 'transform' must be a rotation and translation, 'scale' positive")
    return _from_world(loaded, matrix, scale)


def _from_world(path: CameraPath, matrix: np.ndarray, scale: float) -> CameraPath:
    """The inverse of CameraPath.transformed: positions p_world = scale * (R p + t) back to R^T (p_world / scale - t),
    camera axes rotated by R^T."""
    inverse = np.linalg.inv(matrix)
    keyframes = []
    for k in path.keyframes:
        c2w = k.camera_to_world.copy()
        c2w[:3, 3] /= scale
        keyframes.append(dataclasses.replace(k, camera_to_world=inverse @ c2w))
    return CameraPath(keyframes, path.width, path.height, path.fps, path.frames)


def _fields_path(data: dict, path: Path) -> CameraPath:
    if data.get("format", FORMAT) != FORMAT:
        raise FieldsError(f"{path}: field 'format' is {data['format']!r}, expected '{FORMAT}'")
    keyframes = data.get("keyframes")
    if not isinstance(keyframes, list) or len(keyframes) < 2:
        raise FieldsError(f"{path}: field 'keyframes' must be a list of at least 2 keyframes")
    where = str(path)
    loaded = [_keyframe(k, f"{path}: keyframes[{i}]") for i, k in enumerate(keyframes)]
    _check_times(loaded, path)
    fps = _positive_number(data, "fps", 24, where)
    timed = loaded[0].time is not None
    frames = round((loaded[-1].time - loaded[0].time) * fps) + 1 if timed else 120  # one per 1/fps when timed
    return CameraPath(
        keyframes=loaded,
        width=_positive_int(data, "width", 400, where), height=_positive_int(data, "height", 400, where),
        fps=fps, frames=_positive_int(data, "frames", frames, where),
    )


def _check_times(keyframes: list[Keyframe], path: Path) -> None:
    """Keyframe times: on every keyframe or none, each later than the one before."""
    timed = [k.time is not None for k in keyframes]
    if any(timed) and not all(timed):
        i = timed.index(not timed[0])
        raise FieldsError(f"{path}: keyframes[{i}]: field 'time' is {'missing' if timed[0] else 'given'}, unlike "
                          "keyframes[0]: give every keyframe a time, or none")
    if all(timed):
        for i in range(1, len(keyframes)):
            if keyframes[i].time <= keyframes[i - 1].time:
                raise FieldsError(f"{path}: keyframes[{i}]: field 'time' ({keyframes[i].time}) must be later than "
                                  f"keyframes[{i - 1}]'s ({keyframes[i - 1].time})")


def interpolated_poses(path: CameraPath, frames: int, interpolation: str = "spline") -> tuple[np.ndarray, np.ndarray]:
    """camera-to-world (frames, 4, 4) and vertical fov in degrees (frames,) along the path, frames evenly spaced in
    time from the first keyframe to the last (see nfields.outputs.path_interpolation; "spline" or "linear")."""
    key_times = path.key_times()
    poses = np.stack([k.camera_to_world for k in path.keyframes])
    times = np.linspace(key_times[0], key_times[-1], frames)
    return interpolate_poses(poses, np.array([k.fov for k in path.keyframes]), key_times, times, interpolation)


def interpolate(path: CameraPath, frames: int, width: int | None = None, ndc: NDCFrame | None = None,
                interpolation: str = "spline") -> Cameras:
    """`frames` cameras along the path (see interpolated_poses), `width` wide (default: the path's)."""
    c2w, fovs = interpolated_poses(path, frames, interpolation)
    w = width or path.width
    h = max(1, round(w * path.height / path.width))
    focal = 0.5 * h / np.tan(np.deg2rad(fovs) / 2)
    return Cameras(
        camera_to_world=torch.from_numpy(c2w).float(),
        focal=torch.from_numpy(np.stack([focal, focal], axis=-1)).float(),
        principal=torch.tensor([[w / 2.0, h / 2.0]]).expand(frames, 2).clone(),
        width=w, height=h, ndc=ndc,
    )


def path_from_cameras(cameras: Cameras, indices: list[int], fps: int = 24, frames: int = 120) -> CameraPath:
    """A camera path through some of `cameras` (e.g. training views), keeping their size and fov."""
    fov = math.degrees(2 * math.atan(cameras.height / (2 * float(cameras.focal[0, 1]))))
    keyframes = [Keyframe(cameras.camera_to_world[i].double().numpy(), fov) for i in indices]
    return CameraPath(keyframes, cameras.width, cameras.height, fps, frames)
