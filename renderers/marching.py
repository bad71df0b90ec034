"""Rays marched through an occupancy grid in rounds, so that samples behind an opaque surface are never marched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .torch_ops import PackedSamples

# (rays (L,) long, where each resumes (L,), max_samples) -> (their samples, packed over the L rays; where each
# resumes next (L,))
MarchRound = Callable[[torch.Tensor, torch.Tensor, int], tuple[PackedSamples, torch.Tensor]]


@dataclass
class RayMarch:
    """The march of R rays, round by round: `resume` (R,) is where each ray's next round starts (a step index
    of the constant step, a distance of the cone step), `march_round` marches some of the rays from there,
    `keep` (optional) filters a round's samples (a crop box) without changing where rays resume."""

    march_round: MarchRound
    resume: torch.Tensor
    keep: Callable[[PackedSamples], PackedSamples] | None = None

    def next(self, rays: torch.Tensor, max_samples: int) -> tuple[PackedSamples, torch.Tensor]:
        """The next samples, at most max_samples (all when <= 0), of `rays` (L,) long, ascending: packed and
        sorted by ray with indices among all R rays, and which of the L rays ran out of samples (L,) bool."""
        samples, resume = self.march_round(rays, self.resume[rays], max_samples)
        self.resume[rays] = resume
        if max_samples > 0:
            ended = torch.bincount(samples.ray_indices, minlength=len(rays)) < max_samples
        else:
            ended = torch.ones(len(rays), dtype=torch.bool, device=rays.device)
        samples = PackedSamples(rays.index_select(0, samples.ray_indices), samples.t_starts, samples.t_ends)
        return (samples if self.keep is None else self.keep(samples)), ended


def in_ray_order(rounds: list[tuple[PackedSamples, torch.Tensor | None, torch.Tensor | None]]):
    """The samples of several rounds (each packed and ray-sorted, with two per-sample tensors or None: densities (C,)
    and features (C, F), or what the field offered to reuse as the second) as one ray-sorted list: (samples (K,),
    densities (K,) or None, features (K, F) or None). Each ray's
    samples of a later round lie behind those of an earlier one, so a stable sort by ray keeps them in order."""
    samples = PackedSamples(*(torch.cat(parts) for parts in zip(*((s.ray_indices, s.t_starts, s.t_ends)
                                                                     for s, _, _ in rounds))))
    sigmas = None if rounds[0][1] is None else torch.cat([sigma for _, sigma, _ in rounds])
    features = None if rounds[0][2] is None else torch.cat([feature for _, _, feature in rounds])
    if len(rounds) == 1:
        return samples, sigmas, features
    order = torch.sort(samples.ray_indices, stable=True).indices
    samples = samples.select(order)
    return (samples, None if sigmas is None else sigmas.index_select(0, order),
            None if features is None else features.index_select(0, order))
