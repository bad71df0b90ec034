"""Native kernels against their pure-PyTorch twins: values and gradients on random inputs and edge cases.

Each test runs for the CPU build and, where a GPU exists, the CUDA build (skipped elsewhere, with the reason).
Tolerances: marching is exact (same samples); compositing and the hash encoding agree to 1e-5 relative
(float sums in another order, double accumulators on the CPU).
"""

import math

import pytest
import torch

from nfields.cuda import build, functions
from nfields.cuda.dispatch import kernels_for
from nfields.fields.encodings import spherical_harmonics, view_inputs
from nfields.fields.grids import sample_planes, sample_planes_torch, vm_products, vm_products_torch
from nfields.fields.hash_encoding import HashGridGeometry, hash_encode_reference, hash_encode_torch
from nfields.renderers import torch_ops
from nfields.renderers.render_ops import TORCH_OPS, kernel_ops
from nfields.renderers.torch_ops import PackedSamples

AABB = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
STEP = math.sqrt(3) * 2 / 1024


def _native(device: str):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device here: the CUDA parity tests run on a GPU machine")
    kernels = kernels_for(device)
    if kernels is None:
        pytest.fail(f"{device} kernels did not build: {build.cpu_kernels().reason if device == 'cpu' else ''}")
    return kernels


DEVICES = ["cpu", "cuda"]


