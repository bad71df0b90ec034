"""The renderer's operations for a device: the kernels of `nfields.cuda` where its dispatch has a build
for that device, else the pure-PyTorch reference (`torch_ops`). Both sets have the same signatures."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

import torch

from ..cuda import functions
from ..cuda.dispatch import kernels_for
from . import torch_ops
from .torch_ops import PackedSamples


@dataclass(frozen=True)
class RenderOps:
    ray_aabb_intersect: Callable
    march_round: Callable
    march_round_cascaded: Callable
    sample_offsets: Callable
    composite: Callable
    termination_round: Callable
    occupancy_update: Callable

    def march_rays(self, origins, directions, t_min, t_max, binary, aabb, step_size, offsets, coarse_binary=None,
                   mips=None) -> PackedSamples:
        """Every sample of whole rays, constant step (`torch_ops.march_round` in one round)."""
        first = torch.zeros(len(origins), dtype=torch.long, device=origins.device)
        return self.march_round(origins, directions, t_min, t_max, binary, aabb, step_size, offsets, first, 0,
                                coarse_binary, mips)[0]

    def march_rays_cascaded(self, origins, directions, t_min, t_max, binaries, aabbs, dt_min, dt_max, cone,
                            offsets) -> PackedSamples:
        """Every sample of whole rays, cone step (`torch_ops.march_round_cascaded` in one round)."""
        starts = torch_ops.cone_starts(t_min, offsets, dt_min, dt_max, cone)
        return self.march_round_cascaded(origins, directions, starts, t_max, binaries, aabbs, dt_min, dt_max, cone,
                                         0)[0]


TORCH_OPS = RenderOps(
    ray_aabb_intersect=torch_ops.ray_aabb_intersect,
    march_round=torch_ops.march_round,
    march_round_cascaded=torch_ops.march_round_cascaded,
    sample_offsets=torch_ops.sample_offsets,
    composite=torch_ops.composite,
    termination_round=torch_ops.termination_round,
    occupancy_update=torch_ops.occupancy_update,
)


@functools.cache
def kernel_ops(kernels: ModuleType) -> RenderOps:
    """RenderOps whose marching, compositing and occupancy update run in `kernels` (CPU or CUDA build)."""

    def march_round(origins, directions, t_min, t_max, binary, aabb, step_size, offsets, first_steps, max_samples,
                    coarse_binary=None, mips=None):
        # The native marcher skips empty space through the grid's mip pyramid (`torch_ops.occupancy_mips`,
        # built here when not given), not through the twin's coarse grid.
        mips = torch_ops.occupancy_mips(binary) if mips is None else mips
        ray_indices, t_starts, t_ends, next_steps = kernels.march_rays(
            origins.contiguous(), directions.contiguous(), t_min.contiguous(), t_max.contiguous(),
            offsets.contiguous(), first_steps.contiguous(), binary.contiguous(), mips, aabb, float(step_size),
            int(max_samples))
        return PackedSamples(ray_indices, t_starts, t_ends), next_steps

    def march_round_cascaded(origins, directions, t_starts, t_max, binaries, aabbs, dt_min, dt_max, cone,
                             max_samples):
        ray_indices, starts, ends, t_next = kernels.march_rays_cascaded(
            origins.contiguous(), directions.contiguous(), t_starts.contiguous(), t_max.contiguous(),
            binaries.contiguous(), aabbs, float(dt_min), float(dt_max), float(cone), int(max_samples))
        return PackedSamples(ray_indices, starts, ends), t_next

    def sample_offsets(ray_indices, n_rays: int):
        return kernels.sample_offsets(ray_indices.contiguous(), n_rays)

    def composite(sigmas, rgbs, samples: PackedSamples, n_rays: int, early_stop_eps: float = 0.0):
        offsets = sample_offsets(samples.ray_indices, n_rays)
        return functions.composite(kernels, sigmas, rgbs, offsets, samples.t_starts, samples.t_ends, early_stop_eps)

    def termination_round(sigmas, samples: PackedSamples, optical_depth, alive, eps: float):
        offsets = sample_offsets(samples.ray_indices, optical_depth.shape[0])
        return kernels.termination_round(sigmas.float().contiguous(), samples.t_starts.contiguous(),
                                         samples.t_ends.contiguous(), offsets, optical_depth, alive, eps)

    def occupancy_update(occs, indices, values, decay, threshold):
        return kernels.occupancy_update(occs, indices.contiguous(), values.contiguous(), decay, threshold)

    return RenderOps(
        ray_aabb_intersect=torch_ops.ray_aabb_intersect,
        march_round=march_round,
        march_round_cascaded=march_round_cascaded,
        sample_offsets=sample_offsets,
        composite=composite,
        termination_round=termination_round,
        occupancy_update=occupancy_update,
    )


def ops_for(device: torch.device | str) -> RenderOps:
    """The operations to use for tensors on `device`."""
    kernels = kernels_for(device)
    return TORCH_OPS if kernels is None else kernel_ops(kernels)
