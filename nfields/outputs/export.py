"""Geometry out of a trained field: a coloured mesh (marching cubes) and a coloured point cloud (depth renders)."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import trimesh
from skimage.measure import marching_cubes
from tqdm import tqdm

from ..datasets import Cameras
from ..engine.evaluation import view_indices
from ..errors import FieldsError
from ..fields import Field
from ..renderers import VolumeRenderer

MESH_FORMATS = ("ply", "obj", "glb")
BLACK = torch.zeros(3)
# Memory per lattice point of a mesh export: the float32 density volume, its occupancy mask, and what skimage's
# marching cubes adds on top (measured: 8.4 bytes at --resolution 300, against 60 when built all at once).
BYTES_PER_POINT = 10


@dataclass
class ExportReport:
    path: Path
    vertices: int
    faces: int
    seconds: float

    def summary(self) -> str:
        faces = f", {self.faces} faces" if self.faces else ""
        return f"{self.path}: {self.vertices} vertices{faces} in {self.seconds:.1f} s"


def occupied_box(renderer: VolumeRenderer, margin_cells: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The occupancy grid dilated by `margin_cells`, (G, G, G) bool, and the world box (lo (3,), hi (3,))
    around its occupied cells."""
    grid = renderer.occupancy.binary.cpu()
    if margin_cells:
        k = 2 * margin_cells + 1
        grid = F.max_pool3d(grid[None, None].float(), k, stride=1, padding=margin_cells)[0, 0] > 0
    cells = grid.nonzero()
    if len(cells) == 0:
        raise FieldsError("occupancy grid: no occupied cell, the field is empty (was the run trained?)")
    aabb = renderer.aabb.cpu()
    cell = (aabb[3:] - aabb[:3]) / torch.tensor(grid.shape)
    lo = aabb[:3] + cells.min(0).values * cell
    hi = aabb[:3] + (cells.max(0).values + 1) * cell
    return grid, lo, hi


