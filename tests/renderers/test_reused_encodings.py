"""A training render reuses what the gradient-free marching pass computed (Field.marching_density and
density_reusing: the hash grid's encodings of the kept samples) and gives the same pixels and gradients as one
that evaluates the field again; with camera refinement (positions that need gradients) it evaluates again."""

import pytest
import torch

from nfields.fields.hashgrid import HashGridConfig, HashGridField
from nfields.renderers import VolumeRenderer

AABB = torch.tensor([-1.0, -1, -1, 1, 1, 1])


def trained_enough_field() -> HashGridField:
    """A hash grid with a dense blob in the middle: rays stop early, so marching keeps a subset of samples."""
    torch.manual_seed(0)
    field = HashGridField(AABB, HashGridConfig(n_levels=4, log2_table_size=12, max_resolution=64))
    with torch.no_grad():
        field.table.normal_(0, 0.5)
    return field


def rays(n: int = 400):
    g = torch.Generator().manual_seed(1)
    origins = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1) * 2.5
    directions = torch.nn.functional.normalize((torch.rand(n, 3, generator=g) - 0.5) - origins, dim=-1)
    return origins, directions


def render_and_gradients(field, renderer, origins, directions):
    torch.manual_seed(7)  # the same jitter
    out = renderer.render(field, origins, directions, torch.ones(3), training=True)
    params = [p for p in field.parameters()]
    return out, torch.autograd.grad(out.rgb.square().sum(), params)


@pytest.mark.parametrize("kernels", ["native", "torch"])
def test_training_render_reusing_encodings_matches_evaluating_again(kernels, monkeypatch):
    if kernels == "torch":
        monkeypatch.setenv("FIELDS_KERNELS", "torch")
    field = trained_enough_field()
    renderer = VolumeRenderer(AABB, grid_resolution=16)
    renderer.occupancy.set_interval(1)
    renderer.update_occupancy(field, 0)
    origins, directions = rays()
    calls = []
    density_reusing = field.density_reusing
    monkeypatch.setattr(field, "density_reusing", lambda *a: calls.append(1) or density_reusing(*a))
    reused, grads_reused = render_and_gradients(field, renderer, origins, directions)
    assert calls, "the training render did not reuse the marching pass's encodings"
    monkeypatch.setattr(field, "marching_density", lambda x: (field.density(x)[0], None))
    again, grads_again = render_and_gradients(field, renderer, origins, directions)
    assert len(calls) == 1 and reused.n_samples == again.n_samples > 0
    torch.testing.assert_close(reused.rgb, again.rgb, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads_reused, grads_again):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert grads_reused[0].abs().sum() > 0  # the table's gradient arrives


def test_positions_that_need_gradients_are_evaluated_again():
    field = trained_enough_field()
    positions = torch.rand(50, 3, requires_grad=True)
    with torch.no_grad():
        _, encoding = field.marching_density(positions)
    sigma, _ = field.density_reusing(positions, encoding)
    (grad,) = torch.autograd.grad(sigma.sum(), positions)
    assert grad.abs().sum() > 0
