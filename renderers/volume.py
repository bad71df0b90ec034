"""One volume renderer for every backbone: ray/box intersection, occupancy-grid marching, compositing."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from . import torch_ops
from .marching import RayMarch, in_ray_order
from .occupancy import Merge, OccupancyGrid
from .render_ops import ops_for
from .torch_ops import PackedSamples

# The samples per live ray of a training render's first gradient-free rounds, each round after them twice the last
# (`VolumeRenderer.rounds_until_opaque`). Lego, 10-minute checkpoint: a ray still alive after 16 samples mostly ends
# within the next 10 (median kept 10, quartiles 5 and 18 of those that end in the second round), so a second round
# of 32 marched 38k samples a step to keep 18k. 16, 10, 20, 40 ...: 91k samples evaluated a step instead of 104k
# in 5 rounds instead of 4; a step 0.5-4 % faster in alternating measurements, no change on beer, whose rays end in
# their first round (docs/kernels.md, eighth round).
TRAINING_ROUNDS = (16, 10)


@dataclass
class RenderOutput:
    """Per ray: rgb (R, 3) over the background, depth (R,) (expected distance, 0 where empty),
    opacity (R,). n_samples: samples that reached the field with gradients (training) or colour.
    samples, weights: those samples (S of them, packed) and their compositing weights (S,), for losses on
    the weights (training renders only; None otherwise)."""

    rgb: torch.Tensor
    depth: torch.Tensor
    opacity: torch.Tensor
    n_samples: int
    samples: PackedSamples | None = None
    weights: torch.Tensor | None = None


@dataclass
class VisibleSamples:
    """The samples of R rays in front of each ray's termination point, as one field sees it: the packed
    samples (S of them), their midpoints (S, 3) and unit directions (S, 3), and that field's densities
    (S,) and features (S, F) there, evaluated without gradients (None when not kept); or instead what that
    field's `marching_density` offered to reuse there (S, E) (None when it offered nothing)."""

    samples: PackedSamples
    positions: torch.Tensor
    directions: torch.Tensor
    sigmas: torch.Tensor | None
    features: torch.Tensor | None
    n_rays: int
    reused: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.samples)


@dataclass
class Shading:
    """A field composited at visible samples: per sample its densities (S,), features (S, F), colours (S, 3)
    and compositing weights (S,); per ray rgb over the background (R, 3), depth (R,) and opacity (R,)."""

    sigmas: torch.Tensor
    features: torch.Tensor
    rgbs: torch.Tensor
    weights: torch.Tensor
    rgb: torch.Tensor
    depth: torch.Tensor
    opacity: torch.Tensor


def crop_samples(samples: PackedSamples, origins: torch.Tensor, directions: torch.Tensor,
                 crop: torch.Tensor) -> PackedSamples:
    """The samples whose midpoints lie inside the box crop (6,): the others count as empty space."""
    positions, _ = samples.midpoints(origins, directions)
    crop = crop.to(positions)
    return samples.select(((positions >= crop[:3]) & (positions <= crop[3:])).all(-1))


