"""The parts that fit real photos: mip-NeRF 360's distortion loss, per-image appearance and camera offsets."""

import torch

from nfields.renderers import PackedSamples
from nfields.renderers.appearance import PerImageAppearance, apply_transform, fit_transform
from nfields.renderers.camera_offsets import CameraOffsets, axis_angle_to_matrix
from nfields.renderers.losses import distortion_loss, normalized_distance


def random_packed(n_rays: int, generator: torch.Generator) -> tuple[PackedSamples, torch.Tensor]:
    counts = torch.randint(0, 12, (n_rays,), generator=generator)
    rays = torch.repeat_interleave(torch.arange(n_rays), counts)
    starts, ends = [], []
    for c in counts.tolist():
        edges = torch.sort(torch.rand(c + 1, generator=generator) * 5).values
        starts.append(edges[:-1])
        ends.append(edges[1:])
    samples = PackedSamples(rays, torch.cat(starts), torch.cat(ends))
    return samples, torch.rand(len(rays), generator=generator) * 0.3


def brute_force_distortion(weights, samples, n_rays):
    s0, s1 = normalized_distance(samples.t_starts), normalized_distance(samples.t_ends)
    mid = (s0 + s1) / 2
    total = weights.new_zeros(())
    for r in range(n_rays):
        m = samples.ray_indices == r
        w, c = weights[m], mid[m]
        total = total + (w[:, None] * w[None, :] * (c[:, None] - c[None, :]).abs()).sum()
        total = total + (w.square() * (s1[m] - s0[m])).sum() / 3
    return total / n_rays


def test_distortion_loss_matches_the_double_sum_in_values_and_gradients():
    g = torch.Generator().manual_seed(0)
    samples, weights = random_packed(30, g)
    fast_w, slow_w = weights.clone().requires_grad_(), weights.clone().requires_grad_()
    fast, slow = distortion_loss(fast_w, samples, 30), brute_force_distortion(slow_w, samples, 30)
    fast.backward()
    slow.backward()
    assert torch.allclose(fast, slow, rtol=1e-5, atol=1e-7)
    assert torch.allclose(fast_w.grad, slow_w.grad, rtol=1e-4, atol=1e-6)


def test_distortion_loss_prefers_one_surface_to_spread_fog():
    t = torch.linspace(0.1, 3.0, 41)
    samples = PackedSamples(torch.zeros(40, dtype=torch.long), t[:-1], t[1:])
    surface = torch.zeros(40)
    surface[20] = 0.9
    fog = torch.full((40,), 0.9 / 40)
    assert distortion_loss(surface, samples, 1) < 0.2 * distortion_loss(fog, samples, 1)


def test_normalized_distance_is_linear_then_disparity_and_bounded():
    t = torch.tensor([0.0, 0.5, 1.0, 2.0, 1e9])
    assert torch.allclose(normalized_distance(t), torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))


def test_appearance_starts_as_the_identity_and_fits_a_known_transform():
    appearance = PerImageAppearance(4)
    rgb = torch.rand(100, 3)
    assert torch.equal(appearance(rgb, torch.randint(0, 4, (100,))), rgb)
    truth = torch.tensor([[1.2, 0.1, 0.0, 0.05], [0.0, 0.9, 0.0, -0.02], [0.05, 0.0, 0.8, 0.1]])
    fitted = fit_transform(rgb, apply_transform(truth, rgb))
    assert torch.allclose(fitted, truth, atol=1e-5)


def test_appearance_stays_centred_on_the_identity_while_it_learns():
    appearance = PerImageAppearance(3)
    optimizer = torch.optim.Adam(appearance.parameters(), lr=0.05)
    rgb, images = torch.rand(30, 3), torch.tensor([0, 2] * 15)
    for _ in range(20):  # images 0 and 2 photographed darker: their transforms learn it
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(appearance(rgb, images), 0.6 * rgb).backward()
        optimizer.step()
    transforms = appearance.centred().detach()
    assert torch.allclose(transforms.mean(0), torch.eye(3, 4), atol=1e-6)
    assert torch.allclose(appearance.mean_transform(), torch.eye(3, 4), atol=1e-6)
    gain = transforms[:, :, :3].sum(-1).mean(-1)
    assert gain[0] < 0.95 and gain[2] < 0.95 and gain[1] > 1.05  # image 1 carries the mean's balance


def test_camera_offsets_rotate_and_move_rays_and_start_at_zero():
    v = torch.randn(20, 3, dtype=torch.float64)
    rotations = axis_angle_to_matrix(v)
    skew = torch.zeros(20, 3, 3, dtype=torch.float64)
    skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    assert torch.allclose(rotations, torch.linalg.matrix_exp(skew - skew.transpose(1, 2)), atol=1e-10)
    assert torch.allclose(axis_angle_to_matrix(torch.zeros(1, 3)), torch.eye(3)[None])

    offsets = CameraOffsets(2)
    origins, directions, cams = torch.randn(6, 3), torch.randn(6, 3), torch.tensor([0, 1] * 3)
    o, d = offsets(origins, directions, cams)
    assert torch.equal(o, origins) and torch.allclose(d, directions)
    with torch.no_grad():
        offsets.offsets[1] = torch.tensor([0.0, 0.0, torch.pi / 2, 1.0, 2.0, 3.0])
    o, d = offsets(origins, directions, cams)
    assert torch.allclose(o[1], origins[1] + torch.tensor([1.0, 2.0, 3.0]))
    assert torch.allclose(d[1], torch.stack([-directions[1, 1], directions[1, 0], directions[1, 2]]), atol=1e-6)
    assert torch.equal(o[0], origins[0])
    (d.sum() + o.sum()).backward()
    assert offsets.offsets.grad[1].abs().sum() > 0
