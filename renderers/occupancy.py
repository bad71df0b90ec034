"""Occupancy grid with instant-ngp / nerfacc rules, stored in nerfacc's OccGridEstimator.

128^3 cells over the scene box; every 16 steps, cells' optical thickness (density x step size) is
folded in with an EMA-max of decay 0.95; all cells during the first 256 steps, afterwards a quarter of
the cells uniformly plus up to as many occupied ones; a cell is occupied above min(mean, 0.01).
Those step counts are instant-ngp's, for steps of 2^18 samples; `set_interval` rescales them (the CPU
trainer's steps of 2^16 samples update every 64 steps, all cells for the first 1,024), so that updates
cost about the same share of training.

Unbounded scenes use `levels` > 1 cascades (nerfacc's layout): level k spans the box enlarged 2^k times
about its centre, at the same resolution, and is updated like level 0.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import torch
import torch.nn.functional as F
from nerfacc import OccGridEstimator
from torch import nn

from .render_ops import ops_for
from .torch_ops import coarse_grid, occupancy_mips

T = TypeVar("T")

# (cells (M,), values (M,), number of cells) -> the cells and values to fold in
Merge = Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]


class OccupancyGrid(nn.Module):
    def __init__(self, aabb: torch.Tensor, resolution: int = 128, levels: int = 1, threshold: float = 0.01,
                 ema_decay: float = 0.95, warmup_steps: int = 256, update_every: int = 16,
                 eval_chunk: int = 1 << 18):
        super().__init__()
        self.estimator = OccGridEstimator(roi_aabb=aabb.tolist(), resolution=resolution, levels=levels)
        self.threshold, self.ema_decay = threshold, ema_decay
        self.warmup_steps, self.update_every, self.eval_chunk = warmup_steps, update_every, eval_chunk
        self.register_buffer("aabb", aabb.clone().float())
        # Boxes (levels, 6) of the cascades, level 0 exactly the scene box; fixed, so derived once.
        self.register_buffer("aabbs", torch.cat([self.aabb[None], self.estimator.aabbs[1:]]), persistent=False)
        self.register_buffer("coarse_binary", coarse_grid(self.binary))
        self._derived: dict[str, tuple] = {}  # name -> (grid, its version and key, value): see `cached`

    def set_interval(self, update_every: int) -> None:
        """Update every `update_every` steps; the all-cell warm-up lasts 16 updates, as in instant-ngp."""
        self.update_every, self.warmup_steps = update_every, 16 * update_every

    @property
    def binary(self) -> torch.Tensor:
        """Occupied cells (X, Y, Z) bool, x-major, of the finest level (the scene box)."""
        return self.estimator.binaries[0]

    @property
    def binaries(self) -> torch.Tensor:
        """Occupied cells (levels, X, Y, Z) bool of every cascade."""
        return self.estimator.binaries

    def cached(self, name: str, compute: Callable[[], T], *key) -> T:
        """compute(), kept under `name` until the grid changes (an update replaces it, a checkpoint load
        overwrites it in place) or `key` does."""
        binary = self.estimator.binaries
        stamp = (binary._version, *key)
        entry = self._derived.get(name)
        if entry is None or entry[0] is not binary or entry[1] != stamp:
            entry = self._derived[name] = (binary, stamp, compute())
        return entry[2]

    @property
    def mips(self) -> list[torch.Tensor]:
        """The grid's mip pyramid for the native marcher."""
        return self.cached("mips", lambda: occupancy_mips(self.binary))

    @property
    def marching_box(self) -> torch.Tensor:
        """The box (6,) rays march in: `occupied_box()`, the occupied cells less lone floaters. Marching skips the
        steps outside it (`torch_ops.steps_in_box`)."""
        return self.cached("marching box", self.occupied_box)

    def binaries_above(self, threshold: float) -> torch.Tensor:
        """Cells (levels, X, Y, Z) bool that are occupied and whose value (optical thickness) exceeds `threshold`:
        a sparser grid for rendering."""
        return self.cached("above", lambda: self.estimator.binaries & (self.estimator.occs.view(
            self.estimator.binaries.shape) > threshold), threshold)

    def occupied_fraction(self) -> float:
        return self.binary.float().mean().item()

    def occupied_box(self, margin: int = 1) -> torch.Tensor:
        """The box (6,) around the occupied cells of the finest level, grown by `margin` cells on each side and
        kept inside the scene box; the scene box when no cell is occupied. Cells none of whose 26 neighbours
        is occupied (lone floaters) are left out. Identical on every rank under torchrun, whose ranks merge
        their updates into one grid."""
        occupied = self.binary
        cells = (occupied & (neighbourhood_counts(occupied) > 1)).nonzero()
        if len(cells) == 0:
            return self.aabb.clone()
        lo, hi = self.aabb[:3], self.aabb[3:]
        cell = (hi - lo) / torch.tensor(self.binary.shape, device=lo.device)
        first = (cells.amin(0) - margin).clamp(min=0)
        last = cells.amax(0) + 1 + margin
        return torch.cat([lo + first * cell, torch.minimum(lo + last * cell, hi)])

    @torch.no_grad()
    def update(self, step: int, density_fn: Callable[[torch.Tensor], torch.Tensor], step_size: float,
               merge: Merge | None = None) -> bool:
        """Fold fresh densities in when `step` is an update step; returns whether it updated.

        Cells are chosen by nerfacc's rules (all during warm-up, then uniform plus occupied ones);
        the EMA and the threshold run in the device's native kernel or its PyTorch twin. `merge` (data-parallel
        training) replaces this process's measured cells (M,) and values (M,) by every process's, so that
        all fold in the same values and keep the same grid.
        """
        if step % self.update_every != 0:
            return False
        grid = self.estimator
        if step < self.warmup_steps:
            per_level = grid._get_all_cells()
        else:
            per_level = grid._sample_uniform_and_occupied_cells(grid.cells_per_lvl // 4)
        cells, thickness = [], []
        for level, (indices, box) in enumerate(zip(per_level, self.aabbs)):
            coords = grid.grid_coords.index_select(0, indices)  # 3x faster on a CPU than indexing with []
            x = (coords + torch.rand_like(coords, dtype=torch.float32)) / grid.resolution
            x = box[:3] + x * (box[3:] - box[:3])
            thickness.append(torch.cat([density_fn(c) for c in x.split(self.eval_chunk)]) * step_size)
            cells.append(level * grid.cells_per_lvl + indices)
        cells, thickness = torch.cat(cells), torch.cat(thickness)
        if merge is not None:
            cells, thickness = merge(cells, thickness, grid.occs.numel())
        binary = ops_for(self.aabb.device).occupancy_update(grid.occs, cells, thickness, self.ema_decay,
                                                           self.threshold)
        grid.binaries = binary.view(grid.binaries.shape)
        self._refresh_coarse()
        return True

    def _refresh_coarse(self) -> None:
        self.coarse_binary = coarse_grid(self.binary)


def neighbourhood_counts(binary: torch.Tensor) -> torch.Tensor:
    """For each cell of a grid (X, Y, Z) bool, how many cells of its 3 x 3 x 3 neighbourhood (itself included)
    are set (X, Y, Z) uint8: box sums along each axis in turn (a 128^3 grid in milliseconds; conv3d took 0.2 s)."""
    counts = binary.to(torch.uint8)
    for axis in range(3):
        padded = F.pad(counts.movedim(axis, -1), (1, 1))
        counts = (padded[..., :-2] + padded[..., 1:-1] + padded[..., 2:]).movedim(-1, axis)
    return counts
