"""Videos of a trained run (RGB and depth side by side) along an orbit (a spiral for forward-facing scenes)
or a camera path, written with imageio."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch
from tqdm import tqdm

from ..datasets import Cameras, NDCFrame
from ..datasets.cameras import look_at, orbit_poses
from ..engine.evaluation import render_view
from ..engine.pictures import colorize_depth, to_uint8
from ..engine.runs import LoadedRun
from .camera_path import load_camera_path

SPIRAL_FOCUS = 5.0  # forward-facing spirals look at a point this far ahead (LLFF scenes: nearest content ~1.3)


def orbit_cameras(reference: Cameras, n_frames: int, resolution: int | None = None) -> Cameras:
    """An orbit at the training cameras' mean distance and elevation, with their field of view; for a
    forward-facing scene (NDC), a spiral in front of the cameras instead (`spiral_cameras`)."""
    if reference.ndc is not None:
        return spiral_cameras(reference, n_frames, resolution)
    positions = reference.camera_to_world[:, :3, 3]
    radius = positions.norm(dim=-1).mean().item()
    elevation = torch.rad2deg(torch.asin(positions[:, 2] / positions.norm(dim=-1))).mean().item()
    fov_x = 2 * torch.atan(reference.width / (2 * reference.focal[0, 0])).item()
    width = resolution or reference.width
    height = round(width * reference.height / reference.width)
    return Cameras.from_fov_x(orbit_poses(n_frames, radius, elevation), fov_x, width, height)


def spiral_cameras(reference: Cameras, n_frames: int, resolution: int | None = None, turns: float = 2.0) -> Cameras:
    """NeRF's forward-facing spiral: about the mean camera, radii the 90th percentile of the cameras' offsets
    along its right, up and forward axes, looking at a point SPIRAL_FOCUS ahead; the reference's field of
    view and NDC frame."""
    c2w = reference.camera_to_world
    centre = c2w[:, :3, 3].mean(0)
    forward = -c2w[:, :3, 2].mean(0)
    right = torch.linalg.cross(forward, c2w[:, :3, 1].mean(0))
    right, forward = right / right.norm(), forward / forward.norm()
    up = torch.linalg.cross(right, forward)
    axes = torch.stack([right, up, forward])  # (3, 3)
    radii = ((c2w[:, :3, 3] - centre) @ axes.T).abs().quantile(0.9, dim=0)
    angles = torch.linspace(0, 2 * torch.pi * turns, n_frames + 1)[:-1]
    offsets = torch.stack([angles.cos(), angles.sin(), (0.5 * angles).sin()], dim=-1) * radii
    focus = centre + SPIRAL_FOCUS * forward
    poses = torch.stack([look_at(centre + o @ axes, focus, up) for o in offsets])
    fov_x = 2 * torch.atan(reference.width / (2 * reference.focal[0, 0])).item()
    width = resolution or reference.width
    cameras = Cameras.from_fov_x(poses, fov_x, width, round(width * reference.height / reference.width))
    cameras.ndc = reference.ndc
    return cameras


def render_video(run: LoadedRun, cameras: Cameras, out_path: Path, fps: int = 24, progress: bool = True) -> Path:
    """Render one frame per camera, RGB | depth side by side, as mp4 (imageio-ffmpeg) or gif (by extension)."""
    frames = []
    bar = tqdm(range(len(cameras)), desc="rendering", unit="frame", disable=not progress, dynamic_ncols=True)
    for i in bar:
        view = render_view(run.field, run.renderer, cameras, i)
        frames.append(np.concatenate([to_uint8(view["rgb"]), colorize_depth(view["depth"], view["opacity"])], axis=1))
        bar.set_postfix_str(f"{cameras.width}x{cameras.height}, {bar.format_dict['rate'] or 0:.2f} frames/s")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if out_path.suffix == ".gif":
        imageio.mimsave(out_path, frames, duration=1000 / fps, loop=0)
    else:
        imageio.mimsave(out_path, frames, fps=fps, macro_block_size=1)
    return out_path


def render_orbit(run: LoadedRun, reference: Cameras, out_path: Path, n_frames: int = 60, fps: int = 24,
                 resolution: int | None = None, progress: bool = True) -> Path:
    """Render an orbit video of RGB | depth around the scene (see `render_video`)."""
    return render_video(run, orbit_cameras(reference, n_frames, resolution), out_path, fps, progress)


def render_camera_path(run: LoadedRun, path_file: Path, out_path: Path, n_frames: int | None = None,
                       fps: float | None = None, resolution: int | None = None, progress: bool = True,
                       ndc: NDCFrame | None = None, transform_path: Path | str | None = None) -> Path:
    """Render a camera path file (either format, see nfields.outputs.camera_path) as a video of RGB | depth;
    ndc: the scene's NDC frame (forward-facing scenes: the training cameras' `ndc`); transform_path: nerfstudio's
    dataparser_transforms.json for a path saved in that nerfstudio run's world."""
    path = load_camera_path(path_file, transform_path)
    return render_video(run, path.cameras(n_frames, resolution, ndc), out_path, fps or path.fps, progress)
