"""Instant-NGP multiresolution hash encoding in pure PyTorch, with tiny-cuda-nn's semantics.

Level l has scale N_min * b**l - 1 and resolution ceil(scale) + 1; a point x in [0, 1]^3 sits at
x * scale + 0.5 (the offset nerfstudio's torch encoder lacks). A level whose grid fits in the table
is indexed densely, otherwise by the hash (x*1 ^ y*2654435761 ^ z*805459861) mod 2^32 mod T.
Corner features are blended trilinearly.

Three paths compute the same encoding: kernels (nfields.cuda, CPU and CUDA builds; table
gradients), `hash_encode_torch` (their fused PyTorch twin; table gradients) and
`hash_encode_reference` (plain autograd ops: gradients for the table and the positions).
`hash_encode` picks per device; tests check that all three agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

from ..cuda import functions
from ..cuda.dispatch import kernels_for

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

    @cached_property
    def kernel_levels(self) -> tuple:
        """The level layout as the native kernels take it (CPU tensors)."""
        return (torch.tensor(self.scales, dtype=torch.float32), torch.tensor(self.resolutions),
                torch.tensor(self.sizes), torch.tensor(self.offsets), self.n_dense)


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
    Per-axis terms are combined corner by corner on contiguous (L, N) slabs: broadcasting
    over tiny corner dimensions runs several times slower in PyTorch's CPU kernels.
    """
    scales, sizes, offsets = _level_tensors(geometry, x.device)
    pos = x.t()[:, None, :] * scales[None, :, None] + 0.5  # (3, L, N)
    floor = torch.floor(pos)
    frac = pos - floor
    base = floor.to(torch.int32).detach()
    nd = geometry.n_dense
    res = torch.tensor(geometry.resolutions, dtype=torch.int32, device=x.device)[:, None]
    dense_strides = (torch.ones_like(res), res, res * res)
    terms = []  # per axis: [term at floor, term at floor + 1], each (L, N) int32
    for axis in range(3):
        hashed = base[axis, nd:] * _PRIMES_I32[axis]
        dense = base[axis, :nd] * dense_strides[axis][:nd]
        t0 = torch.cat([dense, hashed])
        step = torch.cat([dense_strides[axis][:nd], torch.full_like(res[nd:], _PRIMES_I32[axis])])
        terms.append((t0, t0 + step))
    levels, n = base.shape[1:]
    index = torch.empty(levels, 8, n, dtype=torch.int32, device=x.device)
    weights = []
    w_axis = [(1 - frac[a], frac[a]) for a in range(3)]
    for dx in (0, 1):
        for dy in (0, 1):
            hxy_hash = terms[0][dx][nd:] ^ terms[1][dy][nd:]
            hxy_dense = terms[0][dx][:nd] + terms[1][dy][:nd]
            wxy = w_axis[0][dx] * w_axis[1][dy]
            for dz in (0, 1):
                c = 4 * dx + 2 * dy + dz
                index[nd:, c] = (hxy_hash ^ terms[2][dz][nd:]) & (sizes[nd:, None] - 1)
                if nd:
                    index[:nd, c] = torch.remainder(hxy_dense + terms[2][dz][:nd], sizes[:nd, None])
                weights.append(wxy * w_axis[2][dz])
    # Hashed levels have power-of-two sizes: the mask equals the uint32 hash's residue.
    index += offsets[:, None, None]
    return index.transpose(1, 2).contiguous(), torch.stack(weights, dim=-1)


class _HashEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, table, geometry):
        with torch.no_grad():
            index, weights = corner_indices_and_weights(x, geometry)
            levels, n, _ = index.shape
            n_features = table.shape[1]
            corner = table.index_select(0, index.view(-1)).view(levels * n, 8, n_features)
            out = torch.bmm(weights.view(levels * n, 1, 8), corner).view(levels, n, n_features)
        ctx.save_for_backward(index, weights)
        ctx.table_shape = table.shape
        return out.transpose(0, 1).reshape(n, levels * n_features)

    @staticmethod
    def backward(ctx, grad_out):
        index, weights = ctx.saved_tensors
        return None, table_gradient(grad_out, index, weights, ctx.table_shape), None


