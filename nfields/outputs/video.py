"""Videos of a trained run (RGB, depth or both) along an orbit (a spiral for forward-facing scenes) or a camera
path; where they go: nfields.outputs.video_files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from tqdm import tqdm

from ..datasets import Cameras, NDCFrame
from ..datasets.cameras import look_at, orbit_poses
from ..engine.evaluation import render_view
from ..engine.pictures import depth_image, depth_limits, surface_depth, to_uint8
from ..engine.runs import LoadedRun
from .camera_path import load_camera_path
from .video_files import VideoOutput

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


def render_video(run: LoadedRun, cameras: Cameras, out: VideoOutput, progress: bool = True) -> list[Path]:
    """Render one frame per camera into `out`'s files (checked first); depth on one colour scale for the whole
    video. Returns the videos written."""
    out.check()
    rgb, depth = [], []
    bar = tqdm(range(len(cameras)), desc="rendering", unit="frame", disable=not progress, dynamic_ncols=True)
    for i in bar:
        view = render_view(run.field, run.renderer, cameras, i)
        if "rgb" in out.streams:
            rgb.append(to_uint8(view["rgb"]))
        if "depth" in out.streams:
            depth.append(surface_depth(view["depth"], view["opacity"]))
        bar.set_postfix_str(f"{cameras.width}x{cameras.height}, {bar.format_dict['rate'] or 0:.2f} frames/s")
    limits = depth_limits(depth)
    return out.write({"rgb": rgb, "depth": [depth_image(d, limits) for d in depth]})


def render_orbit(run: LoadedRun, reference: Cameras, out: VideoOutput, n_frames: int = 60,
                 resolution: int | None = None, progress: bool = True) -> list[Path]:
    """Render an orbit video around the scene (see `render_video`)."""
    return render_video(run, orbit_cameras(reference, n_frames, resolution), out, progress)


def render_camera_path(run: LoadedRun, path_file: Path, out: VideoOutput, n_frames: int | None = None,
                       resolution: int | None = None, progress: bool = True, ndc: NDCFrame | None = None,
                       transform_path: Path | str | None = None, interpolation: str = "spline") -> list[Path]:
    """Render a camera path file (either format, see nfields.outputs.camera_path; `out.fps` None: the path's);
    ndc: the scene's NDC frame (forward-facing scenes: the training cameras' `ndc`); transform_path: nerfstudio's
    dataparser_transforms.json for a path saved in that nerfstudio run's world; interpolation: "spline" or
    "linear" (nfields.outputs.path_interpolation)."""
    path = load_camera_path(path_file, transform_path)
    cameras = path.cameras(n_frames, resolution, ndc, interpolation)
    return render_video(run, cameras, dataclasses.replace(out, fps=out.fps or path.fps), progress)
