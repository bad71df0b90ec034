"""Marching in rounds (renderers/marching.py, VolumeRenderer.march_until_opaque): a render keeps exactly the samples
that one whole march keeps under the early-stop rule, and the samples behind each ray's termination point are
never marched. For the native kernels and the PyTorch twin, constant and cone steps, with and without jitter."""

import math

import pytest
import torch

from nfields.renderers import VolumeRenderer, render_ops, torch_ops
from nfields.renderers.marching import RayMarch, in_ray_order

AABB = torch.tensor([-1.0, -1, -1, 1, 1, 1])


class FogAndBall:
    """Fog (density 3) and an opaque ball of radius 0.5; features: the position, colour: its absolute value."""

    def density(self, x):
        return torch.where(x.norm(dim=-1) < 0.5, 400.0, 3.0), x

    def color(self, features, directions):
        return features.abs()


def renderer_for(cascades: int) -> VolumeRenderer:
    extra = dict(step_size=2 * math.sqrt(3) / 256, cone_angle=1 / 64) if cascades > 1 else {}
    renderer = VolumeRenderer(AABB, grid_resolution=32, cascades=cascades, **extra)
    renderer.occupancy.set_interval(1)
    for step in range(2):
        renderer.update_occupancy(FogAndBall(), step)
    return renderer


def rays(n: int = 300, seed: int = 0, spread: float = 0.8):
    """Rays from inside the box towards points within `spread` / 2 of the centre along each axis."""
    g = torch.Generator().manual_seed(seed)
    origins = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1) * 0.95
    targets = (torch.rand(n, 3, generator=g) - 0.5) * spread
    return origins, torch.nn.functional.normalize(targets - origins, dim=-1)


@pytest.fixture(params=["kernels", "twin"])
def ops(request, monkeypatch):
    if request.param == "twin":
        monkeypatch.setattr("nfields.renderers.volume.ops_for", lambda device: render_ops.TORCH_OPS)
    return request.param


@pytest.mark.parametrize("cascades", [1, 3])
@pytest.mark.parametrize("jitter", [False, True])
def test_rounds_keep_what_one_whole_march_keeps_and_march_less(ops, cascades, jitter):
    renderer, field = renderer_for(cascades), FogAndBall()
    origins, directions = rays()
    marched = []
    next_round = RayMarch.next

    def counted(self, rays, max_samples):
        samples, ended = next_round(self, rays, max_samples)
        marched.append(len(samples))
        return samples, ended

    torch.manual_seed(5)  # the same jitter for both marches
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RayMarch, "next", counted)
        kept, sigmas, features = renderer.march_until_opaque(field, origins, directions, jitter, training=False)
    torch.manual_seed(5)
    whole = renderer.march(origins, directions, jitter, training=False)
    sigma_all, _ = field.density(whole.midpoints(origins, directions)[0])
    trans, _ = torch_ops.transmittance(sigma_all, whole, len(origins))
    expected = whole.select(trans >= renderer.render_early_stop_eps)
    assert len(marched) >= 3 and len(kept) > 1000
    assert torch.equal(kept.ray_indices, expected.ray_indices)
    assert torch.equal(kept.t_starts, expected.t_starts) and torch.equal(kept.t_ends, expected.t_ends)
    assert torch.equal(sigmas, field.density(kept.midpoints(origins, directions)[0])[0])
    assert torch.equal(features, kept.midpoints(origins, directions)[0])
    assert sum(marched) < 0.5 * len(whole)  # most of what lies behind the ball is never marched


def test_a_render_composites_the_kept_samples_like_the_whole_ray(ops):
    """Rendering in rounds gives the pixels of compositing every sample of the whole march (early stop as set)."""
    renderer, field = renderer_for(1), FogAndBall()
    origins, directions = rays(seed=1, spread=1.4)
    out = renderer.render(field, origins, directions, torch.ones(3))
    whole = renderer.march(origins, directions, jitter=False, training=False)
    sigmas, features = field.density(whole.midpoints(origins, directions)[0])
    rgb, _, opacity, _ = torch_ops.composite(sigmas, field.color(features, None), whole, len(origins),
                                             renderer.render_early_stop_eps)
    assert torch.allclose(out.rgb, rgb + (1 - opacity[:, None]), atol=1e-5)
    assert (opacity > 0.9998).sum() > 20 and (opacity < 0.999).sum() > 20  # rays stopped in the ball, rays past it


class CountingField:
    """A field that counts the positions its density is evaluated at."""

    def __init__(self, field):
        self.field, self.evaluated = field, 0

    def density(self, x):
        self.evaluated += len(x)
        return self.field.density(x)


def test_rounds_of_one_size_keep_the_same_samples_and_evaluate_fewer_behind_the_ends(ops):
    """Rounds that double (16, 32, 64 ...) and rounds of 16 each keep the same samples; the equal rounds evaluate
    the density at fewer samples behind the rays' termination points (what an evaluation render uses)."""
    renderer = renderer_for(3)
    origins, directions = rays(seed=2, spread=1.4)  # rays through the ball and rays past it, through fog
    evaluated, kept = {}, {}
    for growth in (1, 2):
        field = CountingField(FogAndBall())
        rounds = list(renderer.rounds_until_opaque(field, origins, directions, jitter=False, training=False,
                                                   growth=growth))
        evaluated[growth], kept[growth] = field.evaluated, in_ray_order(rounds)[0]
    assert torch.equal(kept[1].ray_indices, kept[2].ray_indices) and torch.equal(kept[1].t_starts, kept[2].t_starts)
    assert evaluated[1] < 0.9 * evaluated[2]
