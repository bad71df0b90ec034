"""A small scene the toolkit renders itself: analytic spheres and a box with known geometry.

It stands in for real data in fast tests: exact images from any camera, exact signed distances. Its
unbounded variant adds a coloured sky sphere far outside the scene box, as real captures have.
"""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import torch

from .cameras import Cameras, orbit_poses
from .scene import SceneData

# (centre xyz, radius, rgb)
SPHERES = (
    ((0.0, 0.0, 0.0), 0.45, (0.85, 0.25, 0.2)),
    ((0.55, 0.3, -0.15), 0.25, (0.2, 0.6, 0.9)),
    ((-0.45, -0.35, 0.2), 0.3, (0.95, 0.8, 0.25)),
)
# (min xyz, max xyz, rgb)
BOX = ((-0.7, -0.7, -0.65), (0.7, 0.7, -0.45), (0.3, 0.75, 0.35))
LIGHT = (0.4, 0.3, 0.85)
AABB = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0)
SKY_RADIUS = 6.0  # the unbounded variant's sky: 6x the box's half-size, inside the 4th occupancy cascade


def procedural_sdf(points: torch.Tensor) -> torch.Tensor:
    """Signed distance (N,) of points (N, 3) to the union of the primitives (negative inside)."""
    dists = [(points - torch.tensor(c)).norm(dim=-1) - r for c, r, _ in SPHERES]
    lo, hi = torch.tensor(BOX[0]), torch.tensor(BOX[1])
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    q = (points - centre).abs() - half
    dists.append(q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0))
    return torch.stack(dists).min(dim=0).values


def _hit_spheres(o, d):
    best_t = torch.full(o.shape[:1], float("inf"))
    normal, colour = torch.zeros_like(o), torch.zeros_like(o)
    for centre, radius, rgb in SPHERES:
        oc = o - torch.tensor(centre)
        b = (oc * d).sum(-1)
        disc = b * b - (oc * oc).sum(-1) + radius**2
        t = -b - disc.clamp(min=0).sqrt()
        hit = (disc > 0) & (t > 0) & (t < best_t)
        best_t = torch.where(hit, t, best_t)
        normal = torch.where(hit[:, None], (oc + t[:, None] * d) / radius, normal)
        colour = torch.where(hit[:, None], torch.tensor(rgb), colour)
    return best_t, normal, colour


def _hit_box(o, d):
    lo, hi = torch.tensor(BOX[0]), torch.tensor(BOX[1])
    inv = 1.0 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    t0, t1 = (lo - o) * inv, (hi - o) * inv
    t_near = torch.minimum(t0, t1).max(-1).values
    t_far = torch.maximum(t0, t1).min(-1).values
    hit = (t_near <= t_far) & (t_near > 0)
    axis = torch.minimum(t0, t1).argmax(-1)
    normal = -torch.nn.functional.one_hot(axis, 3).float() * torch.sign(d)
    return torch.where(hit, t_near, torch.full_like(t_near, float("inf"))), normal


def _hit_sky(o, d):
    """Rays leaving from inside the sky sphere: where they meet it and its colour (smooth in position)."""
    b = (o * d).sum(-1)
    t = -b + (b * b - (o * o).sum(-1) + SKY_RADIUS**2).clamp(min=0).sqrt()
    p = (o + t[:, None] * d) / SKY_RADIUS
    return t, 0.5 + 0.35 * torch.stack([p[:, 0], p[:, 1] * p[:, 2], p[:, 2]], dim=-1)


def hit_distance(origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Distance (R,) along unit rays (R, 3) to the first object they meet; inf where they miss every object."""
    return torch.minimum(_hit_spheres(origins, directions)[0], _hit_box(origins, directions)[0])


def trace(origins: torch.Tensor, directions: torch.Tensor, sky: bool = False) -> torch.Tensor:
    """Exact RGBA (R, 4) in [0, 1] of rays (R, 3) against the scene; alpha 1 on a hit, else 0.
    sky: rays that miss every object hit the sky sphere (alpha 1)."""
    t_s, n_s, c_s = _hit_spheres(origins, directions)
    t_b, n_b = _hit_box(origins, directions)
    use_box = t_b < t_s
    t = torch.minimum(t_s, t_b)
    normal = torch.where(use_box[:, None], n_b, n_s)
    colour = torch.where(use_box[:, None], torch.tensor(BOX[2]), c_s)
    light = torch.tensor(LIGHT) / torch.tensor(LIGHT).norm()
    shade = 0.35 + 0.65 * (normal * light).sum(-1).clamp(min=0)
    hit = torch.isfinite(t)
    background = _hit_sky(origins, directions)[1] if sky else torch.zeros_like(colour)
    rgb = torch.where(hit[:, None], colour * shade[:, None], background)
    return torch.cat([rgb, (hit | sky).float()[:, None]], dim=-1)


def make_procedural_scene(
    n_views: int = 40, resolution: int = 64, elevation_deg: float = 30.0, seed_offset: float = 0.0,
    unbounded: bool = False, depths: bool = False,
) -> SceneData:
    """Render the scene from `n_views` orbit cameras at radius 3 into RGBA uint8 images.

    seed_offset (degrees) rotates the orbit, so that e.g. a validation split sees new views.
    unbounded: add the sky sphere (every pixel opaque) and mark the scene unbounded.
    depths: also the exact z-depth maps (N, H, W) of the objects (0 where a pixel sees none).
    """
    poses = orbit_poses(n_views, radius=3.0, elevation_deg=elevation_deg)
    if seed_offset:
        angle = torch.deg2rad(torch.tensor(seed_offset))
        rot = torch.eye(4)
        rot[:2, :2] = torch.tensor([[torch.cos(angle), -torch.sin(angle)], [torch.sin(angle), torch.cos(angle)]])
        poses = rot @ poses
    cameras = Cameras.from_fov_x(poses, fov_x=0.8, width=resolution, height=resolution)
    images, z_depths = [], []
    for i in range(n_views):
        rays = cameras.image_rays(i)
        rgba = trace(rays.origins, rays.directions, sky=unbounded).reshape(resolution, resolution, 4)
        images.append((rgba * 255 + 0.5).clamp(0, 255).to(torch.uint8))
        t = hit_distance(rays.origins, rays.directions)
        z = t * (rays.directions @ -cameras.camera_to_world[i, :3, 2])  # distance times cos to the viewing axis
        z_depths.append(torch.where(torch.isfinite(t), z, 0.0).reshape(resolution, resolution))
    return SceneData(cameras, torch.stack(images), torch.tensor(AABB), name="procedural", near=0.5,
                     bounded=not unbounded, depths=torch.stack(z_depths) if depths else None)


def write_blender_scene(scene: SceneData, folder: str | Path, split: str) -> Path:
    """Write `scene` as a Blender-format split (transforms_{split}.json + PNGs) under `folder`."""
    folder = Path(folder)
    (folder / split).mkdir(parents=True, exist_ok=True)
    fov_x = 2 * torch.atan(scene.cameras.width / (2 * scene.cameras.focal[0, 0])).item()
    frames = []
    for i in range(len(scene.cameras)):
        iio.imwrite(folder / split / f"r_{i}.png", scene.images[i].numpy())
        frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": scene.cameras.camera_to_world[i].tolist()})
    (folder / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": fov_x, "frames": frames}, indent=1))
    return folder
