"""Instant-NGP multiresolution hash encoding in pure PyTorch, with tiny-cuda-nn's semantics.

Level l has scale N_min * b**l - 1 and resolution ceil(scale) + 1; a point x in [0, 1]^3 sits at
x * scale + 0.5 (the offset nerfstudio's torch encoder lacks). A level whose grid fits in the table
is indexed densely, otherwise by the hash (x*1 ^ y*2654435761 ^ z*805459861) mod 2^32 mod T.
Corner features are blended trilinearly.

Two paths share the index maths: `hash_encode` (a fused autograd function: gradients for the
table only, the fast path for training) and `hash_encode_reference` (plain autograd ops: gradients
for the table and the positions). Tests check that they agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

PRIMES = (1, 2654435761, 805459861)
# The primes as wrapped int32, so that int32 multiplication gives the uint32 product's low bits.
_PRIMES_I32 = tuple(p - (1 << 32) if p >= (1 << 31) else p for p in PRIMES)


@dataclass(frozen=True)
class HashGridGeometry:
    """Per-level layout of the table. All lists have one entry per level."""

    scales: tuple[float, ...]
    resolutions: tuple[int, ...]
    sizes: tuple[int, ...]  # table rows per level
    offsets: tuple[int, ...]  # first row of each level
    n_dense: int  # levels 0..n_dense-1 are dense, the rest hashed

    @classmethod
    def build(cls, n_levels: int, log2_table_size: int, base_resolution: int, max_resolution: float):
        growth = math.exp((math.log(max_resolution) - math.log(base_resolution)) / max(n_levels - 1, 1))
        table = 1 << log2_table_size
        scales, resolutions, sizes, offsets = [], [], [], []
        offset = 0
        for level in range(n_levels):
            scale = base_resolution * growth**level - 1.0
            res = math.ceil(scale) + 1
            size = min(-(-res**3 // 8) * 8, table)
            scales.append(scale)
            resolutions.append(res)
            sizes.append(size)
            offsets.append(offset)
            offset += size
        dense = [res**3 <= size for res, size in zip(resolutions, sizes)]
        n_dense = sum(dense)
        if dense != [True] * n_dense + [False] * (n_levels - n_dense):
            raise ValueError("dense levels must come before hashed ones")
        return cls(tuple(scales), tuple(resolutions), tuple(sizes), tuple(offsets), n_dense)

    @property
    def total_size(self) -> int:
        return self.offsets[-1] + self.sizes[-1]


def _level_tensors(geometry: HashGridGeometry, device):
    scales = torch.tensor(geometry.scales, dtype=torch.float32, device=device)
    sizes = torch.tensor(geometry.sizes, dtype=torch.int32, device=device)
    offsets = torch.tensor(geometry.offsets, dtype=torch.int32, device=device)
    return scales, sizes, offsets


def corner_indices_and_weights(x: torch.Tensor, geometry: HashGridGeometry):
    """Table rows (L, N, 8) int32 and trilinear weights (L, N, 8) for points x (N, 3) in [0, 1].

    Level-major layout: each level's rows are gathered and scattered together, which keeps
    the working set of a level in cache (about 3x faster on a CPU than point-major order).
    Corners are ordered (dx, dy, dz) with dz fastest. Weights carry gradients to x when x does.
    """
    scales, sizes, offsets = _level_tensors(geometry, x.device)
    pos = x[None, :, :] * scales[:, None, None] + 0.5  # (L, N, 3)
    floor = torch.floor(pos)
    frac = pos - floor
    base = floor.to(torch.int32).detach()
    cx, cy, cz = torch.stack([base, base + 1], dim=-1).unbind(2)  # each (L, N, 2)
    index = (cx * _PRIMES_I32[0])[..., :, None, None] ^ (cy * _PRIMES_I32[1])[..., None, :, None]
    index = (index ^ (cz * _PRIMES_I32[2])[..., None, None, :]).flatten(2)  # (L, N, 8)
    nd = geometry.n_dense
    # Hashed levels have power-of-two sizes: the mask equals the uint32 hash's residue.
    index[nd:] &= (sizes[nd:] - 1)[:, None, None]
    if nd:
        res = torch.tensor(geometry.resolutions[:nd], dtype=torch.int32, device=x.device)[:, None, None]
        dense = cx[:nd, :, :, None, None] + (cy[:nd] * res)[..., None, :, None]
        dense = (dense + (cz[:nd] * res * res)[..., None, None, :]).flatten(2)
        index[:nd] = torch.remainder(dense, sizes[:nd, None, None])
    index += offsets[:, None, None]
    wx, wy, wz = torch.stack([1 - frac, frac], dim=-1).unbind(2)  # each (L, N, 2)
    weights = (wx[..., :, None, None] * wy[..., None, :, None] * wz[..., None, None, :]).flatten(2)
    return index, weights


class _HashEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, table, geometry):
        with torch.no_grad():
            index, weights = corner_indices_and_weights(x, geometry)
            levels, n, _ = index.shape
            corner = table.index_select(0, index.view(-1)).view(levels, n, 8, -1)
            out = (corner * weights[..., None]).sum(2)  # (L, N, F)
        ctx.save_for_backward(index, weights)
        ctx.table_shape = table.shape
        return out.transpose(0, 1).reshape(n, -1)

    @staticmethod
    def backward(ctx, grad_out):
        index, weights = ctx.saved_tensors
        levels, n, _ = index.shape
        n_features = ctx.table_shape[1]
        grad_levels = grad_out.view(n, levels, n_features).transpose(0, 1)  # (L, N, F)
        src = weights[..., None] * grad_levels[:, :, None, :]  # (L, N, 8, F)
        grad_table = grad_out.new_zeros(ctx.table_shape)
        grad_table.index_add_(0, index.view(-1).long(), src.view(-1, n_features))  # int64: 5x faster here
        return None, grad_table, None


def hash_encode(x: torch.Tensor, table: torch.Tensor, geometry: HashGridGeometry) -> torch.Tensor:
    """Encode points x (N, 3) in [0, 1] with table (total_size, F) -> (N, L*F).

    Gradients flow to the table; for gradients to x as well, the reference path is used.
    """
    if x.requires_grad:
        return hash_encode_reference(x, table, geometry)
    return _HashEncode.apply(x, table, geometry)


def hash_encode_reference(x: torch.Tensor, table: torch.Tensor, geometry: HashGridGeometry) -> torch.Tensor:
    """Plain-autograd twin of `hash_encode`: (N, 3) -> (N, L*F), differentiable in x and table."""
    index, weights = corner_indices_and_weights(x, geometry)
    levels, n, _ = index.shape
    corner = table[index.long()]  # (L, N, 8, F)
    return (corner * weights[..., None]).sum(2).transpose(0, 1).reshape(n, -1)


def hash_reference_int64(cell: torch.Tensor, table_size: int) -> torch.Tensor:
    """The published hash in exact 64-bit arithmetic, for tests: cell (N, 3) int64 -> (N,) row in level."""
    h = torch.zeros(cell.shape[0], dtype=torch.int64)
    for axis, prime in enumerate(PRIMES):
        h = h ^ ((cell[:, axis] * prime) & 0xFFFFFFFF)
    return h % table_size