class _ReusedHashEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, table, geometry, encoding):
        ctx.save_for_backward(x)
        ctx.geometry, ctx.table_shape = geometry, table.shape
        return encoding

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        index, weights = corner_indices_and_weights(x, ctx.geometry)
        return None, table_gradient(grad_out, index, weights, ctx.table_shape), None, None


def table_gradient(grad_out: torch.Tensor, index: torch.Tensor, weights: torch.Tensor,
                   table_shape: torch.Size) -> torch.Tensor:
    """The table's gradient (rows, F) from the encoding's (N, L*F), given the corner rows and weights (L, N, 8)."""
    levels, n, _ = index.shape
    n_features = table_shape[1]
    grad_levels = grad_out.view(n, levels, n_features).transpose(0, 1)  # (L, N, F)
    src = weights[..., None] * grad_levels[:, :, None, :]  # (L, N, 8, F)
    grad_table = grad_out.new_zeros(table_shape)
    grad_table.index_add_(0, index.view(-1).long(), src.view(-1, n_features))  # int64: 5x faster here
    return grad_table


def hash_encode(x: torch.Tensor, table: torch.Tensor, geometry: HashGridGeometry) -> torch.Tensor:
    """Encode points x (N, 3) in [0, 1] with table (total_size, F) -> (N, L*F).

    Gradients flow to the table, through the device's native kernel when there is one, else through
    the fused PyTorch function; for gradients to x as well, the reference path is used.
    """
    if x.requires_grad:
        return hash_encode_reference(x, table, geometry)
    kernels = native_kernels(x, table)
    if kernels is not None:
        return functions.hash_encode(kernels, x, table, geometry.kernel_levels)
    return hash_encode_torch(x, table, geometry)


def native_kernels(x: torch.Tensor, table: torch.Tensor):
    """The native extension that encodes x with this table (float32, or float16 on CUDA), or None for PyTorch."""
    kernels = kernels_for(x.device)
    if kernels is not None and (table.dtype == torch.float32 or (table.dtype == torch.float16 and x.is_cuda)):
        return kernels
    return None


def reuse_hash_encoding(x: torch.Tensor, table: torch.Tensor, geometry: HashGridGeometry,
                        encoding: torch.Tensor) -> torch.Tensor:
    """`encoding` (N, L*F), what `hash_encode(x, table)` gave at x (N, 3) without gradients, returned as it is
    with the gradient to the table that `hash_encode` gives: a training step reuses the gradient-free pass's
    encodings of the samples it keeps (the same table, the same points) instead of encoding them again."""
    if x.requires_grad:
        raise ValueError("reuse_hash_encoding gives no gradient to the positions: use hash_encode")
    kernels = native_kernels(x, table)
    if kernels is not None:
        return functions.reused_hash_encode(kernels, x, table, geometry.kernel_levels, encoding)
    return _ReusedHashEncode.apply(x, table, geometry, encoding)


def hash_encode_torch(x: torch.Tensor, table: torch.Tensor, geometry: HashGridGeometry) -> torch.Tensor:
    """The fused PyTorch twin of the native kernels: (N, 3) -> (N, L*F), gradients to the table."""
    return _HashEncode.apply(x, table, geometry)


def hash_encode_reference(x: torch.Tensor, table: torch.Tensor, geometry: HashGridGeometry) -> torch.Tensor:
    """Plain-autograd twin of `hash_encode`: (N, 3) -> (N, L*F), differentiable in x and table."""
    index, weights = corner_indices_and_weights(x, geometry)
    levels, n, _ = index.shape
    corner = table[index.long()]  # (L, N, 8, F)
    return (corner * weights[..., None]).sum(2).transpose(0, 1).reshape(n, levels * table.shape[1])
