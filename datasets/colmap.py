"""COLMAP sparse models (cameras, images, points3D; text or binary) read into a Capture.

COLMAP stores world-to-camera rotations (quaternion w, x, y, z) and translations in OpenCV axes
(x right, y down, z forward); the Capture holds OpenGL camera-to-world matrices.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .capture import OPENCV_TO_OPENGL, Capture, check_poses
from .dataset_error import DatasetError
from .paths import capture_file

# model id -> (name, number of parameters); the models a capture uses every day.
CAMERA_MODELS = {0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5),
                 4: ("OPENCV", 8), 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5),
                 8: ("SIMPLE_RADIAL_FISHEYE", 4), 9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12)}
MODEL_IDS = {name: i for i, (name, _) in CAMERA_MODELS.items()}
SUPPORTED_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
MIN_REGISTERED = 3


@dataclass
class ColmapCamera:
    camera_id: int
    model: str
    width: int
    height: int
    params: np.ndarray


@dataclass
class ColmapImage:
    image_id: int
    qvec: np.ndarray  # (4,) w, x, y, z world-to-camera
    tvec: np.ndarray  # (3,)
    camera_id: int
    name: str


@dataclass
class ColmapModel:
    cameras: dict[int, ColmapCamera]
    images: dict[int, ColmapImage]
    points: np.ndarray  # (P, 3) float64
    colors: np.ndarray  # (P, 3) uint8
    folder: Path
    binary: bool


def find_model_dir(root: Path) -> Path | None:
    """The folder holding cameras.{bin,txt} among root, root/sparse/0, root/sparse, root/colmap/sparse/0."""
    for folder in (root, root / "sparse" / "0", root / "sparse", root / "colmap" / "sparse" / "0"):
        if (folder / "cameras.bin").is_file() or (folder / "cameras.txt").is_file():
            return folder
    return None


def camera_intrinsics(camera: ColmapCamera) -> tuple[np.ndarray, np.ndarray]:
    """(fx, fy, cx, cy) and distortion (k1, k2, k3, k4, p1, p2) of a supported camera model."""
    p = camera.params
    k = np.zeros(6)
    if camera.model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        intr = np.array([p[0], p[0], p[1], p[2]])
        k[: len(p) - 3] = p[3:]
    elif camera.model == "PINHOLE":
        intr = p[:4].copy()
    else:  # OPENCV: fx, fy, cx, cy, k1, k2, p1, p2
        intr = p[:4].copy()
        k[0], k[1], k[4], k[5] = p[4:8]
    return intr, k


def qvec_to_rotation(q: np.ndarray) -> np.ndarray:
    """(3, 3) rotation of a quaternion (w, x, y, z); normalised first."""
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def image_camera_to_world(image: ColmapImage) -> np.ndarray:
    """OpenGL camera-to-world (4, 4) of a COLMAP image."""
    w2c = np.eye(4)
    w2c[:3, :3] = qvec_to_rotation(image.qvec)
    w2c[:3, 3] = image.tvec
    return np.linalg.inv(w2c) @ OPENCV_TO_OPENGL


# ---------- text ----------
def _text_lines(path: Path):
    """(line number, fields) of the non-comment lines."""
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DatasetError(path, "not a text file (a binary model is named .bin)") from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield number, line.split()


def _parse(path: Path, number: int, kind, value: str, what: str):
    try:
        return kind(value)
    except ValueError:
        raise DatasetError(path, f"line {number}: {what} '{value}' is not a {kind.__name__}") from None


def _model_params(path: Path, where: str, model: str, params: np.ndarray) -> None:
    if model not in MODEL_IDS:
        raise DatasetError(path, f"{where}: unknown camera model '{model}'")
    expected = CAMERA_MODELS[MODEL_IDS[model]][1]
    if len(params) != expected:
        raise DatasetError(path, f"{where}: camera model {model} has {expected} parameters, got {len(params)}")


def read_cameras_text(path: Path) -> dict[int, ColmapCamera]:
    cameras = {}
    for number, f in _text_lines(path):
        if len(f) < 4:
            raise DatasetError(path, f"line {number}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]")
        cid = _parse(path, number, int, f[0], "camera id")
        params = np.array([_parse(path, number, float, v, "parameter") for v in f[4:]])
        _model_params(path, f"line {number} (camera {cid})", f[1], params)
        cameras[cid] = ColmapCamera(cid, f[1], _parse(path, number, int, f[2], "width"),
                                    _parse(path, number, int, f[3], "height"), params)
    return cameras


def read_images_text(path: Path) -> dict[int, ColmapImage]:
    """Image lines alternate with their 2D point lines, which are skipped."""
    images = {}
    lines = path.read_text(errors="replace").splitlines()
    number = 0
    while number < len(lines):
        line = lines[number].strip()
        number += 1
        if not line or line.startswith("#"):
            continue
        f = line.split(maxsplit=9)
        if len(f) < 10:
            raise DatasetError(path, f"line {number}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME")
        iid = _parse(path, number, int, f[0], "image id")
        values = np.array([_parse(path, number, float, v, "pose value") for v in f[1:8]])
        images[iid] = ColmapImage(iid, values[:4], values[4:], _parse(path, number, int, f[8], "camera id"),
                                  f[9].strip())
        number += 1  # the POINTS2D line of this image
    return images


def read_points_text(path: Path) -> tuple[np.ndarray, np.ndarray]:
    xyz, rgb = [], []
    for number, f in _text_lines(path):
        if len(f) < 7:
            raise DatasetError(path, f"line {number}: expected POINT3D_ID X Y Z R G B ERROR TRACK[]")
        xyz.append([_parse(path, number, float, v, "coordinate") for v in f[1:4]])
        rgb.append([_parse(path, number, int, v, "colour") for v in f[4:7]])
    colors = np.clip(np.array(rgb), 0, 255).astype(np.uint8).reshape(-1, 3)
    return np.array(xyz, dtype=np.float64).reshape(-1, 3), colors


# ---------- binary ----------
class _BinaryReader:
    """Little-endian records of a COLMAP .bin file; truncation is a DatasetError naming the record."""

    def __init__(self, path: Path):
        self.path, self.data, self.pos = path, path.read_bytes(), 0

    def take(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise DatasetError(self.path, f"file is truncated in {what} (byte {self.pos} of {len(self.data)})",
                               "Re-export the model with COLMAP (model_converter) or use the text model.")
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values

    def count(self, record_size: int, what: str) -> int:
        (n,) = self.take("Q", f"the number of {what}")
        if n * record_size > len(self.data) - self.pos:
            raise DatasetError(self.path, f"header says {n} {what} but the file is too short for them",
                               "The file is truncated or corrupt; re-export the model.")
        return n

    def string(self, what: str) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise DatasetError(self.path, f"file is truncated in {what}")
        raw, self.pos = self.data[self.pos:end], end + 1
        return raw.decode("utf-8", errors="replace")


def read_cameras_binary(path: Path) -> dict[int, ColmapCamera]:
    r = _BinaryReader(path)
    cameras = {}
    for i in range(r.count(24, "cameras")):
        cid, model_id, width, height = r.take("iiQQ", f"camera {i}")
        if model_id not in CAMERA_MODELS:
            raise DatasetError(path, f"camera {cid}: unknown camera model id {model_id}")
        name, n_params = CAMERA_MODELS[model_id]
        params = np.array(r.take("d" * n_params, f"camera {cid} parameters"))
        cameras[cid] = ColmapCamera(cid, name, width, height, params)
    return cameras


def read_images_binary(path: Path) -> dict[int, ColmapImage]:
    r = _BinaryReader(path)
    images = {}
    for i in range(r.count(64, "images")):
        values = r.take("i7di", f"image record {i}")
        name = r.string(f"the name of image {values[0]}")
        (n_points,) = r.take("Q", f"image {values[0]} ({name})")
        if n_points * 24 > len(r.data) - r.pos:
            raise DatasetError(path, f"image {values[0]} ({name}): {n_points} 2D points do not fit in the file")
        r.pos += 24 * n_points  # x, y, point3D_id per 2D point: not needed
        images[values[0]] = ColmapImage(values[0], np.array(values[1:5]), np.array(values[5:8]), values[8], name)
    return images


def read_points_binary(path: Path) -> tuple[np.ndarray, np.ndarray]:
    r = _BinaryReader(path)
    n = r.count(43, "points")
    xyz, rgb = np.zeros((n, 3)), np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        values = r.take("Q3d3BdQ", f"point {i}")
        xyz[i], rgb[i] = values[1:4], values[4:7]
        if values[8] * 8 > len(r.data) - r.pos:
            raise DatasetError(path, f"point {values[0]}: track of {values[8]} entries does not fit in the file")
        r.pos += 8 * values[8]  # track: (image_id, point2D_idx) int32 pairs
    return xyz, rgb


def read_colmap_model(folder: str | Path) -> ColmapModel:
    """Read cameras, images and (if present) points3D, binary preferred over text."""
    folder = Path(folder)
    binary = (folder / "cameras.bin").is_file()
    ext = "bin" if binary else "txt"
    for name in ("cameras", "images"):
        if not (folder / f"{name}.{ext}").is_file():
            raise DatasetError(folder / f"{name}.{ext}", "file is missing",
                               "A COLMAP sparse model holds cameras, images and points3D (.bin or .txt).")
    if binary:
        cameras, images = read_cameras_binary(folder / "cameras.bin"), read_images_binary(folder / "images.bin")
    else:
        cameras, images = read_cameras_text(folder / "cameras.txt"), read_images_text(folder / "images.txt")
    points_path = folder / f"points3D.{ext}"
    if points_path.is_file():
        points, colors = (read_points_binary if binary else read_points_text)(points_path)
    else:
        points, colors = np.zeros((0, 3)), np.zeros((0, 3), dtype=np.uint8)
    return ColmapModel(cameras, images, points, colors, folder, binary)


def colmap_capture(model: ColmapModel, image_dir: Path, name: str = "", root: Path | None = None,
                   allowed: tuple[Path, ...] = ()) -> Capture:
    """The model's registered images (sorted by name) as a Capture in COLMAP's world coordinates.

    Images are looked up in image_dir and must lie in root (the capture folder; default image_dir) or in
    `allowed` (see paths.capture_file)."""
    ext = "bin" if model.binary else "txt"
    images_file, cameras_file = model.folder / f"images.{ext}", model.folder / f"cameras.{ext}"
    if len(model.images) < MIN_REGISTERED:
        raise DatasetError(images_file, f"only {len(model.images)} images are registered (at least "
                           f"{MIN_REGISTERED} needed)", "COLMAP could not pose this capture: take more overlapping "
                           "photos, or re-run the mapper (e.g. with exhaustive matching).")
    ordered = sorted(model.images.values(), key=lambda im: im.name)
    poses, intrinsics, distortion, paths, records, sizes = [], [], [], [], [], set()
    for image in ordered:
        record = f"{images_file.name} image_id {image.image_id} ({image.name})"
        if image.camera_id not in model.cameras:
            raise DatasetError(images_file, f"image_id {image.image_id} ({image.name}) references camera_id "
                               f"{image.camera_id}, which {cameras_file.name} does not define",
                               f"Cameras defined: {sorted(model.cameras)}. Re-export the model from COLMAP.")
        camera = model.cameras[image.camera_id]
        if camera.model not in SUPPORTED_MODELS:
            raise DatasetError(cameras_file, f"camera_id {camera.camera_id}: camera model {camera.model} is not "
                               f"supported (supported: {', '.join(SUPPORTED_MODELS)})",
                               "Undistort the images with `colmap image_undistorter` and convert its output.")
        if not np.isfinite(image.qvec).all() or np.linalg.norm(image.qvec) < 1e-9 or not np.isfinite(image.tvec).all():
            raise DatasetError(images_file, f"image_id {image.image_id}: pose {image.qvec.tolist()} "
                               f"{image.tvec.tolist()} is not a finite rotation and translation")
        intr, k = camera_intrinsics(camera)
        poses.append(image_camera_to_world(image))
        intrinsics.append(intr)
        distortion.append(k)
        paths.append(capture_file(root or image_dir, image.name, images_file, f"image_id {image.image_id} name",
                                  allowed, base=image_dir))
        records.append(record)
        sizes.add((camera.width, camera.height))
    if len(sizes) > 1:
        raise DatasetError(cameras_file, f"cameras have different image sizes {sorted(sizes)}",
                           "Resize the images to one size (and rescale the intrinsics), or convert each size apart.")
    for path, record in zip(paths, records):
        if not path.is_file():
            raise DatasetError(path, f"image is missing (named by {record})",
                               f"Point --images at the folder of the images COLMAP ran on (looked in {image_dir}).")
    width, height = sizes.pop()
    capture = Capture(paths, np.stack(poses), np.stack(intrinsics), np.stack(distortion), int(width), int(height),
                      source="colmap", name=name, records=records, points=model.points, colors=model.colors)
    check_poses(capture, images_file)
    return capture
