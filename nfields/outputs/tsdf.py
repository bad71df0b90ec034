"""Meshes by TSDF fusion of RGB-D renders of the training cameras: a projective truncated signed distance,
averaged over views on a lattice over the occupied box (voxels in occupied cells only), then marching cubes.

open3d's ScalableTSDFVolume and VoxelBlockGrid were the first choice; the open3d 0.20 build here integrates
nothing (an empty volume even for a flat depth image), so the fusion is written out in torch.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import trimesh
from skimage.measure import marching_cubes
from tqdm import tqdm

from ..datasets import Cameras
from ..engine.evaluation import view_indices
from ..errors import FieldsError
from ..fields import Field
from ..renderers import VolumeRenderer
from .marching_cubes import BYTES_PER_POINT, lattice
from .points import BLACK

# Per lattice point at worst (every cell occupied): its index (24), distance, weight and colour (20), and
# marching cubes' share (BYTES_PER_POINT).
TSDF_BYTES_PER_POINT = 44 + BYTES_PER_POINT


@torch.no_grad()
def rgbd_render(field: Field, renderer: VolumeRenderer, cameras: Cameras, index: int, min_opacity: float,
                lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera `index`'s z-depth (H, W) along its optical axis (0: no depth: less opaque than `min_opacity` or
    landing outside the box lo (3,), hi (3,)) and un-premultiplied colour (H, W, 3) in [0, 1]."""
    device = renderer.aabb.device
    rays = cameras.image_rays(index)
    out = renderer.render_chunked(field, rays.origins.to(device), rays.directions.to(device), BLACK.to(device))
    opacity = out.opacity.cpu()
    t = out.depth.cpu() / opacity.clamp(min=1e-6)
    points = rays.origins + rays.directions * t[:, None]
    forward = -cameras.camera_to_world[index, :3, 2]
    valid = (opacity > min_opacity) & ((points >= lo) & (points <= hi)).all(-1)
    z = torch.where(valid, t * (rays.directions @ forward), torch.zeros_like(t))
    rgb = (out.rgb.cpu() / opacity.clamp(min=1e-6)[:, None]).clamp(0, 1)
    w, h = cameras.size_of(index)
    return z.reshape(h, w), rgb.reshape(h, w, 3)


def project(cameras: Cameras, index: int, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Points (P, 3) in camera `index` (a pinhole): pixel row (P,), column (P,) (long) and z-depth (P,)."""
    c2w = cameras.camera_to_world[index]
    local = (points - c2w[:3, 3]) @ c2w[:3, :3]  # OpenGL camera axes
    z = -local[:, 2]
    fx, fy = cameras.focal[index]
    cx, cy = cameras.principal[index]
    column = torch.floor(fx * local[:, 0] / z + cx).long()
    row = torch.floor(-fy * local[:, 1] / z + cy).long()
    return row, column, z


def tsdf_mesh(field: Field, renderer: VolumeRenderer, cameras: Cameras, views: int | None = 20,
              resolution: int = 256, truncation: float = 4.0, min_opacity: float = 0.9, chunk: int = 1 << 20,
              progress: bool = False) -> trimesh.Trimesh:
    """Fuse RGB-D renders of `views` evenly spaced cameras, rendered as pinholes (distortion left out).

    Lattice: `resolution` points along the occupied box's longest side. Each view updates the voxels in front
    of its depth and up to `truncation` voxels behind it with the running mean of the projective distance
    (in units of the truncation, clamped to 1) and of the colour. The surface is the zero crossing between
    voxels some view saw; faces touching an unseen voxel are left out. Normals point outwards.
    """
    if cameras.ndc is not None:
        raise FieldsError("--method tsdf: a forward-facing run renders in NDC, which TSDF fusion cannot project; "
                          "use --method marching-cubes")
    axes, occupied, lo, spacing = lattice(renderer, resolution, TSDF_BYTES_PER_POINT)
    band = truncation * float(spacing.max())
    voxels = occupied.nonzero()  # (V, 3)
    distance, weight, color = torch.ones(len(voxels)), torch.zeros(len(voxels)), torch.zeros(len(voxels), 3)
    pinholes = dataclasses.replace(cameras, distortion=None, fisheye=False)
    hi = lo + spacing * (torch.tensor(occupied.shape) - 1)
    for i in tqdm(view_indices(len(cameras), views), desc="RGB-D renders", unit="view", disable=not progress):
        depth, rgb = rgbd_render(field, renderer, pinholes, i, min_opacity, lo, hi)
        for part in torch.arange(len(voxels)).split(chunk):
            ijk = voxels[part]
            points = torch.stack([axes[a][ijk[:, a]] for a in range(3)], dim=-1)
            row, column, z = project(pinholes, i, points)
            seen = (z > 0) & (row >= 0) & (row < depth.shape[0]) & (column >= 0) & (column < depth.shape[1])
            row, column = row.clamp(0, depth.shape[0] - 1), column.clamp(0, depth.shape[1] - 1)
            d = depth[row, column]
            sdf = d - z
            seen &= (d > 0) & (sdf > -band)
            hit = part[seen]
            w = weight[hit]
            distance[hit] = (distance[hit] * w + (sdf[seen] / band).clamp(max=1)) / (w + 1)
            color[hit] = (color[hit] * w[:, None] + rgb[row[seen], column[seen]]) / (w + 1)[:, None]
            weight[hit] = w + 1
    return surface(voxels, distance, weight, color, occupied.shape, lo, spacing)


def surface(voxels: torch.Tensor, distance: torch.Tensor, weight: torch.Tensor, color: torch.Tensor,
            shape: tuple[int, ...], lo: torch.Tensor, spacing: torch.Tensor) -> trimesh.Trimesh:
    """Marching cubes on the fused distance of voxels (V, 3) (distance, weight (V,), colour (V, 3)) in a lattice
    of `shape` at lo (3,) with `spacing` (3,); unseen voxels count as outside, faces touching them are dropped."""
    volume = torch.ones(shape)
    seen = torch.zeros(shape, dtype=torch.bool)
    volume[voxels.unbind(-1)] = distance
    seen[voxels.unbind(-1)] = weight > 0
    if not (volume.min() < 0 < volume.max()):
        raise FieldsError("--method tsdf: no surface, no rendered depth fell inside the occupied box")
    # Negated: high inside, as marching_cubes.extract_mesh's density, so that faces and normals turn the same way.
    vertices, faces, normals, _ = marching_cubes(-volume.numpy(), level=0.0, spacing=tuple(spacing.numpy()))
    index = vertices / spacing.numpy()
    low = np.floor(index).astype(np.int64)
    high = np.minimum(np.ceil(index).astype(np.int64), np.array(shape) - 1)
    seen_np = seen.numpy()
    good = seen_np[tuple(low.T)] & seen_np[tuple(high.T)]
    faces = faces[good[faces].all(axis=1)][:, ::-1]
    nearest = np.minimum(np.rint(index).astype(np.int64), np.array(shape) - 1)
    dense = torch.zeros(*shape, 3)
    dense[voxels.unbind(-1)] = color
    colors = (dense.numpy()[tuple(nearest.T)] * 255 + 0.5).astype(np.uint8)
    mesh = trimesh.Trimesh(vertices + lo.numpy(), np.ascontiguousarray(faces), vertex_normals=normals,
                           vertex_colors=colors, process=False)
    mesh.remove_unreferenced_vertices()
    return mesh
