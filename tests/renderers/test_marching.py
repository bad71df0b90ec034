"""Marching in rounds (renderers/marching.py, VolumeRenderer.march_until_opaque): a render keeps exactly the samples
that one whole march keeps under the early-stop rule, and the samples behind each ray's termination point are
never marched. For the native kernels and the PyTorch twin, constant and cone steps, with and without jitter."""

import math

import pytest
import torch

from nfields.renderers import VolumeRenderer, render_ops, torch_ops
from nfields.renderers.marching import RayMarch, in_ray_order
from nfields.renderers.occupancy import neighbourhood_counts
from nfields.renderers.volume import TRAINING_ROUNDS

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
    """Rounds that double (16, 32, 64 ...), a training render's (16, 10, 20, 40 ...) and rounds of 16 each keep the
    same samples; the equal rounds evaluate the density at fewer samples behind the rays' termination points than
    doubling ones (what an evaluation render uses)."""
    renderer = renderer_for(3)
    origins, directions = rays(seed=2, spread=1.4)  # rays through the ball and rays past it, through fog
    evaluated, kept = {}, {}
    for schedule in [((16,), 1), ((16,), 2), (TRAINING_ROUNDS, 2)]:
        field = CountingField(FogAndBall())
        rounds = list(renderer.rounds_until_opaque(field, origins, directions, jitter=False, training=False,
                                                   round_sizes=schedule[0], growth=schedule[1]))
        evaluated[schedule], kept[schedule] = field.evaluated, in_ray_order(rounds)[0]
    equal, doubling, training = kept.values()
    for other in (doubling, training):
        assert torch.equal(equal.ray_indices, other.ray_indices) and torch.equal(equal.t_starts, other.t_starts)
    assert evaluated[(16,), 1] < 0.9 * evaluated[(16,), 2]


class SmallBallAndSpeck:
    """An opaque ball of radius 0.3 off-centre and, far from it, a lone opaque speck filling one grid cell of 32^3
    (at cell (3, 28, 3)); empty elsewhere."""

    def density(self, x):
        ball = (x - torch.tensor([0.3, -0.2, 0.1])).norm(dim=-1) < 0.3
        speck = (x - torch.tensor([-0.78125, 0.78125, -0.78125])).abs().amax(-1) < 0.0312
        return torch.where(ball | speck, 400.0, 0.0), x


def test_neighbourhood_counts_are_those_of_a_convolution():
    binary = torch.rand(16, 8, 12, generator=torch.Generator().manual_seed(0)) < 0.2
    ones = torch.ones(1, 1, 3, 3, 3)
    expected = torch.nn.functional.conv3d(binary[None, None].float(), ones, padding=1)[0, 0]
    assert torch.equal(neighbourhood_counts(binary).float(), expected)


@pytest.mark.parametrize("jitter", [False, True])
def test_rays_march_only_inside_the_occupied_box(ops, jitter):
    """Rays start marching where they enter the occupied cells' box (lone floaters left out) and stop where they
    leave it: their samples are those of the march through the whole scene box less the lone speck's, and rays
    that miss that box march nothing."""
    renderer = VolumeRenderer(AABB, grid_resolution=32)
    renderer.occupancy.set_interval(1)
    for step in range(2):
        renderer.update_occupancy(SmallBallAndSpeck(), step)
    grid = renderer.occupancy
    assert bool(grid.binary[3, 28, 3]) and int(neighbourhood_counts(grid.binary)[3, 28, 3]) == 1
    box = grid.marching_box
    assert box[0] > -0.2 and box[4] < 0.3  # the speck lies outside it
    origins, directions = rays(600, seed=3, spread=1.9)
    directions[:40] = torch.nn.functional.normalize(torch.tensor([-0.78, 0.78, -0.78]) - origins[:40], dim=-1)
    torch.manual_seed(7)
    bounded = renderer.march(origins, directions, jitter)
    torch.manual_seed(7)
    march_ops = render_ops.ops_for("cpu") if ops == "kernels" else render_ops.TORCH_OPS
    t_min, t_max = march_ops.ray_aabb_intersect(origins, directions, AABB)
    offsets = torch.rand_like(t_min) if jitter else torch.zeros_like(t_min)
    whole = march_ops.march_rays(origins, directions, t_min, t_max, grid.binary, AABB, renderer.step_size, offsets,
                                 grid.coarse_binary, grid.mips)
    positions, _ = whole.midpoints(origins, directions)
    in_box = ((positions >= box[:3]) & (positions <= box[3:])).all(-1)
    expected = whole.select(in_box)
    assert len(expected) > 1000 and len(expected) < len(whole)  # the speck had samples
    assert torch.equal(bounded.ray_indices, expected.ray_indices)
    assert torch.equal(bounded.t_starts, expected.t_starts) and torch.equal(bounded.t_ends, expected.t_ends)
    near, far = torch_ops.ray_aabb_intersect(origins, directions, box)
    first, end = torch_ops.steps_in_box(t_min, t_max, offsets, renderer.step_size, near, far)
    missed = far <= near
    assert 0.2 < float(missed.float().mean()) < 0.9 and bool((end[missed] == t_min[missed]).all())
    assert float(first[~missed].float().mean()) > 5  # rays that hit it skip the empty steps before it
