"""Fitting tri-planes to shapes, many at once, with one shared frozen decoder.

A shape's field is ``decoder(P_xy(x) + P_xz(x) + P_yz(x))``: the sum of bilinear samples of three
(C, R, R) planes, decoded by an MLP shared by all shapes. The decoder is trained once, jointly with the
planes of a first set of shapes, then frozen, so that every tri-plane lives in one feature space.
Target (point clouds): an unsigned distance d to the nearest input point, as ``1 - clip(d, 0, 0.1) / 0.1``
with BCE on logits (Cardace et al. 2024); the predicted distance is ``0.1 * (1 - sigmoid(logit))``.
Planes are sampled with ``sample_planes`` (align_corners=True, border padding), as the ``triplane``
radiance field does; the paper uses align_corners=False with zero padding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...fields.grids import PLANE_AXES, sample_planes
from ...fields.optimizer_spec import adam

TRUNCATION = 0.1  # distances beyond this are all "far" (target 0)
# Query points per shape (the paper's 100k / 250k / 200k / 25k / 25k): on the surface, Gaussian noise
# around surface points with these sigmas, uniform in [-1, 1]^3.
NOISE_SIGMAS = (0.003, 0.01, 0.1)
QUERY_MIX = (4, 10, 8, 1, 1)  # surface, the three noise levels, uniform


@dataclass
class FitConfig:
    channels: int = 16
    resolution: int = 32
    steps: int = 100  # optimisation steps per batch of shapes
    queries: int = 1024  # query points per shape and step, drawn from the pool
    pool: int = 12288  # precomputed query points per shape
    lr: float = 1e-2  # Adam, planes
    init_std: float = 1e-3
    decoder_width: int = 32
    decoder_hidden: int = 1
    decoder_steps: int = 400  # joint planes + decoder steps on the decoder's shapes
    decoder_lr: float = 1e-3
    eval_points: int = 2048  # held-out query points per shape for the metrics

    def to_dict(self) -> dict:
        return asdict(self)


def make_decoder(config: FitConfig) -> nn.Sequential:
    """MLP (..., C) -> (..., 1): ``decoder_hidden`` ReLU layers of ``decoder_width``."""
    layers, n_in = [], config.channels
    for _ in range(config.decoder_hidden):
        layers += [nn.Linear(n_in, config.decoder_width), nn.ReLU()]
        n_in = config.decoder_width
    return nn.Sequential(*layers, nn.Linear(n_in, 1))


def udf_target(distance: np.ndarray | torch.Tensor):
    """Unsigned distance -> BCE target in [0, 1]: 1 on the surface, 0 beyond TRUNCATION."""
    return 1 - (distance.clip(0, TRUNCATION) if isinstance(distance, np.ndarray)
                else distance.clamp(0, TRUNCATION)) / TRUNCATION


def predicted_distance(logits: torch.Tensor) -> torch.Tensor:
    return TRUNCATION * (1 - torch.sigmoid(logits))


def sample_queries(points: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Query points (n, 3) in QUERY_MIX proportions and their distances (n,) to the point set (M, 3)."""
    from scipy.spatial import cKDTree  # here, not at the top: 0.7 s of every `fields` command's start-up

    counts = np.floor(np.array(QUERY_MIX) / sum(QUERY_MIX) * n).astype(int)
    counts[0] += n - counts.sum()
    surface = points[rng.integers(len(points), size=counts[0])]
    noisy = [points[rng.integers(len(points), size=c)] + rng.normal(0, s, (c, 3))
             for c, s in zip(counts[1:4], NOISE_SIGMAS)]
    uniform = rng.uniform(-1, 1, (counts[4], 3))
    off = np.clip(np.concatenate(noisy + [uniform]), -1, 1).astype(np.float32)
    distance, _ = cKDTree(points).query(off)
    return (np.concatenate([surface, off]).astype(np.float32),
            np.concatenate([np.zeros(counts[0]), distance]).astype(np.float32))


