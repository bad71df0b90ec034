"""Orbit videos of a trained run (RGB and depth side by side), written with imageio."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import matplotlib
import numpy as np
import torch
from tqdm import tqdm

from .datasets import Cameras
from .datasets.cameras import orbit_poses
from .evaluate import render_view
from .runs import LoadedRun


def orbit_cameras(reference: Cameras, n_frames: int, resolution: int | None = None) -> Cameras:
    """An orbit at the training cameras' mean distance and elevation, with their field of view."""
    positions = reference.camera_to_world[:, :3, 3]
    radius = positions.norm(dim=-1).mean().item()
    elevation = torch.rad2deg(torch.asin(positions[:, 2] / positions.norm(dim=-1))).mean().item()
    fov_x = 2 * torch.atan(reference.width / (2 * reference.focal[0, 0])).item()
    width = resolution or reference.width
    height = round(width * reference.height / reference.width)
    return Cameras.from_fov_x(orbit_poses(n_frames, radius, elevation), fov_x, width, height)


def colorize_depth(depth: torch.Tensor, opacity: torch.Tensor) -> np.ndarray:
    """Depth (H, W) to an RGB uint8 image (near bright, far dark, empty black)."""
    d = depth / opacity.clamp(min=1e-6)
    valid = opacity > 0.5
    lo, hi = (d[valid].min().item(), d[valid].max().item()) if valid.any() else (0.0, 1.0)
    norm = ((hi - d) / max(hi - lo, 1e-6)).clamp(0, 1) * valid
    return (matplotlib.colormaps["turbo"](norm.numpy())[..., :3] * 255).astype(np.uint8)


def render_orbit(run: LoadedRun, reference: Cameras, out_path: Path, n_frames: int = 60, fps: int = 24,
                 resolution: int | None = None, progress: bool = True) -> Path:
    """Render an orbit video (mp4 through imageio-ffmpeg, or gif by extension) of RGB | depth."""
    cameras = orbit_cameras(reference, n_frames, resolution)
    frames = []
    for i in tqdm(range(n_frames), desc="rendering", disable=not progress):
        view = render_view(run.field, run.renderer, cameras, i)
        rgb = (view["rgb"].numpy() * 255 + 0.5).astype(np.uint8)
        frames.append(np.concatenate([rgb, colorize_depth(view["depth"], view["opacity"])], axis=1))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if out_path.suffix == ".gif":
        imageio.mimsave(out_path, frames, duration=1000 / fps, loop=0)
    else:
        imageio.mimsave(out_path, frames, fps=fps, macro_block_size=1)
    return out_path
