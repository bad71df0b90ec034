import math

import torch

from nfields.renderers import torch_ops
from nfields.renderers.render_ops import TORCH_OPS
from nfields.renderers.torch_ops import PackedSamples


def _uniform_samples(n_rays, n_per_ray, length):
    dt = length / n_per_ray
    t0 = torch.arange(n_per_ray).float() * dt
    return PackedSamples(
        torch.arange(n_rays).repeat_interleave(n_per_ray), t0.repeat(n_rays), (t0 + dt).repeat(n_rays)
    )


def test_composite_matches_closed_form_for_constant_density():
    sigma, length, colour = 0.7, 2.0, torch.tensor([0.2, 0.5, 0.9])
    samples = _uniform_samples(3, 400, length)
    sigmas = torch.full((len(samples),), sigma)
    rgb, depth, opacity, weights = torch_ops.composite(sigmas, colour.expand(len(samples), 3), samples, 3)
    expected_opacity = 1 - math.exp(-sigma * length)
    assert torch.allclose(opacity, torch.full((3,), expected_opacity), atol=1e-5)
    assert torch.allclose(rgb, colour * expected_opacity, atol=1e-5)
    # E[t] = integral t sigma exp(-sigma t) dt over [0, L] = (1 - e^{-sL}(1 + sL)) / s
    expected_depth = (1 - math.exp(-sigma * length) * (1 + sigma * length)) / sigma
    assert torch.allclose(depth, torch.full((3,), expected_depth), atol=2e-3)
    assert torch.allclose(weights.view(3, -1).sum(-1), opacity)


def test_transmittance_restarts_per_ray_and_gradients_flow():
    t_starts = torch.tensor([0.0, 1, 2, 0, 1])
    samples = PackedSamples(torch.tensor([0, 0, 0, 1, 1]), t_starts, t_starts + 1)
    sigmas = torch.tensor([1.0, 2.0, 3.0, 0.5, 4.0], requires_grad=True)
    trans, alpha = torch_ops.transmittance(sigmas, samples, 2)
    expected = torch.exp(-torch.tensor([0.0, 1.0, 3.0, 0.0, 0.5]))
    assert torch.allclose(trans, expected)
    assert torch.allclose(alpha, 1 - torch.exp(-sigmas.detach()))
    colours = torch.rand(5, 3)
    rgb, *_ = torch_ops.composite(sigmas, colours, samples, 2)
    rgb.sum().backward()
    assert torch.isfinite(sigmas.grad).all() and (sigmas.grad != 0).all()


def test_ray_aabb_intersect_hits_and_misses():
    aabb = torch.tensor([-1.0, -1, -1, 1, 1, 1])
    origins = torch.tensor([[-3.0, 0, 0], [0.0, 0, 0], [-3.0, 5, 0]])
    directions = torch.tensor([[1.0, 0, 0], [0.0, 0, 1], [1.0, 0, 0]])
    t_near, t_far = torch_ops.ray_aabb_intersect(origins, directions, aabb)
    assert torch.allclose(t_near, torch.tensor([2.0, 0.0, 0.0]))
    assert torch.allclose(t_far, torch.tensor([4.0, 1.0, 0.0]))


def _random_rays(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    origins = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1) * 3
    targets = torch.rand(n, 3, generator=g) - 0.5
    return origins, torch.nn.functional.normalize(targets - origins, dim=-1)


def test_march_keeps_only_occupied_cells_and_coarse_skipping_changes_nothing():
    aabb = torch.tensor([-1.0, -1, -1, 1, 1, 1])
    binary = torch.zeros(32, 32, 32, dtype=torch.bool)
    binary[10:18, 12:24, 8:20] = True
    binary[2, 30, 5] = True  # a lone floater
    origins, directions = _random_rays(300)
    t_min, t_max = torch_ops.ray_aabb_intersect(origins, directions, aabb)
    offsets = torch.rand(300)
    full = TORCH_OPS.march_rays(origins, directions, t_min, t_max, binary, aabb, 0.01, offsets)
    coarse = torch_ops.coarse_grid(binary, 2)
    assert not coarse.all()
    skipped = TORCH_OPS.march_rays(origins, directions, t_min, t_max, binary, aabb, 0.01, offsets, coarse)
    assert len(full) > 100
    assert torch.equal(full.ray_indices, skipped.ray_indices)
    assert torch.allclose(full.t_starts, skipped.t_starts)
    positions, _ = full.midpoints(origins, directions)
    assert torch_ops.grid_lookup(binary, aabb, positions).all()
    assert (full.t_ends <= t_max[full.ray_indices] + 1e-5).all()
    # Steps sit on each ray's own grid t_min + (k + u) dt.
    k = (full.t_starts - t_min[full.ray_indices]) / 0.01 - offsets[full.ray_indices]
    assert torch.allclose(k, k.round(), atol=1e-3)


def test_march_edge_cases_empty_grid_and_missing_rays():
    aabb = torch.tensor([-1.0, -1, -1, 1, 1, 1])
    origins, directions = _random_rays(50)
    t_min, t_max = torch_ops.ray_aabb_intersect(origins, directions, aabb)
    empty = TORCH_OPS.march_rays(origins, directions, t_min, t_max, torch.zeros(8, 8, 8, dtype=torch.bool),
                                 aabb, 0.01, torch.zeros(50))
    assert len(empty) == 0
    missing = TORCH_OPS.march_rays(origins, -directions, *torch_ops.ray_aabb_intersect(origins, -directions, aabb),
                                   torch.ones(8, 8, 8, dtype=torch.bool), aabb, 0.01, torch.zeros(50))
    assert len(missing) == 0
    rgb, depth, opacity, _ = torch_ops.composite(torch.zeros(0), torch.zeros(0, 3), empty, 50)
    assert rgb.shape == (50, 3) and (opacity == 0).all()


def test_coarse_grid_needs_a_divisible_resolution():
    import pytest

    with pytest.raises(ValueError, match="multiple of the coarse factor"):
        torch_ops.coarse_grid(torch.zeros(15, 16, 16, dtype=torch.bool), 2)
