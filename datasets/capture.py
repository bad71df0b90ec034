"""A capture: posed images in one common form that every input format is read into.

Readers (blender, colmap, llff, transforms) build a Capture in the capture's own coordinates;
`normalise` maps it into the scene box; `capture_scene` reads one split's images into a SceneData.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .cameras import Cameras, NDCFrame
from .dataset_error import DatasetError
from .frame_data import read_frame_data
from .images import read_image_list, read_images, stack_padded
from .paths import capture_file
from .scene import SceneData

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
SPLITS = ("train", "val", "test")
# Training resolution chosen by size: the long side at most this many pixels (CUDA: nerfstudio's 1600).
MAX_LONG_SIDE = {"cpu": 1000, "cuda": 1600}
HOLDOUT_EVERY = 8  # captures without splits: every 8th image is held out for val/test (LLFF convention)
UNBOUNDED_NOTE = ("captured scene normalised into the box by its camera positions; content beyond the box is "
                  "contracted into a shell around it and marched through occupancy-grid cascades")


@dataclass
class Normalization:
    """p_scene = scale * (rotation @ p_capture - rotation @ center): capture coordinates into the scene box."""

    center: np.ndarray = field(default_factory=lambda: np.zeros(3))
    scale: float = 1.0
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def matrix(self) -> np.ndarray:
        """(4, 4) similarity taking homogeneous capture points into the scene."""
        m = np.eye(4)
        m[:3, :3] = self.scale * self.rotation
        m[:3, 3] = -self.scale * self.rotation @ self.center
        return m

    def apply_to_poses(self, c2w: np.ndarray) -> np.ndarray:
        """Camera-to-world (N, 4, 4) in capture coordinates -> scene coordinates (rotations stay orthonormal)."""
        out = c2w.copy()
        out[:, :3, :3] = self.rotation @ c2w[:, :3, :3]
        out[:, :3, 3] = self.scale * (c2w[:, :3, 3] - self.center) @ self.rotation.T
        return out

    def invert_points(self, points: np.ndarray) -> np.ndarray:
        """Scene points (N, 3) -> capture coordinates: R^T p / scale + center."""
        return np.asarray(points, dtype=np.float64) @ self.rotation / self.scale + self.center

    def invert_poses(self, c2w: np.ndarray) -> np.ndarray:
        """Scene camera-to-world (N, 4, 4) -> capture coordinates (for exports)."""
        out = c2w.copy()
        out[:, :3, :3] = self.rotation.T @ c2w[:, :3, :3]
        out[:, :3, 3] = self.invert_points(c2w[:, :3, 3])
        return out

    def after(self, first: "Normalization") -> "Normalization":
        """`first`, then this one: one similarity (a converted scene normalised again keeps mapping its capture)."""
        return Normalization(center=first.center + first.rotation.T @ self.center / first.scale,
                             scale=first.scale * self.scale, rotation=self.rotation @ first.rotation)

    def to_json(self) -> dict:
        return {"center": self.center.tolist(), "scale": float(self.scale), "rotation": self.rotation.tolist(),
                "capture_to_scene": self.matrix().tolist()}


@dataclass
class Capture:
    """Posed images. N images, P sparse points.

    camera_to_world: (N, 4, 4) OpenGL axes. intrinsics: (N, 4) fx, fy, cx, cy in pixels of the full-size image.
    distortion: (N, 6) k1, k2, k3, k4, p1, p2 (zeros: pinhole). width, height: full image size (images of
    several sizes: the largest width and height). sizes: (N, 2) int full width, height per image where images differ
    in size, else None.
    bounds: (N, 2) near, far per image (LLFF) or None. points, colors: (P, 3) float64 / uint8 or None.
    splits: split name -> image indices. aabb: (6,) box holding the content; near: ray start distance.
    bounded: the content lies inside aabb. ndc_near: forward-facing scene rendered in NDC with this near plane.
    fisheye: every camera follows OpenCV's equidistant fisheye model with k1..k4 of `distortion` (OPENCV_FISHEYE).
    mask_paths, depth_paths: per image, its mask / z-depth map (see frame_data.py) or None; depth_unit: depth map
    values times depth_unit are units of camera_to_world (apply_normalization scales it with the poses).
    scene_type: forward-facing, object or unbounded (see scene_type.py), and scene_type_reason: why, in one line.
    """

    image_paths: list[Path]
    camera_to_world: np.ndarray
    intrinsics: np.ndarray
    distortion: np.ndarray
    width: int
    height: int
    source: str  # format name, e.g. "colmap"
    name: str = ""
    records: list[str] = field(default_factory=list)  # e.g. "images.txt image_id 3", for error messages
    bounds: np.ndarray | None = None
    points: np.ndarray | None = None
    colors: np.ndarray | None = None
    splits: dict[str, list[int]] = field(default_factory=dict)
    aabb: np.ndarray | None = None
    near: float = 0.0
    bounded: bool = True
    ndc_near: float | None = None
    normalization: Normalization = field(default_factory=Normalization)
    image_dirs: dict[int, Path] = field(default_factory=dict)  # downscale factor -> folder of pre-scaled images
    fisheye: bool = False
    mask_paths: list[Path] | None = None
    depth_paths: list[Path] | None = None
    depth_unit: float = 1.0
    scene_type: str = ""
    scene_type_reason: str = ""
    sizes: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.image_paths)
        if not self.records:
            self.records = [f"image {i}" for i in range(n)]
        if not self.splits:
            self.splits = holdout_splits(n)

    def __len__(self) -> int:
        return len(self.image_paths)

    def size(self, index: int) -> tuple[int, int]:
        """(width, height) of image `index` at full size."""
        if self.sizes is None:
            return self.width, self.height
        return int(self.sizes[index, 0]), int(self.sizes[index, 1])


def holdout_splits(n: int) -> dict[str, list[int]]:
    """Every 8th image (from the first) for val and test, the rest for training (a single image: train only)."""
    held = list(range(0, n, HOLDOUT_EVERY)) if n >= 2 else []
    return {"train": [i for i in range(n) if i not in held], "val": held, "test": held}


def matrix_problem(m: np.ndarray, shape: tuple[int, int]) -> str:
    """What is wrong with a numeric matrix that should be finite of `shape`, for a message ('' when nothing):
    e.g. "has shape (3, 3), expected 4x4" or "entry [0][3] is nan"."""
    if m.shape != shape:
        return f"has shape {m.shape}, expected {shape[0]}x{shape[1]}"
    bad = np.argwhere(~np.isfinite(m))
    if len(bad):
        r, c = bad[0]
        return f"entry [{r}][{c}] is {m[r, c]}, not a finite number"
    return ""


def check_poses(capture: Capture, origin: Path) -> None:
    """Every pose a finite rigid transform; intrinsics finite with positive focal lengths."""
    for i, pose in enumerate(capture.camera_to_world):
        problem = matrix_problem(pose, (4, 4))
        if not problem:
            rot = pose[:3, :3]
            with np.errstate(over="ignore", invalid="ignore"):
                if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-3):
                    problem = "rotation part is not orthonormal (a scale or shear?)"
        if problem:
            raise DatasetError(origin, f"{capture.records[i]}: camera pose {problem}")
    bad = ~np.isfinite(capture.intrinsics).all(axis=1) | (capture.intrinsics[:, :2] <= 0).any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(origin, f"{capture.records[i]}: intrinsics must be finite with positive focal lengths, "
                                   f"got fx, fy, cx, cy = {capture.intrinsics[i].tolist()}")


def up_rotation(c2w: np.ndarray) -> np.ndarray:
    """(3, 3) rotation taking the mean camera up vector (OpenGL +y) to +z."""
    up = c2w[:, :3, 1].mean(axis=0)
    up = up / max(np.linalg.norm(up), 1e-12)
    z = np.array([0.0, 0.0, 1.0])
    v, c = np.cross(up, z), float(up @ z)
    if np.linalg.norm(v) < 1e-9:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def normalise_captured(capture: Capture, center: np.ndarray | None = None) -> Capture:
    """A real capture: up to +z, centred on `center` (capture coordinates; None: the mean camera position),
    scaled so that every camera lies inside [-1, 1]^3.

    The scene is marked unbounded: see UNBOUNDED_NOTE.
    """
    rotation = up_rotation(capture.camera_to_world)
    positions = capture.camera_to_world[:, :3, 3] @ rotation.T
    center_rot = positions.mean(axis=0) if center is None else rotation @ np.asarray(center, dtype=np.float64)
    extent = np.abs(positions - center_rot).max()
    norm = Normalization(center=rotation.T @ center_rot, scale=1.0 / max(float(extent), 1e-9), rotation=rotation)
    # Rays start a little way out of the camera: the space right in front of a lens is seen by that camera alone,
    # and a field fills it with floaters that paint one photo. Around an object, that is 15 % of the median
    # camera distance to it (nerfacc's mip-NeRF 360 setting, near 0.2, is about that share).
    distance = float(np.median(np.linalg.norm(positions - center_rot, axis=1)))
    near = 0.05 if center is None else 0.15 * distance * norm.scale
    return apply_normalization(capture, norm, aabb=np.array([-1.0, -1, -1, 1, 1, 1]), near=near, bounded=False)


def ndc_frame(capture: Capture) -> NDCFrame | None:
    """The NDC frame of a forward-facing capture, from its first camera's full-resolution intrinsics."""
    if capture.ndc_near is None:
        return None
    fx, fy = capture.intrinsics[0, :2]
    return NDCFrame.of_camera(float(fx), float(fy), *capture.size(0), capture.ndc_near)


