"""LLFF forward-facing captures: `poses_bounds.npy` (N x 17) plus `images/`, rendered in NDC.

Each row holds a 3x5 matrix (camera-to-world in LLFF's [down, right, backwards] axes, then the column
height, width, focal) and the near and far depth bounds of that image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .cameras import Cameras
from .capture import Capture, Normalization, apply_normalization, check_poses, ndc_frame
from .dataset_error import DatasetError
from .images import image_size
from .paths import capture_files

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")
NDC_NEAR = 1.0
BOUNDS_MARGIN = 0.75  # scale so that the nearest bound lands at 1 / 0.75 (as in NeRF's LLFF loader)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in IMAGE_SUFFIXES) if folder.is_dir() else []


def read_poses_bounds(path: Path) -> np.ndarray:
    """(N, 17) float64 array; errors name the file."""
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as err:  # numpy raises ValueError, OSError, EOFError... for bad files
        raise DatasetError(path, f"not a readable .npy array ({err.__class__.__name__}: {err})",
                           "Regenerate it with LLFF's imgs2poses.py.") from None
    if data.ndim != 2 or data.shape[1] != 17 or data.shape[0] == 0 or not np.issubdtype(data.dtype, np.number):
        raise DatasetError(path, f"expected an N x 17 numeric array, got shape {data.shape} of {data.dtype}")
    data = data.astype(np.float64)
    if not np.isfinite(data).all():
        raise DatasetError(path, f"row {int(np.flatnonzero(~np.isfinite(data).all(1))[0])} holds NaN or infinity")
    bounds = data[:, 15:17]
    bad = (bounds[:, 0] <= 0) | (bounds[:, 1] <= bounds[:, 0])
    if bad.any():
        raise DatasetError(path, f"row {int(np.flatnonzero(bad)[0])}: bounds must satisfy 0 < near < far, got "
                           f"{bounds[bad][0].tolist()}")
    return data


def read_llff_capture(scene_dir: str | Path, allowed: tuple[Path, ...] = ()) -> Capture:
    """An LLFF scene in its own coordinates (OpenGL camera-to-world, bounds per image).

    allowed: folders outside the scene its images (symlinks in images/) may lie in (see paths.capture_file)."""
    scene_dir = Path(scene_dir)
    path = scene_dir / "poses_bounds.npy"
    data = read_poses_bounds(path)
    images = capture_files(scene_dir, list_images(scene_dir / "images"), scene_dir / "images", allowed)
    if len(images) != len(data):
        raise DatasetError(scene_dir / "images", f"holds {len(images)} images but {path.name} has {len(data)} rows",
                           "Each row of poses_bounds.npy poses one image of images/, in sorted name order.")
    mats = data[:, :15].reshape(-1, 3, 5)
    height, width = mats[0, :, 4][:2]
    focal = mats[:, 2, 4]
    c2w = np.tile(np.eye(4), (len(data), 1, 1))
    # LLFF columns are [down, right, backwards]; OpenGL wants [right, up, backwards].
    c2w[:, :3, 0], c2w[:, :3, 1] = mats[:, :, 1], -mats[:, :, 0]
    c2w[:, :3, 2], c2w[:, :3, 3] = mats[:, :, 2], mats[:, :, 3]
    intrinsics = np.stack([focal, focal, np.full_like(focal, width / 2), np.full_like(focal, height / 2)], axis=1)
    actual_w, actual_h = image_size(images[0], f"{path.name} row 0")
    if abs(actual_w / width - actual_h / height) > 0.01:
        raise DatasetError(images[0], f"image is {actual_w}x{actual_h} but {path.name} row 0 states "
                           f"{width:.0f}x{height:.0f} (a different aspect ratio)")
    intrinsics *= actual_w / width  # images/ may hold a downscaled copy of the posed images
    width, height = actual_w, actual_h
    capture = Capture(images, c2w, intrinsics, np.zeros((len(data), 6)), int(round(width)), int(round(height)),
                      source="llff", name=scene_dir.name, records=[f"{path.name} row {i}" for i in range(len(data))],
                      bounds=data[:, 15:17].copy())
    check_poses(capture, path)
    return capture


def average_pose(c2w: np.ndarray) -> np.ndarray:
    """(4, 4) camera-to-world at the mean position, facing the mean viewing direction, mean up."""
    center = c2w[:, :3, 3].mean(axis=0)
    back = c2w[:, :3, 2].sum(axis=0)
    back /= np.linalg.norm(back)
    right = np.cross(c2w[:, :3, 1].sum(axis=0), back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, back, center
    return pose


def normalise_forward_facing(capture: Capture) -> Capture:
    """Recentre on the average pose (looking down -z) and scale so the nearest bound is 1 / 0.75; NDC rays."""
    avg = average_pose(capture.camera_to_world)
    norm = Normalization(center=avg[:3, 3], scale=1.0 / (capture.bounds.min() * BOUNDS_MARGIN),
                         rotation=avg[:3, :3].T)
    out = apply_normalization(capture, norm, aabb=np.array([-1.0, -1, -1, 1, 1, 1]), near=0.0, bounded=True)
    out.ndc_near = NDC_NEAR
    out.aabb = ndc_box(out)
    return out


def ndc_box(capture: Capture) -> np.ndarray:
    """(6,) box in NDC holding every camera's frustum from the near plane (z = -1) to infinity (z = 1)."""
    n = len(capture)
    intrinsics = torch.from_numpy(capture.intrinsics).float()
    cameras = Cameras(torch.from_numpy(capture.camera_to_world).float(), intrinsics[:, :2], intrinsics[:, 2:],
                      capture.width, capture.height, ndc=ndc_frame(capture))
    xs = torch.tensor([0.0, capture.width, 0.0, capture.width]).repeat(n)
    ys = torch.tensor([0.0, 0.0, capture.height, capture.height]).repeat(n)
    rays = cameras.rays(torch.arange(n).repeat_interleave(4), xs, ys)
    far = rays.origins + rays.directions * (2.0 / rays.directions[:, 2:3])
    corners = torch.cat([rays.origins, far])[:, :2]
    lo = torch.minimum(corners.min(0).values, torch.tensor(-1.0)).tolist()
    hi = torch.maximum(corners.max(0).values, torch.tensor(1.0)).tolist()
    return np.array([lo[0], lo[1], -1.0, hi[0], hi[1], 1.0])
