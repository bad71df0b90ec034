"""Marching cubes over the occupied box: the density lattice (memory checked first), the surface, its colours."""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
import trimesh
from skimage.measure import marching_cubes
from tqdm import tqdm

from ..engine.pictures import to_uint8
from ..errors import FieldsError
from ..fields import Field
from ..renderers import VolumeRenderer

# Memory per lattice point of a mesh export: the float32 density volume, its occupancy mask, and what skimage's
# marching cubes adds on top (measured: 8.4 bytes at --resolution 300, against 60 when built all at once).
BYTES_PER_POINT = 10


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


def check_lattice(resolution: int, counts: list[int], bytes_per_point: float = BYTES_PER_POINT) -> None:
    """Refuse a lattice of fewer than 2 points a side, or one whose volumes and marching cubes would not fit
    in the memory available (`bytes_per_point` per lattice point)."""
    if resolution < 2:
        raise FieldsError(f"--resolution {resolution}: marching cubes needs at least 2 lattice points along the "
                          "box's longest side (default 256)")
    need, free = bytes_per_point * math.prod(counts), available_memory()
    if need > free:
        raise FieldsError(f"--resolution {resolution}: a {'x'.join(map(str, counts))} lattice needs about "
                          f"{need / 1e9:,.1f} GB of memory, {free / 1e9:,.1f} GB is available; choose a smaller "
                          "--resolution (memory grows with its cube)")


def lattice(renderer: VolumeRenderer, resolution: int, bytes_per_point: float = BYTES_PER_POINT
            ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
    """A lattice over the occupied box, `resolution` points along its longest side: the coordinates along each
    axis ([(X,), (Y,), (Z,)]), which points lie in occupied cells (X, Y, Z) bool, lo (3,) and spacing (3,).
    Refused first if `bytes_per_point` for each point would not fit in memory (`check_lattice`)."""
    grid, lo, hi = occupied_box(renderer)
    extent = hi - lo
    counts = [max(2, round(resolution * float(e / extent.max()))) for e in extent]
    check_lattice(resolution, counts, bytes_per_point)
    axes = [torch.linspace(float(lo[i]), float(hi[i]), counts[i]) for i in range(3)]
    aabb, cells = renderer.aabb.cpu(), grid.shape
    cell_index = [((axes[i] - aabb[i]) / (aabb[3 + i] - aabb[i]) * cells[i]).long().clamp(0, cells[i] - 1)
                  for i in range(3)]
    occupied = grid[cell_index[0][:, None, None], cell_index[1][None, :, None], cell_index[2][None, None, :]]
    return axes, occupied, lo, extent / (torch.tensor(counts) - 1)


@torch.no_grad()
def density_volume(field: Field, renderer: VolumeRenderer, resolution: int, chunk: int = 1 << 16,
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Densities on a lattice over the occupied box: volume (X, Y, Z) float32, origin (3,), spacing (3,).

    `resolution` lattice points along the box's longest side; points in unoccupied cells get density 0.
    The lattice is evaluated a few X-slices at a time, so that memory holds little more than the volume.
    """
    axes, occupied, lo, spacing = lattice(renderer, resolution)
    counts = occupied.shape
    sigma = torch.zeros(counts)
    device = renderer.aabb.device
    slices = max(1, chunk // (counts[1] * counts[2]))
    for start in tqdm(range(0, counts[0], slices), desc="densities", unit="slab", disable=not progress, leave=False):
        inside = occupied[start:start + slices].nonzero()
        inside[:, 0] += start
        for part in inside.split(chunk):
            points = torch.stack([axes[i][part[:, i]] for i in range(3)], dim=-1)
            sigma[part[:, 0], part[:, 1], part[:, 2]] = field.density(points.to(device))[0].float().cpu()
    return sigma.numpy(), lo.numpy(), spacing.numpy()


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
    return to_uint8(torch.cat(out))


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
