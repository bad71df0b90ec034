import pytest
import torch

from nfields.fields.hash_encoding import (
    PRIMES,
    HashGridGeometry,
    corner_indices_and_weights,
    hash_encode,
    hash_encode_reference,
    reuse_hash_encoding,
)


def hash_reference_int64(cell: torch.Tensor, table_size: int) -> torch.Tensor:
    """The published hash in exact 64-bit arithmetic: cell (N, 3) int64 -> (N,) row in the level."""
    h = torch.zeros(cell.shape[0], dtype=torch.int64)
    for axis, prime in enumerate(PRIMES):
        h = h ^ ((cell[:, axis] * prime) & 0xFFFFFFFF)
    return h % table_size


SMALL = dict(n_levels=4, log2_table_size=8, base_resolution=4, max_resolution=32)


def test_geometry_follows_tiny_cuda_nn():
    g = HashGridGeometry.build(16, 19, 16, 2048 * 1.5)
    assert g.resolutions[0] == 16  # ceil(16 - 1) + 1
    assert all(s <= 1 << 19 for s in g.sizes) and g.sizes[-1] == 1 << 19
    assert g.n_dense == sum(r**3 <= (1 << 19) for r in g.resolutions)


def test_hashed_indices_match_exact_64_bit_hash():
    g = HashGridGeometry.build(**SMALL)
    x = torch.rand(500, 3, dtype=torch.float64)
    index, _ = corner_indices_and_weights(x, g)
    for level in range(g.n_dense, len(g.sizes)):
        base = torch.floor(x * g.scales[level] + 0.5).long()
        for corner in range(8):
            offset = torch.tensor([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
            expected = hash_reference_int64(base + offset, g.sizes[level]) + g.offsets[level]
            assert torch.equal(index[level, :, corner].long(), expected)


def test_dense_levels_index_the_grid_without_hashing():
    g = HashGridGeometry.build(**SMALL)
    assert g.n_dense >= 1
    x = torch.rand(200, 3)
    index, _ = corner_indices_and_weights(x, g)
    res = g.resolutions[0]
    base = torch.floor(x * g.scales[0] + 0.5).long()
    expected = (base[:, 0] + base[:, 1] * res + base[:, 2] * res * res) % g.sizes[0]
    assert torch.equal(index[0, :, 0].long(), expected)


def test_weights_are_trilinear_partition_of_unity():
    g = HashGridGeometry.build(**SMALL)
    _, weights = corner_indices_and_weights(torch.rand(300, 3), g)
    assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:2]), atol=1e-6)
    assert (weights >= 0).all()


def test_encoding_is_continuous_across_cell_boundaries():
    g = HashGridGeometry.build(**SMALL)
    table = torch.randn(g.total_size, 2, dtype=torch.float64)
    # Walk a line finely: neighbouring outputs differ by O(step), with no jumps at cell faces.
    t = torch.linspace(0.05, 0.95, 4001, dtype=torch.float64)[:, None]
    x = torch.cat([t, 0.3 + 0.2 * t, 0.7 - 0.4 * t], dim=1)
    out = hash_encode(x, table, g)
    jumps = (out[1:] - out[:-1]).abs().max()
    assert jumps < 0.1, f"largest jump {jumps}"


def test_fused_and_reference_paths_agree_in_values_and_gradients():
    g = HashGridGeometry.build(8, 12, 8, 256)
    table = torch.randn(g.total_size, 4, requires_grad=True)
    x = torch.rand(1000, 3)
    weights = torch.randn(1000, 32)
    fused = hash_encode(x, table, g)
    (fused * weights).sum().backward()
    grad_fused = table.grad.clone()
    table.grad = None
    ref = hash_encode_reference(x, table, g)
    (ref * weights).sum().backward()
    assert torch.allclose(fused, ref, atol=1e-6)
    assert torch.allclose(grad_fused, table.grad, atol=1e-5)


def test_gradcheck_table_and_positions_in_float64():
    g = HashGridGeometry.build(**SMALL)
    table = torch.randn(g.total_size, 2, dtype=torch.float64, requires_grad=True)
    x = (torch.rand(20, 3, dtype=torch.float64) * 0.9 + 0.05)
    assert torch.autograd.gradcheck(lambda t: hash_encode(x, t, g), (table,))
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: hash_encode_reference(p, table.detach(), g), (x,))


def test_zero_length_batch():
    g = HashGridGeometry.build(**SMALL)
    table = torch.randn(g.total_size, 2, requires_grad=True)
    out = hash_encode(torch.zeros(0, 3), table, g)
    assert out.shape == (0, 8)
    out.sum().backward()
    assert table.grad.abs().sum() == 0


@pytest.mark.parametrize("path", ["native", "torch"])
def test_a_reused_encoding_gives_the_table_gradient_of_encoding_again(path, monkeypatch):
    """reuse_hash_encoding returns the gradient-free encoding as it is, and the table's gradient hash_encode gives
    (native kernels and their PyTorch twin); it refuses positions that need gradients (it gives them none)."""
    if path == "torch":
        monkeypatch.setenv("FIELDS_KERNELS", "torch")
    torch.manual_seed(3)
    g = HashGridGeometry.build(8, 12, 8, 256)
    table = torch.randn(g.total_size, 4, requires_grad=True)
    x, grad_out = torch.rand(3000, 3), torch.randn(3000, 32)
    with torch.no_grad():
        encoding = hash_encode(x, table, g)
    reused = reuse_hash_encoding(x, table, g, encoding)
    (grad_reused,) = torch.autograd.grad(reused, table, grad_out)
    (grad_again,) = torch.autograd.grad(hash_encode(x, table, g), table, grad_out)
    assert torch.equal(reused, encoding)
    torch.testing.assert_close(grad_reused, grad_again, rtol=1e-5, atol=1e-5)
    assert grad_reused.abs().sum() > 0
    with pytest.raises(ValueError, match="no gradient to the positions"):
        reuse_hash_encoding(x.requires_grad_(), table, g, encoding)
