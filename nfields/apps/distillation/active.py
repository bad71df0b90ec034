"""PVD-AL's three active-learning levels, as small state machines and pure selection rules.

- Poses: each epoch's hardest poses (lowest student-vs-teacher PSNR), kept with their own identities (the
  reference code pairs scores with shuffled poses), fill a pool that later replaces random poses, turned.
- Rays: each step's hardest rays (largest colour error) fill a pool; once full, pool rays join every
  batch and the batch's hardest rays are written back into the slots they came from.
- Points: per ray, the samples carrying the most rendering weight (teacher's or student's) get the
  point-level losses.
"""

from __future__ import annotations

import torch

from .poses import turn


def per_group_psnr(errors: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """PSNR (G,) of squared colour errors (R, 3) pooled per group index (R,) in [0, G); NaN where empty."""
    total = torch.zeros(n_groups).index_add(0, groups, errors.sum(-1))
    mse = total / (3.0 * torch.bincount(groups, minlength=n_groups))
    return -10 * torch.log10(mse.clamp(min=1e-10))


def hardest(scores: torch.Tensor, k: int, largest: bool) -> torch.Tensor:
    """Indices of the k largest (or smallest) scores, hardest first."""
    return torch.topk(scores, min(k, len(scores)), largest=largest).indices


class HardPosePool:
    """PVD-AL's pose level. `record` each step's per-pose PSNR under the pose's index in the epoch's set;
    `end_epoch` keeps the k = fraction x poses with the lowest PSNR (from `from_epoch` on, while the pool
    holds fewer than `size`); `next_epoch` swaps k random poses of a new epoch for turned pool poses once
    the pool is full, and overwrites those pool slots with the latest hard poses."""

    def __init__(self, size: int, fraction: float, from_epoch: int):
        self.size, self.fraction, self.from_epoch = size, fraction, from_epoch
        self.poses = torch.zeros(0, 4, 4)
        self.epoch, self.latest_hard = 0, torch.zeros(0, 4, 4)
        self.scores: dict[int, float] = {}

    def record(self, pose_indices: torch.Tensor, psnrs: torch.Tensor) -> None:
        for index, value in zip(pose_indices.tolist(), psnrs.tolist()):
            if value == value:  # not NaN: the pose had rays
                self.scores[index] = value

    def end_epoch(self, epoch_poses: torch.Tensor) -> torch.Tensor:
        """Close an epoch over its poses (N, 4, 4); returns the indices of its hard poses."""
        k = max(1, int(self.fraction * len(epoch_poses)))
        indices = torch.tensor(sorted(self.scores), dtype=torch.long)
        hard = indices[hardest(torch.tensor([self.scores[i] for i in indices.tolist()]), k, largest=False)] \
            if len(indices) else indices
        self.latest_hard = epoch_poses[hard]
        if self.epoch + 1 >= self.from_epoch and len(self.poses) < self.size:
            self.poses = torch.cat([self.poses, self.latest_hard])[: self.size]
        self.epoch += 1
        self.scores = {}
        return hard

    def next_epoch(self, epoch_poses: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The new epoch's poses (N, 4, 4), with k of them replaced by turned pool poses when the pool is full."""
        if len(self.poses) < self.size or not len(self.latest_hard):
            return epoch_poses
        k = min(len(self.latest_hard), len(epoch_poses))
        slots = torch.randperm(len(self.poses), generator=generator)[:k]
        targets = torch.randperm(len(epoch_poses), generator=generator)[:k]
        mixed = epoch_poses.clone()
        mixed[targets] = turn(self.poses[slots], generator)
        self.poses[slots] = self.latest_hard[:k]
        return mixed

    def state_dict(self) -> dict:
        return {"poses": self.poses, "epoch": self.epoch, "latest_hard": self.latest_hard, "scores": self.scores}

    def load_state_dict(self, state: dict) -> None:
        self.poses, self.epoch = state["poses"], int(state["epoch"])
        self.latest_hard, self.scores = state["latest_hard"], dict(state["scores"])


class HardRayPool:
    """PVD-AL's ray level: a pool of ray origins and directions (size, 3) each.

    While filling, `collect` appends each step's hardest rays. Once full, `draw(n)` returns n random pool
    slots whose rays join the batch, and `collect` writes the batch's hardest rays back into those slots."""

    def __init__(self, size: int):
        self.origins, self.directions = torch.zeros(size, 3), torch.zeros(size, 3)
        self.filled = 0

    @property
    def full(self) -> bool:
        return self.filled == len(self.origins)

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Slots (n,) of pool rays to replay this step (none until the pool is full)."""
        if not self.full:
            return torch.zeros(0, dtype=torch.long)
        return torch.randperm(len(self.origins), generator=generator)[:n]

    def collect(self, origins: torch.Tensor, directions: torch.Tensor, errors: torch.Tensor, k: int,
                slots: torch.Tensor) -> torch.Tensor:
        """Keep the k rays with the largest errors (R,) among the batch's rays (R, 3); returns their indices.
        They go into `slots` (the replayed ones) when the pool is full, else after the filled part."""
        hard = hardest(errors, k, largest=True)
        if self.full:
            hard = hard[: len(slots)]
            self.origins[slots[: len(hard)]], self.directions[slots[: len(hard)]] = origins[hard], directions[hard]
        else:
            hard = hard[: len(self.origins) - self.filled]
            end = self.filled + len(hard)
            self.origins[self.filled:end], self.directions[self.filled:end] = origins[hard], directions[hard]
            self.filled = end
        return hard

    def state_dict(self) -> dict:
        return {"origins": self.origins, "directions": self.directions, "filled": self.filled}

    def load_state_dict(self, state: dict) -> None:
        self.origins, self.directions, self.filled = state["origins"], state["directions"], int(state["filled"])


def hard_point_mask(weights: torch.Tensor, ray_indices: torch.Tensor, opacity: torch.Tensor,
                    ratio: float = 0.3, min_opacity: float = 0.5) -> torch.Tensor:
    """PVD-AL's point level for one model: samples (S,) whose weight ranks within the top floor(ratio * n) + 1
    of their ray's n samples, on rays (opacity (R,)) at least `min_opacity` opaque. ray_indices (S,) sorted."""
    counts = torch.bincount(ray_indices, minlength=len(opacity))
    starts = torch.cumsum(counts, 0) - counts
    # Sort by ray, then by descending weight within the ray; rank = position - the ray's first position.
    order = torch.argsort(ray_indices.double() * 2.0 + (1.0 - weights.detach().double().clamp(0, 1)), stable=True)
    rank = torch.empty_like(ray_indices)
    rank[order] = torch.arange(len(order), device=ray_indices.device) - starts[ray_indices[order]]
    limit = (ratio * counts.double()).floor().long() + 1
    return (rank < limit[ray_indices]) & (opacity.detach()[ray_indices] >= min_opacity)