def apply_normalization(capture: Capture, norm: Normalization, aabb: np.ndarray, near: float,
                        bounded: bool) -> Capture:
    """The capture in scene coordinates, with its box and the normalisation recorded (composed with the one
    it already had: a converted scene normalised again still maps back to its capture)."""
    points = None if capture.points is None else (capture.points - norm.center) @ norm.rotation.T * norm.scale
    bounds = None if capture.bounds is None else capture.bounds * norm.scale
    return replace(capture, camera_to_world=norm.apply_to_poses(capture.camera_to_world), points=points,
                   bounds=bounds, aabb=np.asarray(aabb, dtype=np.float64), near=near, bounded=bounded,
                   ndc_near=None, normalization=norm.after(capture.normalization),
                   depth_unit=capture.depth_unit * norm.scale)


def capture_scene(capture: Capture, split: str, downscale: int = 1) -> SceneData:
    """Read one split's images and cameras. downscale: integer; uses `image_dirs[downscale]` when present."""
    if split not in capture.splits:
        raise DatasetError(capture.image_paths[0].parent, f"split '{split}' does not exist; "
                           f"splits are {', '.join(capture.splits)}")
    indices = capture.splits[split]
    if not indices:
        raise DatasetError(capture.image_paths[0].parent, f"split '{split}' holds no images",
                           "A capture of one image has no held-out views; give the file split lists.")
    prescaled = capture.image_dirs.get(downscale)
    paths = [prescaled / capture.image_paths[i].name if prescaled else capture.image_paths[i] for i in indices]
    records = [capture.records[i] for i in indices]
    if capture.sizes is None:
        image_list = list(read_images(paths, records, 1 if prescaled else downscale))
    else:
        image_list = read_image_list(paths, records, 1 if prescaled else downscale)
    for img, path, i in zip(image_list, paths, indices):
        check_image_size(capture, i, img, path, downscale, prescaled)
    sizes = torch.tensor([[img.shape[1], img.shape[0]] for img in image_list])
    sizes = None if (sizes == sizes[0]).all() else sizes
    images = np.stack(image_list) if sizes is None else stack_padded(image_list)
    h, w = images.shape[1:3]
    intr = torch.from_numpy(capture.intrinsics[indices]).float()
    scale = float(downscale)
    distortion = torch.from_numpy(capture.distortion[indices]).float()
    cameras = Cameras(
        torch.from_numpy(capture.camera_to_world[indices]).float(), intr[:, :2] / scale, intr[:, 2:] / scale, w, h,
        distortion=distortion if distortion.abs().max() > 0 else None, ndc=ndc_frame(capture),
        fisheye=capture.fisheye, sizes=sizes,
    )
    bounds = None if capture.bounds is None else torch.from_numpy(capture.bounds[indices]).float()
    masks, depths = read_frame_data(capture, indices, downscale)
    return SceneData(cameras, torch.from_numpy(images), torch.from_numpy(capture.aabb).float(),
                     name=capture.name, near=capture.near, bounds=bounds, bounded=capture.bounded,
                     masks=masks, depths=depths, scene_type=capture.scene_type,
                     scene_type_reason=capture.scene_type_reason)


