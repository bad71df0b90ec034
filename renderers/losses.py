"""Training losses: the photometric loss on rendered colours, a depth loss where the capture measured depth,
and mip-NeRF 360's distortion loss on a ray's compositing weights, for unbounded scenes.

The distortion loss pulls each ray's weights together into one short interval: it penalises density
spread along the ray (the semi-transparent clouds that fit the training photos from close to the
camera, "floaters") and costs nothing where a ray meets one surface.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .torch_ops import PackedSamples, ray_starts


def photometric_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Scalar loss of rendered colours (R, 3) against their targets (R, 3): "huber" or "mse"."""
    if kind == "huber":  # instant-ngp: Huber with delta 0.1, divided by 5
        return F.huber_loss(pred, target, delta=0.1) / (5 * 0.1)
    return F.mse_loss(pred, target)


def normalized_distance(t: torch.Tensor) -> torch.Tensor:
    """Distances along a ray mapped into [0, 1): linear up to 1 (the scene box's half-size, where the cameras
    are), then in disparity (t -> 2 - 1/t) out to infinity, halved; nerfstudio's piecewise linear-disparity spacing.
    mip-NeRF 360 measures the distortion loss in such a normalised distance, so the far background, which the
    contraction squeezes, does not dominate it."""
    return torch.where(t < 1, t, 2 - 1 / t.clamp(min=1)) / 2


def _segmented_exclusive_sum(values: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """Per-ray exclusive prefix sums (S,) of packed values; starts (S,) index each sample's ray's first sample."""
    inclusive = torch.cumsum(values.double(), 0)
    exclusive = inclusive - values.double()
    return (exclusive - exclusive[starts]).to(values.dtype)


def distortion_loss(weights: torch.Tensor, samples: PackedSamples, n_rays: int) -> torch.Tensor:
    """mip-NeRF 360's distortion loss averaged over R rays (scalar).

    weights (S,): compositing weights of ray-sorted packed samples (`samples`, intervals in scene units).
    L = sum_ij w_i w_j |s_i - s_j| + 1/3 sum_i w_i^2 (s'_i - s_i), with s the interval bounds in
    `normalized_distance` and s_i, s_j the midpoints in the double sum, computed in O(S) with prefix sums:
    sum_ij w_i w_j |m_i - m_j| = 2 sum_i w_i (m_i W_<i - (wm)_<i) for midpoints increasing along each ray.
    """
    if len(samples) == 0:
        return weights.sum() * 0.0
    s0, s1 = normalized_distance(samples.t_starts), normalized_distance(samples.t_ends)
    mid = 0.5 * (s0 + s1)
    starts = ray_starts(samples.ray_indices, n_rays)
    weight_before = _segmented_exclusive_sum(weights, starts)
    moment_before = _segmented_exclusive_sum(weights * mid, starts)
    between = 2 * weights * (mid * weight_before - moment_before)
    within = weights.square() * (s1 - s0) / 3
    return (between + within).sum() / max(n_rays, 1)


def depth_loss(depth: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Urban Radiance Fields' expected-depth term (Rematas et al. 2022; nerfstudio's
    urban_radiance_field_depth_loss): mean over the R rays of (observed - depth)^2, counting only rays with an
    observed distance (> 0 and finite; the others add 0, as nerfstudio masks them).

    depth (R,): each ray's expected termination distance (sum of weight x distance: a ray the field leaves
    transparent ends at 0, so the loss also asks for opacity where a surface was seen). observed (R,): the
    distance along the ray to the observed surface, in scene units (Cameras.distances_of_z_depths)."""
    valid = (observed > 0) & torch.isfinite(observed)
    error = torch.where(valid, observed, 0.0) - depth
    return torch.where(valid, error.square(), 0.0).mean() if len(depth) else depth.sum() * 0.0