def _rays(n: int, seed: int, device: str):
    """Rays from outside the box (most hit it, some miss), some starting inside it, a few axis-aligned."""
    g = torch.Generator().manual_seed(seed)
    origins = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1) * 2.5
    origins[: n // 4] = (torch.rand(n // 4, 3, generator=g) - 0.5) * 1.6  # inside the box
    targets = (torch.rand(n, 3, generator=g) - 0.5) * 3.0  # some outside the box: misses
    directions = torch.nn.functional.normalize(targets - origins, dim=-1)
    directions[-4:] = torch.eye(3)[torch.arange(4) % 3]  # axis-aligned: zero components
    t_min, t_max = torch_ops.ray_aabb_intersect(origins, directions, AABB)
    offsets = torch.rand(n, generator=g)
    return [t.to(device) for t in (origins, directions, t_min, t_max, offsets)]


def _grid(kind: str, device: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "empty":
        grid = torch.zeros(32, 32, 32, dtype=torch.bool)
    elif kind == "full":
        grid = torch.ones(32, 32, 32, dtype=torch.bool)
    else:  # blobs: a smooth random field thresholded, so occupied runs and empty gaps alternate
        noise = torch.rand(1, 1, 8, 8, 8, generator=g)
        grid = torch.nn.functional.interpolate(noise, size=(32, 32, 32), mode="trilinear")[0, 0] > 0.6
    return grid.to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grid_kind", ["blobs", "empty", "full"])
def test_march_rays_emits_the_same_samples_as_the_twin(device, grid_kind):
    ops = kernel_ops(_native(device))
    origins, directions, t_min, t_max, offsets = _rays(512, seed=1, device=device)
    grid = _grid(grid_kind, device)
    expected = TORCH_OPS.march_rays(origins, directions, t_min, t_max, grid, AABB.to(device), STEP, offsets,
                                    torch_ops.coarse_grid(grid))
    got = ops.march_rays(origins, directions, t_min, t_max, grid, AABB.to(device), STEP, offsets)
    assert len(got) == len(expected)
    assert torch.equal(got.ray_indices, expected.ray_indices)
    assert torch.equal(got.t_starts, expected.t_starts)
    assert torch.equal(got.t_ends, expected.t_ends)
    if grid_kind == "empty":
        assert len(got) == 0
    missed = (t_max <= t_min).nonzero().squeeze(1)
    assert len(missed) > 0 and not torch.isin(got.ray_indices, missed).any()


def _cascades(levels: int, device: str, seed: int = 0):
    """Blob grids (levels, 32, 32, 32) and nerfacc's cascade boxes, each twice the last, about AABB."""
    grids = torch.stack([_grid("blobs", "cpu", seed + k) for k in range(levels)])
    aabbs = torch.stack([AABB * 2**k for k in range(levels)])
    return grids.to(device), aabbs.to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cone", [0.0, 1 / 256, 1 / 32])
def test_cascaded_marching_emits_the_same_samples_as_the_twin(device, cone):
    """Cameras inside the scene box and out to the third cascade; steps from constant to cone-grown to capped."""
    ops = kernel_ops(_native(device))
    grids, aabbs = _cascades(4, device)
    g = torch.Generator().manual_seed(3)
    origins = (torch.rand(300, 3, generator=g) - 0.5) * torch.tensor([1.6, 1.6, 6.0])
    directions = torch.nn.functional.normalize(torch.randn(300, 3, generator=g), dim=-1)
    directions[-3:] = torch.eye(3)
    t_min, t_max = torch_ops.ray_aabb_intersect(origins, directions, aabbs[-1].cpu())
    offsets = torch.rand(300, generator=g)
    args = [t.to(device) for t in (origins, directions, t_min, t_max)]
    dt_max = STEP * 2**3
    expected = TORCH_OPS.march_rays_cascaded(*args, grids, aabbs, STEP, dt_max, cone, offsets.to(device))
    got = ops.march_rays_cascaded(*args, grids, aabbs, STEP, dt_max, cone, offsets.to(device))
    assert len(got) > 1000
    assert torch.equal(got.ray_indices, expected.ray_indices)
    assert torch.equal(got.t_starts, expected.t_starts)
    assert torch.equal(got.t_ends, expected.t_ends)
    steps = got.t_ends - got.t_starts
    assert steps.min() >= STEP * (1 - 1e-3) and steps.max() <= dt_max * (1 + 1e-3)  # t_end - t rounds at large t
    if cone > 0:  # far samples take longer steps
        assert steps.max() > 2 * STEP


def test_cascaded_marching_reads_the_finest_cascade_holding_each_point():
    """A point in the scene box reads level 0 even where level 1 is occupied; a point only level 1 holds
    reads level 1."""
    grids = torch.zeros(2, 4, 4, 4, dtype=torch.bool)
    grids[1] = True  # level 1 fully occupied, level 0 empty
    aabbs = torch.stack([AABB, AABB * 2])
    points = torch.tensor([[0.0, 0.0, 0.0], [0.99, -0.5, 0.2], [1.5, 0.0, 0.0], [-0.2, 1.9, -1.9]])
    assert torch_ops.cascade_lookup(grids, aabbs, points).tolist() == [False, False, True, True]
    grids[0, 2, 2, 2] = True  # the cell holding (0.25, 0.25, 0.25) at level 0: [0, 0.5)^3
    assert torch_ops.cascade_lookup(grids, aabbs, torch.tensor([[0.25, 0.25, 0.25]])).tolist() == [True]


@pytest.mark.parametrize("device", DEVICES)
def test_march_rays_zero_rays_and_a_single_sample(device):
    ops = kernel_ops(_native(device))
    grid = _grid("full", device)
    empty = torch.zeros(0, 3, device=device)
    none = ops.march_rays(empty, empty, empty[:, 0], empty[:, 0], grid, AABB, STEP, empty[:, 0])
    assert len(none) == 0
    origin = torch.tensor([[0.0, 0.0, 0.0]], device=device)
    direction = torch.tensor([[1.0, 0.0, 0.0]], device=device)
    t_min, t_max = torch.zeros(1, device=device), torch.full((1,), 1.5 * STEP, device=device)
    one = ops.march_rays(origin, direction, t_min, t_max, grid, AABB, STEP, torch.zeros(1, device=device))
    assert len(one) == 1 and one.t_starts.item() == 0.0 and one.t_ends.item() == pytest.approx(STEP)


def _packed_batch(device: str, seed: int = 2):
    origins, directions, t_min, t_max, offsets = _rays(256, seed, device)
    samples = TORCH_OPS.march_rays(origins, directions, t_min, t_max, _grid("blobs", device), AABB.to(device), STEP,
                                   offsets)
    g = torch.Generator().manual_seed(seed)
    sigmas = (torch.rand(len(samples), generator=g) * 80).to(device)  # dense enough to terminate early
    rgbs = torch.rand(len(samples), 3, generator=g).to(device)
    return samples, sigmas, rgbs, len(origins)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("eps", [0.0, 1e-4])
def test_composite_values_and_gradients_match_the_twin(device, eps):
    ops = kernel_ops(_native(device))
    samples, sigmas, rgbs, n_rays = _packed_batch(device)
    results = []
    for impl in (TORCH_OPS, ops):
        s, c = sigmas.clone().requires_grad_(), rgbs.clone().requires_grad_()
        rgb, depth, opacity, weights = impl.composite(s, c, samples, n_rays, eps)
        g = torch.Generator().manual_seed(3)
        loss = (rgb * torch.randn(rgb.shape, generator=g).to(device)).sum() + 0.3 * depth.sum() - opacity.sum()
        loss.backward()
        results.append((rgb, depth, opacity, weights, s.grad, c.grad))
    for name, want, got in zip(("rgb", "depth", "opacity", "weights", "d sigma", "d rgb"), *results):
        assert _rel_err(got.detach(), want.detach()) < 1e-5, name
    if eps > 0:  # early termination actually dropped samples in this batch
        trans, _ = torch_ops.transmittance(sigmas, samples, n_rays)
        assert (trans < eps).any() and (results[1][3][trans < eps] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
def test_composite_of_no_samples_is_empty_space(device):
    kernels = _native(device)
    nothing = torch.zeros(0, device=device)
    offsets = torch.zeros(4, dtype=torch.long, device=device)
    rgb, depth, opacity, weights = functions.composite(
        kernels, nothing, torch.zeros(0, 3, device=device), offsets, nothing, nothing, 1e-4)
    assert rgb.shape == (3, 3) and (rgb == 0).all() and (opacity == 0).all() and weights.shape == (0,)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cascaded", [False, True])
def test_march_rounds_match_the_twin_and_add_up_to_one_march(device, cascaded):
    """Rounds of at most 1, 3, 9, ... samples per ray (jittered starts): each round's samples and resume points
    agree with the twin's, and the rounds together are the samples of one whole march."""
    ops = kernel_ops(_native(device))
    origins, directions, t_min, t_max, offsets = _rays(400, seed=4, device=device)
    if cascaded:
        grids, aabbs = _cascades(3, device)
        t_min, t_max = torch_ops.ray_aabb_intersect(origins.cpu(), directions.cpu(), aabbs[-1].cpu())
        t_min, t_max = t_min.to(device), t_max.to(device)
        grid_args = (grids, aabbs, STEP, STEP * 4, 1 / 64)
        whole = TORCH_OPS.march_rays_cascaded(origins, directions, t_min, t_max, *grid_args, offsets)
        resume = torch_ops.cone_starts(t_min, offsets, *grid_args[2:])
    else:
        grid = _grid("blobs", device)
        whole = TORCH_OPS.march_rays(origins, directions, t_min, t_max, grid, AABB.to(device), STEP, offsets)
        resume = torch.zeros(len(origins), dtype=torch.long, device=device)
    rays, size, found = torch.arange(len(origins), device=device), 1, []
    while len(rays):
        results = []
        for impl in (TORCH_OPS, ops):
            if cascaded:
                results.append(impl.march_round_cascaded(origins[rays], directions[rays], resume[rays], t_max[rays],
                                                         *grid_args, size))
            else:
                results.append(impl.march_round(origins[rays], directions[rays], t_min[rays], t_max[rays], grid,
                                                AABB.to(device), STEP, offsets[rays], resume[rays], size))
        (want, want_next), (got, got_next) = results
        for name in ("ray_indices", "t_starts", "t_ends"):
            assert torch.equal(getattr(got, name), getattr(want, name)), name
        assert torch.equal(got_next, want_next)
        assert torch.bincount(got.ray_indices, minlength=len(rays)).max() <= size
        found.append(PackedSamples(rays[got.ray_indices], got.t_starts, got.t_ends))
        resume[rays] = got_next
        rays = rays[torch.bincount(got.ray_indices, minlength=len(rays)) == size]  # the rest ran out
        size *= 3
    assert len(found) >= 3
    together = PackedSamples(*(torch.cat(parts) for parts in zip(*((s.ray_indices, s.t_starts, s.t_ends)
                                                                     for s in found))))
    order = torch.sort(together.ray_indices, stable=True).indices
    assert len(whole) > 1000 and torch.equal(together.ray_indices[order], whole.ray_indices)
    assert torch.equal(together.t_starts[order], whole.t_starts)
    assert torch.equal(together.t_ends[order], whole.t_ends)


@pytest.mark.parametrize("device", DEVICES)
def test_termination_rounds_match_the_twin(device):
    """Rounds of 16, 32, 64, ... samples per live ray: keep flags, carried depth and live rays agree."""
    ops = kernel_ops(_native(device))
    samples, sigmas, _, n_rays = _packed_batch(device)
    rank = torch.arange(len(samples), device=device) - torch_ops.ray_starts(samples.ray_indices, n_rays)
    state = {name: (torch.zeros(n_rays, dtype=torch.float64, device=device),
                    torch.ones(n_rays, dtype=torch.bool, device=device)) for name in ("twin", "native")}
    first, size, rounds = 0, 16, 0
    while True:
        assert torch.equal(state["twin"][1], state["native"][1])
        alive = state["twin"][1][samples.ray_indices]
        chosen = ((rank >= first) & (rank < first + size) & alive).nonzero().squeeze(1)
        if len(chosen) == 0:
            break
        sub = samples.select(chosen)
        keep_twin = TORCH_OPS.termination_round(sigmas[chosen], sub, *state["twin"], 1e-4)
        keep_native = ops.termination_round(sigmas[chosen], sub, *state["native"], 1e-4)
        assert torch.equal(keep_twin, keep_native)
        assert torch.allclose(state["twin"][0], state["native"][0], rtol=1e-6)
        first, size, rounds = first + size, size * 2, rounds + 1
    assert rounds >= 3 and not state["twin"][1].all()  # several rounds ran and some rays terminated


@pytest.mark.parametrize("device", DEVICES)
def test_sample_offsets_match_the_twin(device):
    ops = kernel_ops(_native(device))
    samples, _, _, n_rays = _packed_batch(device)
    for ray_indices in (samples.ray_indices, samples.ray_indices[:0], torch.tensor([2, 2, 5], device=device)):
        got, want = ops.sample_offsets(ray_indices, n_rays), TORCH_OPS.sample_offsets(ray_indices, n_rays)
        assert torch.equal(got, want)
    assert (torch.diff(want) >= 0).all() and want[-1] == 3  # rays 6.. after the last sample are empty


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", [(4, 2, 12, 4.0), (6, 3, 13, 128.0), (8, 4, 14, 512.0), (4, 8, 13, 256.0),
                                    (16, 2, 19, 2048.0)])
def test_hash_encoding_values_and_table_gradients_match_the_twins(device, layout):
    kernels = _native(device)
    n_levels, n_features, log2_size, max_res = layout
    geometry = HashGridGeometry.build(n_levels, log2_size, 16, max_res)
    g = torch.Generator().manual_seed(4)
    table = (torch.randn(geometry.total_size, n_features, generator=g) * 0.1).to(device)
    x = torch.rand(5000, 3, generator=g).to(device)
    x[:4] = torch.tensor([[0.0, 0, 0], [1, 1, 1], [0, 1, 0.5], [1, 0, 1]])  # box corners: border cells
    grad_out = torch.randn(5000, n_levels * n_features, generator=g).to(device)
    outputs = []
    for encode in (lambda t: functions.hash_encode(kernels, x, t, geometry.kernel_levels),
                   lambda t: hash_encode_torch(x, t, geometry), lambda t: hash_encode_reference(x, t, geometry)):
        t = table.clone().requires_grad_()
        out = encode(t)
        out.backward(grad_out)
        outputs.append((out.detach(), t.grad))
    native, *twins = outputs
    for twin in twins:
        assert _rel_err(native[0], twin[0]) < 1e-5
        assert _rel_err(native[1], twin[1]) < 1e-5
    assert geometry.n_dense > 0 or layout[2] < 14  # the layouts cover dense and hashed levels


@pytest.mark.parametrize("device", DEVICES)
def test_hash_encoding_of_zero_points(device):
    kernels = _native(device)
    geometry = HashGridGeometry.build(4, 12, 16, 64.0)
    table = torch.zeros(geometry.total_size, 2, device=device, requires_grad=True)
    out = functions.hash_encode(kernels, torch.zeros(0, 3, device=device), table, geometry.kernel_levels)
    out.sum().backward()
    assert out.shape == (0, 8) and (table.grad == 0).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(3, 16, 64, 64), (1, 5, 33, 17), (3, 4, 40, 1), (2, 3, 1, 1)])