def check_image_size(capture: Capture, index: int, img: np.ndarray, path: Path, downscale: int,
                     prescaled: Path | None) -> None:
    """Image `index` as read (H, W, C) has the size its record states, divided by `downscale` (a pre-scaled copy:
    within a pixel)."""
    h, w = img.shape[:2]
    width, height = capture.size(index)
    if not prescaled and (w, h) != (width // downscale, height // downscale):
        raise DatasetError(path, f"image is {w * downscale}x{h * downscale} but {capture.records[index]} "
                           f"states {width}x{height}",
                           "The images must be the ones the poses were computed on (not a resized copy).")
    if prescaled and (abs(w - width / downscale) > 1 or abs(h - height / downscale) > 1):
        raise DatasetError(path, f"image is {w}x{h}, but as a copy of {width}x{height} "
                           f"downscaled {downscale} times it should be {width // downscale}x{height // downscale}",
                           f"Remove {prescaled.name}/ or rewrite it from the full-size images.")


def choose_downscale(width: int, height: int, device: str = "cpu") -> int:
    """The smallest integer factor bringing the long side to MAX_LONG_SIDE[device] pixels or fewer."""
    limit = MAX_LONG_SIDE.get(device, MAX_LONG_SIDE["cpu"])
    long_side = max(int(width), int(height))
    return max(1, next(k for k in range(1, long_side + 1) if long_side // k <= limit))


def prescaled_dirs(capture: Capture, root: Path, origin: Path | str, allowed: tuple[Path, ...] = ()) -> dict[int, Path]:
    """Folders `<images>_K/` beside the capture's one image folder holding a copy of every image under the same
    name (nerfstudio's images_2/4/8, LLFF's images_4/8): downscale factor K -> folder. A folder with a file
    missing, or outside the capture (see paths.capture_file), is left out."""
    folders = {p.parent for p in capture.image_paths}
    if len(folders) != 1:
        return {}
    folder = folders.pop()
    found = {}
    for candidate in sorted(folder.parent.glob(f"{glob.escape(folder.name)}_*")):
        factor = candidate.name[len(folder.name) + 1:]
        if not (factor.isdigit() and int(factor) >= 2 and candidate.is_dir()):
            continue
        try:
            if all(capture_file(root, p.name, origin, "image", allowed, base=candidate).is_file()
                   for p in capture.image_paths):
                found[int(factor)] = candidate
        except DatasetError:  # a copy outside the capture: not read (the images are resized on load instead)
            continue
    return found