def available_memory() -> int:
    """Bytes a new allocation can take: MemAvailable on Linux, else the physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_lattice(resolution: int, counts: list[int]) -> None:
    """Refuse a lattice of fewer than 2 points a side, or one whose densities and marching cubes would not fit
    in the memory available (BYTES_PER_POINT per lattice point)."""
    if resolution < 2:
        raise FieldsError(f"--resolution {resolution}: marching cubes needs at least 2 lattice points along the "
                          "box's longest side (default 256)")
    need, free = BYTES_PER_POINT * math.prod(counts), available_memory()
    if need > free:
        raise FieldsError(f"--resolution {resolution}: a {'x'.join(map(str, counts))} lattice needs about "
                          f"{need / 1e9:,.1f} GB of memory, {free / 1e9:,.1f} GB is available; choose a smaller "
                          "--resolution (memory grows with its cube)")


@torch.no_grad()
def density_volume(field: Field, renderer: VolumeRenderer, resolution: int, chunk: int = 1 << 16,
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Densities on a lattice over the occupied box: volume (X, Y, Z) float32, origin (3,), spacing (3,).

    `resolution` lattice points along the box's longest side; points in unoccupied cells get density 0.
    The lattice is evaluated a few X-slices at a time, so that memory holds little more than the volume.
    """
    grid, lo, hi = occupied_box(renderer)
    extent = hi - lo
    counts = [max(2, round(resolution * float(e / extent.max()))) for e in extent]
    check_lattice(resolution, counts)
    axes = [torch.linspace(float(lo[i]), float(hi[i]), counts[i]) for i in range(3)]
    aabb, cells = renderer.aabb.cpu(), grid.shape
    cell_index = [((axes[i] - aabb[i]) / (aabb[3 + i] - aabb[i]) * cells[i]).long().clamp(0, cells[i] - 1)
                  for i in range(3)]
    occupied = grid[cell_index[0][:, None, None], cell_index[1][None, :, None], cell_index[2][None, None, :]]
    sigma = torch.zeros(counts)
    device = renderer.aabb.device
    slices = max(1, chunk // (counts[1] * counts[2]))
    for start in tqdm(range(0, counts[0], slices), desc="densities", unit="slab", disable=not progress, leave=False):
        inside = occupied[start:start + slices].nonzero()
        inside[:, 0] += start
        for part in inside.split(chunk):
            points = torch.stack([axes[i][part[:, i]] for i in range(3)], dim=-1)
            sigma[part[:, 0], part[:, 1], part[:, 2]] = field.density(points.to(device))[0].float().cpu()
    spacing = (extent / (torch.tensor(counts) - 1)).numpy()
    return sigma.numpy(), lo.numpy(), spacing


@torch.no_grad()
def surface_colors(field: Field, vertices: np.ndarray, normals: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """RGB (V, 3) uint8 of surface points seen head-on: view direction = minus the outward normal."""
    device = next(iter(field.buffers())).device
    out = []
    for v, n in zip(np.array_split(vertices, max(1, len(vertices) // chunk)),
                    np.array_split(normals, max(1, len(vertices) // chunk))):
        features = field.density(torch.tensor(np.ascontiguousarray(v), dtype=torch.float32, device=device))[1]
        dirs = -F.normalize(torch.tensor(np.ascontiguousarray(n), dtype=torch.float32), dim=-1).to(device)
        out.append(field.color(features, dirs).clamp(0, 1).cpu())
    return (torch.cat(out).numpy() * 255 + 0.5).astype(np.uint8)


def extract_mesh(field: Field, renderer: VolumeRenderer, resolution: int = 256, threshold: float = 10.0,
                 progress: bool = False) -> trimesh.Trimesh:
    """Marching cubes on the density at `threshold` (sigma, per unit length), cropped to the occupied cells.

    Faces wind counter-clockwise seen from outside; vertex colours are the field's colour looking at
    each vertex along its inward normal.
    """
    volume, origin, spacing = density_volume(field, renderer, resolution, progress=progress)
    if not volume.min() < threshold < volume.max():
        raise FieldsError(f"--threshold {threshold:g}: no surface, densities in the occupied box span "
                          f"[{volume.min():.3g}, {volume.max():.3g}]")
    vertices, faces, normals, _ = marching_cubes(volume, level=threshold, spacing=tuple(spacing))
    vertices = vertices + origin
    # skimage's normals point down the density gradient (outwards), but its faces wind clockwise seen
    # from the low-density side: flip them so that face normals agree (positive volume).
    faces = faces[:, ::-1]
    colors = surface_colors(field, vertices, normals)
    return trimesh.Trimesh(vertices, np.ascontiguousarray(faces), vertex_normals=normals,
                           vertex_colors=colors, process=False)


def export_mesh(field: Field, renderer: VolumeRenderer, out_path: Path, resolution: int = 256,
                threshold: float = 10.0, progress: bool = True) -> ExportReport:
    """Write `extract_mesh` as PLY, OBJ or GLB (by extension)."""
    fmt = out_path.suffix.lstrip(".").lower()
    if fmt not in MESH_FORMATS:
        raise FieldsError(f"{out_path}: mesh format '{fmt}' is not one of {', '.join(MESH_FORMATS)}")
    start = time.perf_counter()
    mesh = extract_mesh(field, renderer, resolution, threshold, progress)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(out_path)
    return ExportReport(out_path, len(mesh.vertices), len(mesh.faces), time.perf_counter() - start)


@torch.no_grad()
def extract_points(field: Field, renderer: VolumeRenderer, cameras: Cameras, views: int | None = 20,
                   min_opacity: float = 0.9, max_points: int = 1_000_000, seed: int = 0,
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Points (P, 3) float32 and colours (P, 3) uint8 from depth renders of `views` evenly spaced cameras.

    Each ray whose opacity exceeds `min_opacity` gives one point at its expected termination depth, with
    its colour un-premultiplied by the opacity. At most `max_points` (a random subset) are kept.
    """
    device = renderer.aabb.device
    points, colors = [], []
    for i in tqdm(view_indices(len(cameras), views), desc="depth renders", unit="view", disable=not progress):
        rays = cameras.image_rays(i).to(device)
        out = renderer.render_chunked(field, rays.origins, rays.directions, BLACK.to(device))
        hit = out.opacity > min_opacity
        t = out.depth[hit] / out.opacity[hit]
        points.append((rays.origins[hit] + rays.directions[hit] * t[:, None]).cpu())
        colors.append((out.rgb[hit] / out.opacity[hit, None]).clamp(0, 1).cpu())
    pts, rgb = torch.cat(points).numpy(), (torch.cat(colors).numpy() * 255 + 0.5).astype(np.uint8)
    if len(pts) > max_points:
        keep = np.random.default_rng(seed).choice(len(pts), max_points, replace=False)
        pts, rgb = pts[keep], rgb[keep]
    return pts, rgb


def export_points(field: Field, renderer: VolumeRenderer, cameras: Cameras, out_path: Path, views: int | None = 20,
                  min_opacity: float = 0.9, max_points: int = 1_000_000, progress: bool = True) -> ExportReport:
    """Write `extract_points` as a coloured PLY point cloud."""
    if out_path.suffix.lower() != ".ply":
        raise FieldsError(f"{out_path}: point clouds are written as .ply")
    start = time.perf_counter()
    pts, rgb = extract_points(field, renderer, cameras, views, min_opacity, max_points, progress=progress)
    if len(pts) == 0:
        raise FieldsError(f"no ray reached opacity {min_opacity:g}: the field is empty from these cameras")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    trimesh.PointCloud(pts, colors=rgb).export(out_path)
    return ExportReport(out_path, len(pts), 0, time.perf_counter() - start)