def triplane_features(planes: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Summed bilinear samples of tri-planes (B, 3, C, R, R) at points x (B, Q, 3) in [-1, 1] -> (B, Q, C)."""
    b, _, c, r, _ = planes.shape
    coords = torch.stack([x[..., list(axes)] for axes in PLANE_AXES], dim=1)  # (B, 3, Q, 2)
    samples = sample_planes(planes.reshape(b * 3, c, r, r), coords.reshape(b * 3, -1, 2))
    return samples.view(b, 3, -1, c).sum(1)


def init_planes(n: int, config: FitConfig, generator: torch.Generator) -> torch.Tensor:
    shape = (n, 3, config.channels, config.resolution, config.resolution)
    return config.init_std * torch.randn(shape, generator=generator)


@dataclass
class FitResult:
    planes: torch.Tensor  # (B, 3, C, R, R)
    udf_error: np.ndarray  # (B,) mean |predicted - true| distance (truncated at 0.1) on held-out near points
    chamfer: np.ndarray  # (B,) Chamfer distance between the input points and the field's projected surface


def fit_planes(point_sets: list[np.ndarray], decoder: nn.Module, config: FitConfig, seed: int = 0,
               train_decoder: bool = False) -> FitResult:
    """Fit one tri-plane per point set (each (M, 3) in [-1, 1]^3) for ``config.steps`` Adam steps
    (``config.decoder_steps`` and the decoder too when ``train_decoder``)."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    pools = [sample_queries(p, config.pool, rng) for p in point_sets]
    x_pool = torch.from_numpy(np.stack([q for q, _ in pools]))  # (B, P, 3)
    t_pool = udf_target(torch.from_numpy(np.stack([d for _, d in pools])))  # (B, P)
    planes = init_planes(len(point_sets), config, generator).requires_grad_(True)
    groups = [{"params": [planes], "lr": config.lr}]
    if train_decoder:
        groups.append({"params": list(decoder.parameters()), "lr": config.decoder_lr})
    decoder.requires_grad_(train_decoder)
    optimiser = adam(groups)
    steps = config.decoder_steps if train_decoder else config.steps
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, [g["lr"] for g in groups], total_steps=steps,
                                                    pct_start=0.1)
    b = len(point_sets)
    for _ in range(steps):
        index = torch.randint(config.pool, (b, config.queries), generator=generator)
        x = torch.gather(x_pool, 1, index[..., None].expand(-1, -1, 3))
        logits = decoder(triplane_features(planes, x))[..., 0]
        loss = F.binary_cross_entropy_with_logits(logits, torch.gather(t_pool, 1, index))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        scheduler.step()
    decoder.requires_grad_(False)
    planes = planes.detach()
    udf_error, chamfer = reconstruction_metrics(planes, decoder, point_sets, config.eval_points, rng)
    return FitResult(planes, udf_error, chamfer)


def field_distance(planes: torch.Tensor, decoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Predicted unsigned distances (B, Q) of tri-planes (B, 3, C, R, R) at x (B, Q, 3)."""
    return predicted_distance(decoder(triplane_features(planes, x))[..., 0])


def reconstruction_metrics(planes: torch.Tensor, decoder: nn.Module, point_sets: list[np.ndarray], n: int,
                           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per shape: (1) the mean absolute error of the predicted distance (both truncated at 0.1) at n fresh
    points near the surface (input points plus N(0, 0.01) noise); (2) the symmetric Chamfer distance (mean of
    the two mean nearest-neighbour distances) between the input points and those n points projected onto the
    field's surface, x - d(x) grad d / |grad d|, keeping the points the field puts within 0.05 of the surface.
    Units: the normalised frame (longest side 1.8)."""
    from scipy.spatial import cKDTree  # here, not at the top: see sample_queries

    near = [p[rng.integers(len(p), size=n)] + rng.normal(0, 0.01, (n, 3)) for p in point_sets]
    x = torch.from_numpy(np.stack(near).astype(np.float32)).requires_grad_(True)
    with torch.enable_grad():
        distance = field_distance(planes, decoder, x)
        (gradient,) = torch.autograd.grad(distance.sum(), x)
    distance = distance.detach()
    projected = (x - distance[..., None] * F.normalize(gradient, dim=-1)).detach().numpy()
    udf_error, chamfer = [], []
    for i, points in enumerate(point_sets):
        tree = cKDTree(points)
        truth, _ = tree.query(near[i])
        udf_error.append(np.abs(np.minimum(truth, TRUNCATION) - distance[i].numpy()).mean())
        surface = projected[i][distance[i].numpy() < 0.05]
        if len(surface) == 0:
            chamfer.append(np.inf)
            continue
        to_field, _ = cKDTree(surface).query(points)
        to_input, _ = tree.query(surface)
        chamfer.append((to_field.mean() + to_input.mean()) / 2)
    return np.array(udf_error, dtype=np.float32), np.array(chamfer, dtype=np.float32)
