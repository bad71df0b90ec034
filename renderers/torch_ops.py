"""Pure-PyTorch reference operations of the volume renderer.

Samples are packed: one flat list over all rays, sorted by ray, each with its ray index and its
interval [t_start, t_end). Native kernels (CUDA, CPU) implement the same functions with the same
semantics; tests compare them against these.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch


@dataclass
class PackedSamples:
    """ray_indices (S,) long, sorted; t_starts, t_ends (S,) float32."""

    ray_indices: torch.Tensor
    t_starts: torch.Tensor
    t_ends: torch.Tensor

    def __len__(self) -> int:
        return self.ray_indices.shape[0]

    def select(self, mask: torch.Tensor) -> "PackedSamples":
        """The samples at indices (C,) or where a bool mask (S,) is set."""
        if mask.dtype == torch.bool:
            mask = mask.nonzero().squeeze(1)  # once, not once per tensor
        return PackedSamples(self.ray_indices.index_select(0, mask), self.t_starts.index_select(0, mask),
                             self.t_ends.index_select(0, mask))

    def midpoints(self, origins: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions (S, 3) at interval midpoints and the sample directions (S, 3)."""
        d = directions.index_select(0, self.ray_indices)  # index_select: several times faster than d[indices]
        t = (0.5 * (self.t_starts + self.t_ends))[:, None]
        return origins.index_select(0, self.ray_indices) + t * d, d


def ray_aabb_intersect(origins: torch.Tensor, directions: torch.Tensor, aabb: torch.Tensor):
    """Slab test. Returns t_near, t_far (R,) with t_near >= 0; rays that miss get t_near = t_far = 0."""
    inv = 1.0 / torch.where(directions.abs() < 1e-10, torch.full_like(directions, 1e-10), directions)
    t0 = (aabb[:3] - origins) * inv
    t1 = (aabb[3:] - origins) * inv
    t_near = torch.minimum(t0, t1).amax(-1).clamp(min=0.0)
    t_far = torch.maximum(t0, t1).amin(-1)
    hit = t_far > t_near
    zero = torch.zeros_like(t_near)
    return torch.where(hit, t_near, zero), torch.where(hit, t_far, zero)


def grid_lookup(binary: torch.Tensor, aabb: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Occupancy (P,) bool of positions (P, 3) in a binary grid (X, Y, Z) spanning aabb.

    Positions outside the box read the nearest boundary cell (the marcher only asks inside).
    """
    res = torch.tensor(binary.shape, device=positions.device)
    cell = ((positions - aabb[:3]) * (res / (aabb[3:] - aabb[:3]))).long()
    cell = torch.minimum(cell.clamp_(min=0), res - 1)
    flat = (cell[:, 0] * binary.shape[1] + cell[:, 1]) * binary.shape[2] + cell[:, 2]
    return binary.reshape(-1)[flat]


def coarse_grid(binary: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """A conservative coarse grid for `march_round`: max-pooled by `factor`, then dilated by one cell,
    so a coarse cell is occupied when any fine cell in it or its 26 neighbours is."""
    if any(n % factor for n in binary.shape):
        raise ValueError(f"grid resolution {tuple(binary.shape)} must be a multiple of the coarse factor {factor}")
    pooled = torch.nn.functional.max_pool3d(binary[None, None].float(), factor)
    return torch.nn.functional.max_pool3d(pooled, 3, stride=1, padding=1)[0, 0] > 0


def occupancy_mips(binary: torch.Tensor, min_resolution: int = 4) -> list[torch.Tensor]:
    """Coarser copies of a binary grid (X, Y, Z) for empty-space skipping: each halves the previous one's
    resolution, a cell occupied when any of its 8 children is; while every side stays even and
    at least 2 * min_resolution."""
    mips, grid = [], binary
    while all(n % 2 == 0 and n >= 2 * min_resolution for n in grid.shape) and len(mips) < 8:
        grid = torch.nn.functional.max_pool3d(grid[None, None].float(), 2)[0, 0] > 0
        mips.append(grid.contiguous())
    return mips


def _enumerate(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For counts (R,) long: owner (C,) and local index (C,) of every item, C = counts.sum()."""
    total = int(counts.sum())
    owner = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts, output_size=total)
    local = torch.arange(total, device=counts.device) - (torch.cumsum(counts, 0) - counts)[owner]
    return owner, local