@pytest.mark.parametrize("sum_planes", [False, True])
def test_plane_sampling_values_and_gradients_match_grid_sample(device, shape, sum_planes):
    """Planes of any size (1-wide TensoRF lines and single cells too), coordinates inside, on the edges and
    outside [-1, 1] (border padding)."""
    kernels = _native(device)
    g = torch.Generator().manual_seed(sum(shape))
    planes = torch.randn(*shape, generator=g).to(device).requires_grad_()
    coords = torch.rand(shape[0], 3000, 2, generator=g) * 2.4 - 1.2
    coords[:, :8] = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [0.0, 0.0], [1.0, 0.3],
                                  [0.999999, 0.5], [-1.5, 2.0]])
    coords = coords.to(device)
    native = functions.plane_sample(kernels, planes, coords, sum_planes)
    twin = sample_planes_torch(planes, coords)
    twin = twin.sum(0) if sum_planes else twin
    assert native.shape == twin.shape
    torch.testing.assert_close(native, twin, rtol=1e-5, atol=1e-5)
    upstream = torch.randn(twin.shape, generator=g).to(device)
    (grad_native,) = torch.autograd.grad(native, planes, upstream)
    (grad_twin,) = torch.autograd.grad(twin, planes, upstream)
    torch.testing.assert_close(grad_native, grad_twin, rtol=1e-5, atol=1e-4)


