"""The viewer's frames: browser cameras to toolkit cameras, and renders that stop when the camera moves."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..datasets import Cameras, NDCFrame
from ..engine.pictures import colorize_depth, to_uint8
from ..fields import Field
from ..renderers import VolumeRenderer
from .share import ComputeShare

OUTPUTS = ("RGB", "Depth", "Opacity")
WHITE = torch.ones(3)
# viser's cameras use OpenCV axes (+y down, looking down +z); the toolkit's use OpenGL axes.
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])


def camera_to_world(wxyz, position) -> np.ndarray:
    """A viser camera pose (quaternion w, x, y, z; position) as an OpenGL camera-to-world (4, 4)."""
    w, x, y, z = (float(v) for v in wxyz)
    c2w = np.eye(4)
    c2w[:3, :3] = Rotation.from_quat([x, y, z, w]).as_matrix() @ OPENCV_TO_OPENGL
    c2w[:3, 3] = np.asarray(position, dtype=np.float64)
    return c2w


def viser_pose(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An OpenGL camera-to-world (4, 4) as a viser pose: quaternion (w, x, y, z) and position."""
    x, y, z, w = Rotation.from_matrix(np.asarray(c2w)[:3, :3] @ OPENCV_TO_OPENGL).as_quat()
    return np.array([w, x, y, z]), np.asarray(c2w)[:3, 3].copy()


def pinhole(c2w: np.ndarray, fov_y: float, width: int, height: int, ndc: NDCFrame | None = None) -> Cameras:
    """One camera with vertical field of view `fov_y` (radians), square pixels, centred principal point;
    ndc: the scene's NDC frame (forward-facing scenes)."""
    f = 0.5 * height / math.tan(0.5 * fov_y)
    return Cameras(torch.as_tensor(c2w, dtype=torch.float32)[None], torch.tensor([[f, f]], dtype=torch.float32),
                   torch.tensor([[width / 2.0, height / 2.0]]), width, height, ndc=ndc)


def frame_size(aspect: float, pixels: float, max_height: int) -> tuple[int, int]:
    """Width and height with `aspect` (width / height) and about `pixels` pixels, height <= max_height."""
    height = int(max(8, min(max_height, math.sqrt(max(pixels, 64) / aspect))))
    return max(8, round(height * aspect)), height


MIN_MOVING_HEIGHT = 48


def moving_frame_size(aspect: float, full_height: int, seconds_per_pixel: float | None, overhead: float,
                      target_seconds: float) -> tuple[int, int]:
    """The frame size expected to render in `target_seconds`, from a cost model seconds = overhead +
    seconds_per_pixel * pixels; 64 rows before anything was measured, never below MIN_MOVING_HEIGHT rows."""
    if seconds_per_pixel is None:
        return frame_size(aspect, 64 * 64 * aspect, min(64, full_height))
    pixels = max(target_seconds - overhead, 0.0) / seconds_per_pixel
    floor = min(MIN_MOVING_HEIGHT, full_height) ** 2 * aspect
    return frame_size(aspect, max(pixels, floor), full_height)


def to_image(rgb: torch.Tensor, depth: torch.Tensor, opacity: torch.Tensor, output: str) -> np.ndarray:
    """(H, W, 3) uint8 for the chosen output: RGB, depth (turbo colour map, near bright) or opacity."""
    if output == "Depth":
        return colorize_depth(depth, opacity)
    if output == "Opacity":
        return to_uint8(opacity[..., None].expand(*opacity.shape, 3))
    return to_uint8(rgb)


def render_frame(field: Field, renderer: VolumeRenderer, camera: Cameras, output: str, share: ComputeShare,
                 interrupted: Callable[[], bool] = lambda: False, rows_per_chunk: int | None = None,
                 crop: torch.Tensor | None = None) -> np.ndarray | None:
    """Render camera 0 of `camera` in chunks of image rows (each a turn of `share`) as (H, W, 3) uint8;
    crop: an optional box (6,) outside which the field counts as empty.

    Returns None as soon as `interrupted()` turns true between chunks (a newer camera arrived).
    """
    h, w = camera.height, camera.width
    rows = rows_per_chunk or max(1, (1 << 13) // w)
    rays = camera.image_rays(0)
    device = renderer.aabb.device
    parts = []
    for start in range(0, h, rows):
        if interrupted():
            return None
        sl = slice(start * w, min(h, start + rows) * w)
        with share.render_chunk():
            parts.append(renderer.render_chunked(field, rays.origins[sl].to(device), rays.directions[sl].to(device),
                                                 WHITE.to(device), crop=crop))
    rgb = torch.cat([p.rgb for p in parts]).view(h, w, 3).cpu()
    depth = torch.cat([p.depth for p in parts]).view(h, w).cpu()
    opacity = torch.cat([p.opacity for p in parts]).view(h, w).cpu()
    return to_image(rgb, depth, opacity, output)