def steps_in_box(t_min: torch.Tensor, t_max: torch.Tensor, offsets: torch.Tensor, step_size: float,
                 near: torch.Tensor, far: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where `march_round` starts and ends rays (R,) marched only inside a box that each crosses from near to far
    (R,) (`ray_aabb_intersect`: near = far for rays that miss it): the first step (R,) long and the end (R,) to
    march with instead of step 0 and t_max. The steps left out have their midpoints at least 1.5 steps outside
    the box; those kept are the steps of the whole ray's march, at the same places. A ray that misses the box
    gets no step."""
    hit = far > near
    first = ((near - t_min) / step_size - offsets).floor() - 1
    first = torch.where(hit, first.clamp(min=0), torch.zeros_like(first)).long()
    end = torch.where(hit, torch.minimum(t_max, far + 2 * step_size), t_min)
    return first, end


def march_round(origins: torch.Tensor, directions: torch.Tensor, t_min: torch.Tensor, t_max: torch.Tensor,
                binary: torch.Tensor, aabb: torch.Tensor, step_size: float, offsets: torch.Tensor,
                first_steps: torch.Tensor, max_samples: int, coarse_binary: torch.Tensor | None = None,
                mips: list[torch.Tensor] | None = None) -> tuple[PackedSamples, torch.Tensor]:
    """Uniform steps through occupied cells of a binary grid (X, Y, Z) spanning `aabb`, one round of them.

    Step k of ray r spans [t_min + (k + u_r) dt, t_min + (k + 1 + u_r) dt) with u_r = offsets[r]
    in [0, 1) (0 at evaluation, random in training); it is kept when it ends by t_max and its
    midpoint lies in an occupied cell. The round marches each ray from step first_steps[r] (R,) long on and
    keeps its first max_samples samples (all when max_samples <= 0). Returns the samples and the step (R,) long
    after each ray's last one, where its next round starts (its number of steps when it ran out first).
    `coarse_binary` (from `coarse_grid`) only skips empty space faster, K steps at a time (K dt no longer than
    a coarse cell): the result is the same without it. `mips` (`occupancy_mips`) is the native marcher's
    skipping structure, unused here.
    """
    n_steps = ((t_max - t_min) / step_size - offsets).floor().clamp(min=0).long()
    first = torch.minimum(first_steps, n_steps)
    t_base = t_min + offsets * step_size
    if coarse_binary is not None:
        coarse_cell = float(((aabb[3:] - aabb[:3]) / torch.tensor(coarse_binary.shape, device=aabb.device)).min())
        k_per = max(1, int(coarse_cell / step_size))
        ray, j = _enumerate((n_steps - first + k_per - 1) // k_per)
        k0 = first[ray] + j * k_per
        t_mid = t_base[ray] + (k0 + 0.5 * k_per) * step_size
        hit = grid_lookup(coarse_binary, aabb, origins[ray] + t_mid[:, None] * directions[ray])
        ray, k0 = ray[hit], k0[hit]
        ray = ray.repeat_interleave(k_per)
        k = (k0[:, None] + torch.arange(k_per, device=k0.device)).view(-1)
        valid = k < n_steps[ray]
        ray, k = ray[valid], k[valid]
    else:
        ray, local = _enumerate(n_steps - first)
        k = first[ray] + local
    t0 = t_base[ray] + k * step_size
    occupied = grid_lookup(binary, aabb, origins[ray] + (t0 + 0.5 * step_size)[:, None] * directions[ray])
    ray, k, t0 = ray[occupied], k[occupied], t0[occupied]
    next_steps = n_steps.clone()
    if max_samples > 0:
        counts = torch.bincount(ray, minlength=len(origins))
        rank = torch.arange(len(ray), device=ray.device) - (torch.cumsum(counts, 0) - counts)[ray]
        last = rank == max_samples - 1  # a ray's last sample this round
        next_steps[ray[last]] = k[last] + 1
        kept = rank < max_samples
        ray, t0 = ray[kept], t0[kept]
    return PackedSamples(ray, t0, t0 + step_size), next_steps


def cascade_lookup(binaries: torch.Tensor, aabbs: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Occupancy (P,) bool of positions (P, 3) in cascaded grids (K, X, Y, Z) with boxes aabbs (K, 6): each
    position reads the finest level whose box holds it (the last level for positions outside all)."""
    levels = binaries.shape[0]
    level = torch.full((len(positions),), levels - 1, dtype=torch.long, device=positions.device)
    for k in reversed(range(levels - 1)):
        inside = ((positions >= aabbs[k, :3]) & (positions <= aabbs[k, 3:])).all(-1)
        level = torch.where(inside, torch.full_like(level, k), level)
    res = torch.tensor(binaries.shape[1:], device=positions.device)
    scale = res / (aabbs[:, 3:] - aabbs[:, :3])  # (K, 3), float32 as the kernels compute it
    cell = ((positions - aabbs[level, :3]) * scale[level]).long()
    cell = torch.minimum(cell.clamp_(min=0), res - 1)
    flat = ((level * res[0] + cell[:, 0]) * res[1] + cell[:, 1]) * res[2] + cell[:, 2]
    return binaries.reshape(-1)[flat]


def cone_step(t: torch.Tensor, dt_min: float, dt_max: float, cone: float) -> torch.Tensor:
    """instant-ngp's cone step at distances t (R,): clamp(t * cone, dt_min, dt_max), in float32."""
    as_f32 = functools.partial(torch.tensor, dtype=torch.float32, device=t.device)
    return torch.minimum(torch.maximum(t * as_f32(cone), as_f32(dt_min)), as_f32(dt_max))


def cone_starts(t_min: torch.Tensor, offsets: torch.Tensor, dt_min: float, dt_max: float,
                cone: float) -> torch.Tensor:
    """Where the cone-step marcher's rays start (R,): t_min + u_r dt(t_min), u_r = offsets[r] in [0, 1)."""
    return t_min + offsets * cone_step(t_min, dt_min, dt_max, cone)


def march_round_cascaded(origins: torch.Tensor, directions: torch.Tensor, t_starts: torch.Tensor,
                         t_max: torch.Tensor, binaries: torch.Tensor, aabbs: torch.Tensor, dt_min: float,
                         dt_max: float, cone: float, max_samples: int) -> tuple[PackedSamples, torch.Tensor]:
    """instant-ngp's cone step through cascaded grids (unbounded scenes), one round of it.

    Steps are dt(t) = clamp(t * cone, dt_min, dt_max): constant near the camera, growing with distance.
    Ray r starts at t_starts[r] (`cone_starts` for its first round); a step [t, t + dt) is kept when it ends by
    t_max and its midpoint lies in an occupied cell of the finest cascade holding it (`cascade_lookup`); a ray
    stops after max_samples kept steps (never when max_samples <= 0). Returns the samples and the distance (R,)
    where each ray's next round starts (the end of its last sample; t_max when it ran out first). All rays
    step in lockstep, one step per iteration.
    """
    ray = torch.arange(len(origins), device=origins.device)
    t, t_next = t_starts, t_max.clone()
    count = torch.zeros(len(origins), dtype=torch.long, device=origins.device)
    found: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    while len(ray):
        dt = cone_step(t, dt_min, dt_max, cone)
        t_end = t + dt
        go = t_end <= t_max[ray]
        ray, t, dt, t_end = ray[go], t[go], dt[go], t_end[go]
        t_mid = t + 0.5 * dt
        hit = cascade_lookup(binaries, aabbs, origins[ray] + t_mid[:, None] * directions[ray])
        found.append((ray[hit], t[hit], t_end[hit]))
        if max_samples > 0:
            count[ray[hit]] += 1  # each ray at most once per iteration
            full = hit & (count[ray] >= max_samples)
            t_next[ray[full]] = t_end[full]
            ray, t_end = ray[~full], t_end[~full]
        t = t_end
    if not found:
        empty = origins.new_zeros(0)
        return PackedSamples(empty.long(), empty, empty), t_next
    rays, starts, ends = (torch.cat(parts) for parts in zip(*found))
    order = torch.sort(rays, stable=True).indices  # found in step order: stable keeps each ray's steps in order
    return PackedSamples(rays[order], starts[order], ends[order]), t_next


def ray_starts(ray_indices: torch.Tensor, n_rays: int) -> torch.Tensor:
    """Index of each sample's ray's first sample (S,), for packed, ray-sorted samples."""
    counts = torch.bincount(ray_indices, minlength=n_rays)
    first = torch.cumsum(counts, 0) - counts
    return first[ray_indices]


def transmittance(sigmas: torch.Tensor, samples: PackedSamples, n_rays: int):
    """Transmittance before each sample and its alpha, both (S,).

    T_i = exp(-sum_{j<i} sigma_j dt_j) within a ray (a segmented exclusive sum, in float64 so that long
    packed batches keep precision); alpha_i = 1 - exp(-sigma_i dt_i).
    """
    tau = sigmas * (samples.t_ends - samples.t_starts)
    inclusive = torch.cumsum(tau.double(), 0)
    exclusive = inclusive - tau.double()
    start = ray_starts(samples.ray_indices, n_rays)
    before = (exclusive - exclusive[start]).float()
    return torch.exp(-before), 1.0 - torch.exp(-tau)


def sample_offsets(ray_indices: torch.Tensor, n_rays: int) -> torch.Tensor:
    """(R + 1,) long: the samples of ray r are [offsets[r], offsets[r + 1]) in a ray-sorted packing."""
    counts = torch.bincount(ray_indices, minlength=n_rays)
    return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])


