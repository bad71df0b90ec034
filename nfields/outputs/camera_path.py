"""Camera paths: keyframes saved as JSON, interpolated into the cameras of a video.

File format (what the viewer's path editor writes and `fields render --path` reads)::

    {"format": "nfields-camera-path-1", "width": 400, "height": 400, "fps": 24, "frames": 120,
     "keyframes": [{"camera_to_world": [[...4 floats...] x 4], "fov": 40.0}, ...]}

camera_to_world: 4x4, OpenGL axes (+x right, +y up, looking down -z), as in Blender's transforms.json.
fov: vertical field of view in degrees. Keyframes are evenly spaced in time; rotations are slerped,
positions and fov interpolated linearly.

The viewer saves paths into RUN/camera_paths/ only (`save_in_run`): plain names, no symlinks, atomic writes.
"""

from __future__ import annotations

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
from scipy.spatial.transform import Rotation, Slerp

from ..datasets import Cameras, NDCFrame
from ..engine.config import read_json_object
from ..errors import FieldsError

FORMAT = "nfields-camera-path-1"
RUN_FOLDER = "camera_paths"  # where the viewer saves paths inside a run
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*\.json")


@dataclass
class Keyframe:
    camera_to_world: np.ndarray  # (4, 4) float64, OpenGL axes
    fov: float  # vertical, degrees


@dataclass
class CameraPath:
    keyframes: list[Keyframe]
    width: int = 400
    height: int = 400
    fps: int = 24
    frames: int = 120

    def to_json(self) -> dict:
        return {"format": FORMAT, "width": self.width, "height": self.height, "fps": self.fps, "frames": self.frames,
                "keyframes": [{"camera_to_world": k.camera_to_world.tolist(), "fov": k.fov} for k in self.keyframes]}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return path

    def cameras(self, frames: int | None = None, width: int | None = None, ndc: NDCFrame | None = None) -> Cameras:
        """The interpolated cameras (frames of them; width overrides the path's, keeping its aspect);
        ndc: the scene's NDC frame (forward-facing scenes)."""
        return interpolate(self, frames or self.frames, width, ndc)


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
    return isinstance(data, dict) and data.get("format") == FORMAT


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


def save_in_run(path: CameraPath, run_folder: Path, name: str) -> Path:
    """Save into run_folder/camera_paths/name; FieldsError (one line) when the name or the place is refused.

    name: letters, digits, '_', '.', '-', ending in .json. Refused: camera_paths or the file being a symlink,
    and an existing file that is not a camera path. The run folder itself is the one the user opened.
    """
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
        _write_in(folder_fd, name, json.dumps(path.to_json(), indent=1) + "\n")
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
    return Keyframe(c2w, float(fov))


def load_camera_path(path: str | Path) -> CameraPath:
    """Read and validate a camera path file; errors name the file and the field at fault."""
    path = Path(path)
    data = read_json_object(path, "camera path file does not exist", "with 'keyframes'")
    if data.get("format", FORMAT) != FORMAT:
        raise FieldsError(f"{path}: field 'format' is {data['format']!r}, expected '{FORMAT}'")
    keyframes = data.get("keyframes")
    if not isinstance(keyframes, list) or len(keyframes) < 2:
        raise FieldsError(f"{path}: field 'keyframes' must be a list of at least 2 keyframes")
    where = str(path)
    return CameraPath(
        keyframes=[_keyframe(k, f"{path}: keyframes[{i}]") for i, k in enumerate(keyframes)],
        width=_positive_int(data, "width", 400, where), height=_positive_int(data, "height", 400, where),
        fps=_positive_int(data, "fps", 24, where), frames=_positive_int(data, "frames", 120, where),
    )


def interpolate(path: CameraPath, frames: int, width: int | None = None, ndc: NDCFrame | None = None) -> Cameras:
    """`frames` cameras along the path: slerp between keyframe rotations, lerp of positions and fov."""
    poses = np.stack([k.camera_to_world for k in path.keyframes])
    key_times = np.linspace(0.0, 1.0, len(poses))
    times = np.linspace(0.0, 1.0, frames)
    rotations = Slerp(key_times, Rotation.from_matrix(poses[:, :3, :3]))(times).as_matrix()
    positions = np.stack([np.interp(times, key_times, poses[:, i, 3]) for i in range(3)], axis=-1)
    fovs = np.interp(times, key_times, [k.fov for k in path.keyframes])
    c2w = np.tile(np.eye(4), (frames, 1, 1))
    c2w[:, :3, :3], c2w[:, :3, 3] = rotations, positions
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
