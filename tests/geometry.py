"""Test helpers: points on the procedural scene's surface, Chamfer distance, a field made from its SDF."""

import numpy as np
import torch
from scipy.spatial import cKDTree

from nfields.datasets.procedural import AABB, procedural_sdf
from nfields.fields.base import Field


def surface_points(n: int, seed: int = 0) -> np.ndarray:
    """About n points on the zero set of the procedural SDF (random points projected along the gradient)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=g) * 2 - 1
    for _ in range(20):
        x = x.detach().requires_grad_(True)
        d = procedural_sdf(x)
        (grad,) = torch.autograd.grad(d.sum(), x)
        x = x - d[:, None] * grad / grad.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    x = x.detach()
    return x[procedural_sdf(x).abs() < 1e-4].numpy()


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric mean nearest-neighbour distance between point sets (N, 3) and (M, 3)."""
    return 0.5 * (cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean())


class SDFField(Field):
    """A field whose density is a sharp sigmoid of the procedural SDF (200 inside, 0 outside) and whose
    colour is (x+1)/2 of the position: geometry known exactly."""

    name = "sdf"

    def __init__(self):
        super().__init__(torch.tensor(AABB), None)

    def density(self, positions):
        sdf = procedural_sdf(positions)
        return 200 * torch.sigmoid(-sdf / 0.005), (positions + 1) / 2

    def color(self, features, directions):
        return features.clamp(0, 1)


def sdf_model(grid_resolution: int):
    """An SDFField and a renderer whose occupancy grid has seen it once: (field, renderer)."""
    from nfields.renderers import VolumeRenderer

    field = SDFField()
    renderer = VolumeRenderer(field.aabb, near=0.5, grid_resolution=grid_resolution)
    renderer.update_occupancy(field, 0)
    return field, renderer