def termination_round(sigmas: torch.Tensor, samples: PackedSamples, optical_depth: torch.Tensor,
                      alive: torch.Tensor, eps: float) -> torch.Tensor:
    """One round of early termination: the samples (C,) continue each ray's optical depth so far.

    Returns keep (C,) bool, transmittance before the sample >= eps. Adds the round's sigma * dt to
    optical_depth (R,) float64 and clears alive (R,) where transmittance fell below eps, in place.
    """
    n_rays = optical_depth.shape[0]
    trans, _ = transmittance(sigmas, samples, n_rays)
    trans = trans * torch.exp(-optical_depth[samples.ray_indices]).float()
    tau = (sigmas * (samples.t_ends - samples.t_starts)).double()
    optical_depth.index_add_(0, samples.ray_indices, tau)
    alive &= torch.exp(-optical_depth).float() >= eps
    return trans >= eps


def composite(
    sigmas: torch.Tensor, rgbs: torch.Tensor, samples: PackedSamples, n_rays: int, early_stop_eps: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Alpha compositing of packed samples.

    sigmas (S,), rgbs (S, 3) -> rgb (R, 3) (no background), depth (R,) (weight-averaged midpoint
    distance, not normalised by opacity), opacity (R,), weights (S,). Samples whose transmittance
    before them is below early_stop_eps get weight 0 (the ray has terminated).
    """
    trans, alpha = transmittance(sigmas, samples, n_rays)
    weights = trans * alpha
    if early_stop_eps > 0:
        weights = weights * (trans >= early_stop_eps)
    idx = samples.ray_indices
    rgb = torch.zeros(n_rays, 3, dtype=rgbs.dtype, device=rgbs.device).index_add(0, idx, weights[:, None] * rgbs)
    mid = 0.5 * (samples.t_starts + samples.t_ends)
    depth = torch.zeros(n_rays, dtype=weights.dtype, device=weights.device).index_add(0, idx, weights * mid)
    opacity = torch.zeros(n_rays, dtype=weights.dtype, device=weights.device).index_add(0, idx, weights)
    return rgb, depth, opacity, weights


def occupancy_update(occs: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, decay: float,
                     threshold: float) -> torch.Tensor:
    """instant-ngp's EMA update, in place on occs (C,): each selected cell decays once, then takes the max
    of the values (M,) at indices (M,) that fell in it. Returns occupied cells (C,) bool: value above
    min(mean of cells >= 0, threshold)."""
    decayed = occs[indices] * decay
    occs.scatter_reduce_(0, indices, torch.maximum(decayed, values), "amax", include_self=False)
    return occs > torch.clamp(occs[occs >= 0].mean(), max=threshold)