def test_plane_sampling_uses_the_twin_when_coordinates_need_gradients():
    """Position gradients (e.g. SDF normals) come from grid_sample; the kernel only gives plane gradients."""
    planes = torch.randn(3, 4, 16, 16)
    coords = (torch.rand(3, 50, 2) * 2 - 1).requires_grad_()
    samples = sample_planes(planes, coords, sum_planes=True)
    (grad,) = torch.autograd.grad(samples.sum(), coords)
    assert grad.abs().sum() > 0


def _vm_factors(n_chan: int, sizes: list[tuple[int, int, int]], channels_last: bool, seed: int):
    """Three planes (1, C, H, W) and three lines (1, C, L, 1), sizes[m] = (H, W, L), as leaf tensors."""
    g = torch.Generator().manual_seed(seed)
    factors = [torch.randn(1, n_chan, h, w, generator=g) for h, w, _ in sizes]
    factors += [torch.randn(1, n_chan, length, 1, generator=g) for _, _, length in sizes]
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return [f.contiguous(memory_format=layout).requires_grad_() for f in factors]


@pytest.mark.parametrize("n_chan, sizes", [(8, [(20, 17, 9), (13, 20, 17), (13, 9, 20)]),  # lego-like boxes
                                           (70, [(6, 5, 4), (7, 6, 5), (4, 3, 2)]),  # more channels than a chunk
                                           (3, [(1, 1, 1), (2, 1, 1), (1, 2, 2)])])  # one-cell factors
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("sum_products", [False, True])
def test_vm_products_values_and_gradients_match_grid_sample(n_chan, sizes, channels_last, sum_products):
    """TensoRF's products on the CPU kernel against F.grid_sample lookups multiplied out, in either layout, at
    points inside, on the faces of and outside the box (border padding)."""
    kernels = _native("cpu")
    factors = _vm_factors(n_chan, sizes, channels_last, seed=n_chan)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2000, 3, generator=g) * 2.4 - 1.2
    x[:6] = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [1.0, -1.0, 0.0], [0.999999, 0.5, -0.2],
                          [0.0, 0.0, 0.0], [-1.5, 2.0, 1.0]])
    native = functions.vm_products(kernels, factors[:3], factors[3:], x, sum_products)
    twin = vm_products_torch(factors[:3], factors[3:], x, sum_products)
    assert native.shape == twin.shape == ((2000,) if sum_products else (2000, 3 * n_chan))
    torch.testing.assert_close(native, twin, rtol=1e-5, atol=1e-5)
    upstream = torch.randn(twin.shape, generator=g)
    grads_native = torch.autograd.grad(native, factors, upstream)
    grads_twin = torch.autograd.grad(twin, factors, upstream)
    for factor, grad_native, grad_twin in zip(factors, grads_native, grads_twin):
        assert grad_native.stride() == factor.stride()  # gradients come back in the factors' layout
        torch.testing.assert_close(grad_native, grad_twin, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("degree", [1, 2, 3, 4])
def test_view_inputs_values_and_gradients_match_the_twin(degree):
    """The colour networks' input, [SH basis of directions, features], from the CPU kernel: the twin's floats
    (the same expressions), and the features' gradient; random directions of every orientation."""
    kernels = _native("cpu")
    g = torch.Generator().manual_seed(degree)
    directions = torch.nn.functional.normalize(torch.randn(3000, 3, generator=g), dim=-1)
    directions[:3] = torch.eye(3)  # axis-aligned
    features = torch.randn(3000, 15, generator=g, requires_grad=True)
    native = functions.view_inputs(kernels, directions, features, degree)
    twin = torch.cat([spherical_harmonics(directions, degree), features], dim=-1)
    assert native.shape == (3000, degree**2 + 15) and torch.allclose(native, twin, rtol=1e-6, atol=1e-7)
    weights = torch.randn(native.shape, generator=g)
    (grad_native,) = torch.autograd.grad((native * weights).sum(), features)
    (grad_twin,) = torch.autograd.grad((twin * weights).sum(), features)
    assert torch.equal(grad_native, grad_twin)


def test_view_inputs_take_the_twin_when_directions_need_gradients():
    """Camera refinement's directions carry gradients, which the kernel does not give: PyTorch's path runs."""
    directions = torch.nn.functional.normalize(torch.randn(50, 3), dim=-1).requires_grad_()
    features = torch.randn(50, 16)
    view_inputs(directions, features, 4).sum().backward()
    assert directions.grad is not None and directions.grad.abs().sum() > 0


def test_vm_products_take_the_twin_when_points_need_gradients():
    """Position gradients come from the per-factor lookups; the kernel only gives factor gradients."""
    factors = _vm_factors(4, [(8, 8, 8)] * 3, channels_last=True, seed=0)
    x = (torch.rand(50, 3) * 2 - 1).requires_grad_()
    (grad,) = torch.autograd.grad(vm_products(factors[:3], factors[3:], x, sum_products=True).sum(), x)
    assert grad.abs().sum() > 0


@pytest.mark.parametrize("device", DEVICES)
def test_occupancy_update_matches_the_twin_with_repeated_cells(device):
    ops = kernel_ops(_native(device))
    g = torch.Generator().manual_seed(5)
    occs = torch.rand(4096, generator=g) * 0.02
    occs[:100] = -1.0  # cells no camera sees
    indices = torch.randint(0, 4096, (3000,), generator=g)  # with repeats
    values = torch.rand(3000, generator=g) * 0.03
    want_occs, got_occs = occs.clone().to(device), occs.clone().to(device)
    want = TORCH_OPS.occupancy_update(want_occs, indices.to(device), values.to(device), 0.95, 0.01)
    got = ops.occupancy_update(got_occs, indices.to(device), values.to(device), 0.95, 0.01)
    assert torch.allclose(got_occs, want_occs) and torch.equal(got, want)
    # Every selected cell took its largest fresh value, decayed cells at least 0.95 of the old one.
    best = torch.zeros(4096).scatter_reduce(0, indices, values, "amax", include_self=False)
    selected = torch.zeros(4096, dtype=torch.bool)
    selected[indices] = True
    assert torch.allclose(want_occs.cpu()[selected], torch.maximum(occs[selected] * 0.95, best[selected]))


def test_occupancy_twin_matches_nerfacc_on_a_full_update():
    """With every cell selected once, nerfacc's own EMA update and our twin agree."""
    from nerfacc import OccGridEstimator

    estimator = OccGridEstimator(roi_aabb=AABB.tolist(), resolution=16, levels=1)
    estimator.occs.uniform_(0.0, 0.02)
    before = estimator.occs.clone()

    def thickness(x):  # depends only on the cell, not on the jitter inside it
        cell = ((x - AABB[:3]) / 2 * 16).floor()
        return (torch.sin(cell.sum(-1)) + 1) * 0.01

    estimator._update(step=0, occ_eval_fn=thickness, occ_thre=0.01, ema_decay=0.95, warmup_steps=256)
    indices = estimator._get_all_cells()[0]
    centres = AABB[:3] + (estimator.grid_coords[indices] + 0.5) / 16 * 2
    ours = before.clone()
    binary = torch_ops.occupancy_update(ours, indices, thickness(centres), 0.95, 0.01)
    assert torch.allclose(ours, estimator.occs)
    assert torch.equal(binary, estimator.binaries.view(-1))


def test_half_precision_table_on_cuda():
    """The CUDA build's half-precision option: a float16 table encodes to within float16 rounding."""
    kernels = _native("cuda")
    geometry = HashGridGeometry.build(8, 15, 16, 512.0)
    table = torch.randn(geometry.total_size, 2, device="cuda") * 0.1
    x = torch.rand(4096, 3, device="cuda")
    full = functions.hash_encode(kernels, x, table, geometry.kernel_levels)
    half_table = table.half().requires_grad_()
    half = functions.hash_encode(kernels, x, half_table, geometry.kernel_levels)
    assert half.dtype == torch.float32 and _rel_err(half, full) < 2e-3
    half.sum().backward()
    assert half_table.grad.dtype == torch.float16 and half_table.grad.abs().sum() > 0