def rows_of(rays: torch.Tensor, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """The rows `rays` (L,) long, ascending and distinct, of per-ray tensors (R, ...): the tensors themselves when
    that is every row (a first round), else gathered."""
    if len(rays) == len(tensors[0]):
        return list(tensors)
    return [t.index_select(0, rays) for t in tensors]


def marching_density(field, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`Field.marching_density`; for a field-like module with density and color alone, density's sigma."""
    if hasattr(field, "marching_density"):
        return field.marching_density(positions)
    return field.density(positions)[0], None


class VolumeRenderer(nn.Module):
    """Renders any Field (density(x) -> sigma, feature; color(feature, d) -> rgb; optionally marching_density and
    density_reusing, see Field) along rays.

    step_size defaults to instant-ngp's sqrt(3)/1024 of the box's longest side (5e-3 for +-1.5).
    early_stop_eps: samples behind transmittance below it are dropped (1e-4 as in instant-ngp).
    alpha_threshold: samples whose opacity 1 - exp(-sigma dt) is below it are dropped (nerfacc's alpha_thre;
    0: none): in an unbounded scene most samples cross thin fog that barely changes a pixel. Training applies it
    from step alpha_warmup (the step `update_occupancy` last saw): a young field's samples all lie under it.
    cascades > 1 (unbounded scenes): rays march through occupancy grids 2^k times the box, k < cascades,
    with instant-ngp's cone step clamp(t * cone_angle, step_size, step_size * 2^(cascades - 1)).
    occupancy_threshold: a grid cell is occupied when its optical thickness exceeds min(grid mean, this).
    render_*: what evaluation renders (views, videos, the viewer; not training) skip instead: samples less opaque
    than render_alpha_threshold, samples behind transmittance render_early_stop_eps and, with cascades, cells whose
    grid value (optical thickness) is below render_occupancy_threshold; None: as in training. And colour only at
    samples whose compositing weight reaches render_weight_threshold (0: every kept sample), each ray's shaded
    colours rescaled to its opacity (see `render_in_rounds`).
    """

    def __init__(self, aabb: torch.Tensor, near: float = 0.0, grid_resolution: int = 128,
                 step_size: float | None = None, early_stop_eps: float = 1e-4, cascades: int = 1,
                 cone_angle: float = 0.0, alpha_threshold: float = 0.0, render_alpha_threshold: float | None = None,
                 render_early_stop_eps: float | None = None, render_occupancy_threshold: float | None = None,
                 render_weight_threshold: float = 0.0, occupancy_threshold: float = 0.01, alpha_warmup: int = 0):
        super().__init__()
        aabb = torch.as_tensor(aabb, dtype=torch.float32)
        self.register_buffer("aabb", aabb.clone())
        self.near = near
        self.step_size = step_size or math.sqrt(3) * float((aabb[3:] - aabb[:3]).max()) / 1024
        self.early_stop_eps, self.alpha_threshold = early_stop_eps, alpha_threshold
        self.alpha_warmup, self.training_step = alpha_warmup, 0
        self.cascades, self.cone_angle = cascades, cone_angle
        self.render_alpha_threshold = alpha_threshold if render_alpha_threshold is None else render_alpha_threshold
        self.render_early_stop_eps = early_stop_eps if render_early_stop_eps is None else render_early_stop_eps
        self.render_occupancy_threshold = render_occupancy_threshold
        self.render_weight_threshold = render_weight_threshold
        self.occupancy = OccupancyGrid(aabb, resolution=grid_resolution, levels=cascades,
                                       threshold=occupancy_threshold)

    def update_occupancy(self, field, step: int, merge: Merge | None = None) -> bool:
        """The occupancy grid's update at training step `step` (which also ends the alpha warm-up)."""
        self.training_step = step
        return self.occupancy.update(step, lambda x: marching_density(field, x)[0], self.step_size, merge)

    def occupied_box(self) -> torch.Tensor:
        """The box (6,) the occupancy grid finds occupied (`OccupancyGrid.occupied_box`)."""
        return self.occupancy.occupied_box()

    @property
    def max_step(self) -> float:
        """The longest step the marcher takes (the cone step's upper clamp with cascades)."""
        return self.step_size * 2 ** (self.cascades - 1)

    def culling(self, training: bool) -> tuple[float, float]:
        """(alpha threshold, early-stop transmittance) of a training render (no alpha threshold during the first
        alpha_warmup steps) or of an evaluation render."""
        if training:
            return (self.alpha_threshold if self.training_step >= self.alpha_warmup else 0.0), self.early_stop_eps
        return self.render_alpha_threshold, self.render_early_stop_eps

    def start_march(self, origins: torch.Tensor, directions: torch.Tensor, jitter: bool, training: bool = True,
                    crop: torch.Tensor | None = None) -> RayMarch:
        """The march of rays (R, 3) through occupied cells, to take in rounds (`RayMarch.next`): an evaluation
        render's (not training) through the grid of render_occupancy_threshold when set; crop: a box (6,) min xyz
        then max xyz outside which the scene counts as empty (samples whose midpoints lie outside it are dropped,
        see `crop_samples`)."""
        ops = ops_for(origins.device)
        grid = self.occupancy
        box = grid.aabbs[-1]  # the outermost cascade: the scene box itself when there is one level
        t_min, t_max = ops.ray_aabb_intersect(origins, directions, box)
        t_min = t_min.clamp(min=self.near)
        if crop is not None:
            t_max = self.crop_far(ops, origins, directions, t_min, t_max, crop)
        offsets = torch.rand_like(t_min) if jitter else torch.zeros_like(t_min)
        keep = None if crop is None else (lambda samples: crop_samples(samples, origins, directions, crop))
        if self.cascades > 1:
            binaries = grid.binaries
            if not training and self.render_occupancy_threshold is not None:
                binaries = grid.binaries_above(self.render_occupancy_threshold)

            def march_round(rays, t_starts, max_samples):
                o, d, t_end = rows_of(rays, origins, directions, t_max)
                return ops.march_round_cascaded(o, d, t_starts, t_end, binaries, grid.aabbs, self.step_size,
                                                self.max_step, self.cone_angle, max_samples)

            starts = torch_ops.cone_starts(t_min, offsets, self.step_size, self.max_step, self.cone_angle)
            return RayMarch(march_round, starts, keep)
        binary, coarse, mips = grid.binary, grid.coarse_binary, grid.mips
        # rays march only where they cross the box of the occupied cells (lone floaters outside it are left out)
        near, far = ops.ray_aabb_intersect(origins, directions, grid.marching_box)
        first_steps, t_max = torch_ops.steps_in_box(t_min, t_max, offsets, self.step_size, near, far)

        def march_round(rays, first_steps, max_samples):
            o, d, t_start, t_end, u = rows_of(rays, origins, directions, t_min, t_max, offsets)
            return ops.march_round(o, d, t_start, t_end, binary, self.aabb, self.step_size, u, first_steps,
                                   max_samples, coarse, mips)

        return RayMarch(march_round, first_steps, keep)

    def march(self, origins: torch.Tensor, directions: torch.Tensor, jitter: bool, training: bool = True,
              crop: torch.Tensor | None = None) -> PackedSamples:
        """Every sample of rays (R, 3) in occupied cells, in one round (see `start_march`)."""
        rays = torch.arange(len(origins), device=origins.device)
        return self.start_march(origins, directions, jitter, training, crop).next(rays, 0)[0]

    def crop_far(self, ops, origins: torch.Tensor, directions: torch.Tensor, t_min: torch.Tensor,
                 t_max: torch.Tensor, crop: torch.Tensor) -> torch.Tensor:
        """t_max (R,) cut to one step past the crop box's far side (t_min for rays that miss it): marching stops
        there. The steps before are the ones the uncut ray takes (the near side is left to `crop_samples`, so
        that a sample inside the box sits where it would without the crop)."""
        near, far = ops.ray_aabb_intersect(origins, directions, crop.to(origins))
        return torch.where(far > near, torch.minimum(t_max, far + self.max_step), t_min)

    @torch.no_grad()
    def rounds_until_opaque(self, field, origins: torch.Tensor, directions: torch.Tensor, jitter: bool,
                            training: bool = True, crop: torch.Tensor | None = None, keep_values: bool = True,
                            round_sizes: tuple[int, ...] = TRAINING_ROUNDS, growth: int = 2):
        """Yields, round by round, the samples of rays (R, 3) in front of each ray's termination point.

        Round r marches each live ray's next round_sizes[r] samples, and after those rounds `growth` times the
        last round's (`start_march`), and evaluates the field's density there (`Field.density` with keep_values,
        else `Field.marching_density`), carrying the optical depth so far; a ray stops once its transmittance falls
        below the early-stop transmittance or its march ends. Samples behind that point are never marched, but
        those the ray's last round marched behind it are evaluated in vain: growth 1 (rounds of one size)
        wastes the fewest, growth 2 takes the fewest rounds (see TRAINING_ROUNDS).
        Each round yields its kept samples (C,), packed and ray-sorted (transmittance before the sample >= the
        early-stop transmittance and opacity >= the alpha threshold, those of `culling(training)`), and with
        keep_values their densities (C,) and features (C, F), else None and what `marching_density` offered to
        reuse (C, E) or None; rounds with none yield nothing.
        """
        alpha_threshold, early_stop_eps = self.culling(training)
        ops = ops_for(origins.device)
        march = self.start_march(origins, directions, jitter, training, crop)
        device, n_rays = origins.device, origins.shape[0]
        depth = torch.zeros(n_rays, dtype=torch.float64, device=device)
        alive = torch.ones(n_rays, dtype=torch.bool, device=device)
        round_index, size = 0, round_sizes[0]
        while bool(alive.any()):
            rays = alive.nonzero().squeeze(1)
            chosen, ended = march.next(rays, size)
            alive[rays[ended]] = False
            round_index += 1
            size = round_sizes[round_index] if round_index < len(round_sizes) else size * growth
            if len(chosen) == 0:
                continue
            positions = chosen.midpoints(origins, directions)[0]
            # values: the features with keep_values, else what the field offers to reuse (or None)
            sigma, values = field.density(positions) if keep_values else marching_density(field, positions)
            visible = ops.termination_round(sigma, chosen, depth, alive, early_stop_eps)
            if alpha_threshold > 0:
                thickness = sigma * (chosen.t_ends - chosen.t_starts)
                visible &= thickness >= -math.log1p(-alpha_threshold)
            seen = visible.nonzero().squeeze(1)
            if len(seen):
                yield (chosen.select(seen), sigma.index_select(0, seen) if keep_values else None,
                       values.index_select(0, seen) if values is not None else None)

    def march_until_opaque(self, field, origins: torch.Tensor, directions: torch.Tensor, jitter: bool,
                           training: bool = True, crop: torch.Tensor | None = None, keep_values: bool = True):
        """All rounds of `rounds_until_opaque` as one ray-sorted list: the kept samples (K,) and with keep_values
        their densities (K,) and features (K, F), else None and the reusable values (K, E) or None."""
        rounds = list(self.rounds_until_opaque(field, origins, directions, jitter, training, crop, keep_values))
        if rounds:
            return in_ray_order(rounds)
        with torch.no_grad():
            sigmas, features = field.density(origins[:0]) if keep_values else (None, None)
        nothing = origins.new_zeros(0)
        return PackedSamples(nothing.long(), nothing, nothing), sigmas, features

    def visible_samples(self, field, origins: torch.Tensor, directions: torch.Tensor, jitter: bool,
                        keep_densities: bool = True, crop: torch.Tensor | None = None) -> VisibleSamples:
        """March rays (R, 3) through the occupancy grid and keep the samples `field` leaves visible, culled as
        training culls (`march_until_opaque`), with its densities and features there unless `keep_densities` is
        False (a training step evaluates them again with gradients: then it keeps only what `field` offers to
        reuse, see `Field.marching_density`). crop: an
        optional box (6,): the field counts as empty outside it (see `march`). Evaluation renders take their
        samples round by round instead (`render_in_rounds`)."""
        visible, sigmas, values = self.march_until_opaque(field, origins, directions, jitter, crop=crop,
                                                          keep_values=keep_densities)
        positions, visible_directions = visible.midpoints(origins, directions)
        if keep_densities:
            return VisibleSamples(visible, positions, visible_directions, sigmas, values, origins.shape[0])
        return VisibleSamples(visible, positions, visible_directions, None, None, origins.shape[0], reused=values)

    def shade(self, field, visible: VisibleSamples, background: torch.Tensor,
              reuse_densities: bool = False, every_color: bool = False) -> Shading:
        """Composite `field` at `visible` over `background` (R, 3) or (3,). reuse_densities: take the densities
        and features `visible` carries (the field that marched, no gradients); otherwise `field` evaluates
        them again (with gradients when it trains), from what it offered to reuse when `visible` carries that
        (`visible.reused`: `field` must be the field that marched). Colour runs only at the visible samples, and
        only at those above the field's `color_weight_threshold` unless every_color (see `colors`); rays stop at
        the training early-stop transmittance."""
        if reuse_densities:
            sigmas, features = visible.sigmas, visible.features
        elif visible.reused is not None:
            sigmas, features = field.density_reusing(visible.positions, visible.reused)
        else:
            sigmas, features = field.density(visible.positions)
        rgbs = self.colors(field, sigmas, features, visible, every_color)
        rgb, depth, opacity, weights = ops_for(rgbs.device).composite(sigmas, rgbs, visible.samples, visible.n_rays,
                                                                       self.early_stop_eps)
        rgb = rgb + background * (1.0 - opacity[:, None])
        return Shading(sigmas, features, rgbs, weights, rgb, depth, opacity)

    def colors(self, field, sigmas: torch.Tensor, features: torch.Tensor, visible: VisibleSamples,
               every_color: bool = False) -> torch.Tensor:
        """`field.color` at the visible samples (S, 3); where the field sets `color_weight_threshold` (see Field)
        and not every_color, only at the samples whose compositing weight (from `sigmas` (S,), no gradient) exceeds
        it, black elsewhere."""
        threshold = getattr(field, "color_weight_threshold", 0.0)
        if threshold <= 0 or every_color:
            return field.color(features, visible.directions)
        ops = ops_for(sigmas.device)
        with torch.no_grad():
            weights = ops.composite(sigmas.detach(), sigmas.new_zeros(len(sigmas), 3), visible.samples,
                                    visible.n_rays, self.early_stop_eps)[3]
        shaded = (weights > threshold).nonzero().squeeze(1)
        colours = field.color(features.index_select(0, shaded), visible.directions.index_select(0, shaded))
        return colours.new_zeros(len(sigmas), 3).index_copy(0, shaded, colours)

    def render(self, field, origins: torch.Tensor, directions: torch.Tensor, background: torch.Tensor,
               training: bool = False, crop: torch.Tensor | None = None) -> RenderOutput:
        """Render rays (R, 3) over `background` (R, 3) or (3,); crop: an optional box (6,) min xyz then max xyz
        outside which the field counts as empty (zero density).

        Samples behind the point where transmittance drops below the early-stop transmittance are skipped
        (`visible_samples`). Training: jittered steps, then density and colour run with gradients on the samples
        that matter. Evaluation: culled with the render_* settings, those densities are reused and colour runs
        only where it is seen, round by round (`render_in_rounds`).
        """
        if not training:
            return self.render_in_rounds(field, origins, directions, background, crop)
        visible = self.visible_samples(field, origins, directions, jitter=True, keep_densities=False, crop=crop)
        shading = self.shade(field, visible, background)
        return RenderOutput(rgb=shading.rgb, depth=shading.depth, opacity=shading.opacity, n_samples=len(visible),
                            samples=visible.samples, weights=shading.weights)

    @torch.no_grad()
    def render_in_rounds(self, field, origins: torch.Tensor, directions: torch.Tensor, background: torch.Tensor,
                         crop: torch.Tensor | None = None) -> RenderOutput:
        """An evaluation render (see `render`), composited round by round of `rounds_until_opaque`: each round's
        visible samples add in behind the transmittance left by the rounds before (the same pixels as compositing
        all visible samples at once, without gathering them first).

        Colour runs only at the samples whose weight (transmittance x opacity) reaches render_weight_threshold, and
        at each ray's heaviest sample of the round; a ray's colour is the weighted mean of its shaded samples times
        its opacity (beer's held-out views: 3e-3 shades 44 % fewer samples for +0.003 dB). n_samples counts the
        shaded samples. Rounds of 16 samples per ray: beer's held-out rays march 102 samples instead of 129 with
        rounds that double (whose last round mostly lies behind the ray's end), and a view renders 1.2-1.3x faster."""
        ops, n_rays = ops_for(origins.device), origins.shape[0]
        shaded_rgb, shaded_weight = origins.new_zeros(n_rays, 3), origins.new_zeros(n_rays)
        depth, opacity, left = origins.new_zeros(n_rays), origins.new_zeros(n_rays), origins.new_ones(n_rays)
        n_samples = 0
        for samples, sigmas, features in self.rounds_until_opaque(field, origins, directions, jitter=False,
                                                                 training=False, crop=crop, round_sizes=(16,),
                                                                 growth=1):
            rays = samples.ray_indices
            # the round's own depth, opacity and weights (compositing without colour: it is not known yet)
            _, part_depth, part_opacity, part_weights = ops.composite(sigmas, sigmas.new_zeros(len(sigmas), 3),
                                                                      samples, n_rays)
            weights = left.index_select(0, rays) * part_weights
            heaviest = torch.zeros_like(left).scatter_reduce_(0, rays, weights, "amax")
            shade = ((weights >= self.render_weight_threshold) | (weights >= heaviest.index_select(0, rays)))
            shade = shade.nonzero().squeeze(1)
            shade_rays, shade_weights = rays.index_select(0, shade), weights.index_select(0, shade)
            rgbs = field.color(features.index_select(0, shade), directions.index_select(0, shade_rays))
            shaded_rgb.index_add_(0, shade_rays, shade_weights[:, None] * rgbs)
            shaded_weight.index_add_(0, shade_rays, shade_weights)
            depth.addcmul_(left, part_depth)
            opacity.addcmul_(left, part_opacity)
            left.mul_(1.0 - part_opacity)
            n_samples += len(shade)
        rgb = shaded_rgb * (opacity / shaded_weight.clamp(min=1e-12))[:, None]
        return RenderOutput(rgb=rgb + background * (1.0 - opacity[:, None]), depth=depth, opacity=opacity,
                            n_samples=n_samples)

    @torch.no_grad()
    def render_chunked(self, field, origins: torch.Tensor, directions: torch.Tensor,
                       background: torch.Tensor, chunk: int = 1 << 14, crop: torch.Tensor | None = None,
                       ) -> RenderOutput:
        """Evaluation render of many rays in chunks; background (3,); crop: see `render`."""
        parts = [self.render(field, o, d, background, crop=crop)
                 for o, d in zip(origins.split(chunk), directions.split(chunk))]
        return RenderOutput(
            rgb=torch.cat([p.rgb for p in parts]),
            depth=torch.cat([p.depth for p in parts]),
            opacity=torch.cat([p.opacity for p in parts]),
            n_samples=sum(p.n_samples for p in parts),
        )
