"""Fit a signed distance field to a mesh with a backbone's coordinate network:
`fields fit-sdf MESH --field NAME`. Scores IoU of the inside on a 256^3 grid and the Chamfer distance
of the marching-cubes mesh, in the normalised frame (bounding-box diagonal 1.9)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh

from .coordinate_fit import build_coordinate_network, evaluate_chunked, fit_loop, make_optimizer
from .meshes import (
    DistanceQuery,
    chamfer_distance,
    extract_mesh,
    grid_points,
    load_mesh,
    sample_training_points,
    volume_iou,
)


@dataclass
class SDFFit:
    network: torch.nn.Module
    iou: float  # inside/outside agreement on the resolution^3 grid
    chamfer: float  # marching-cubes mesh vs the input mesh, normalised frame
    mesh: trimesh.Trimesh  # the marching-cubes mesh in the input mesh's frame
    steps: int
    seconds: float  # optimisation time
    sampling_seconds: float  # training points and their exact signed distances
    parameters: int
    watertight: bool


def sdf_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """GNF's loss: (pred - gt)^2 / (|gt| + 0.1), weighting the surface more than the far field."""
    return ((prediction - target) ** 2 / (target.abs() + 0.1)).mean()


def fit_sdf(path: str | Path, field: str = "rbf", steps: int = 3000, time_budget: float | None = None,
            batch: int = 1 << 14, n_points: int = 1 << 18, lr: float | None = None, decoder_lr: float | None = None,
            resolution: int = 256, seed: int = 0, progress: bool = True) -> SDFFit:
    """Fit the mesh at `path` for `steps` (or `time_budget` seconds) and score it on a resolution^3 grid."""
    torch.manual_seed(seed)
    mesh = load_mesh(path)
    query = DistanceQuery(mesh)
    tic = time.perf_counter()
    points, distances = sample_training_points(mesh, query, n_points, np.random.default_rng(seed))
    sampling_seconds = time.perf_counter() - tic
    points, distances = torch.from_numpy(points), torch.from_numpy(distances)
    network = build_coordinate_network(field, 3, 1)
    optimizer = make_optimizer(network, lr, decoder_lr)

    def loss_fn(step: int) -> torch.Tensor:
        idx = torch.randint(0, len(points), (batch,))
        return sdf_loss(network(points[idx])[:, 0], distances[idx])

    done, seconds = fit_loop(network, loss_fn, optimizer, steps, time_budget, desc=f"fit-sdf {field}",
                             progress=progress)
    grid = grid_points(resolution)
    predicted = evaluate_chunked(network, torch.from_numpy(grid))[:, 0].numpy()
    iou = volume_iou(predicted < 0, query.inside(grid))
    reconstruction = extract_mesh(predicted.reshape((resolution,) * 3))
    chamfer = chamfer_distance(reconstruction, mesh.mesh)
    reconstruction.vertices = mesh.to_original(reconstruction.vertices)
    return SDFFit(network, iou, chamfer, reconstruction, done, seconds, sampling_seconds,
                  sum(p.numel() for p in network.parameters()), mesh.watertight)
