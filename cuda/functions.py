"""Autograd wrappers around a native extension module (CPU or CUDA: the same entry points)."""

from __future__ import annotations

from types import ModuleType

import torch


class Composite(torch.autograd.Function):
    """Native compositing; gradients flow to sigmas and rgbs through rgb, depth and opacity (not weights)."""

    @staticmethod
    def forward(ctx, kernels, sigmas, rgbs, t_starts, t_ends, offsets, eps):
        sigmas, rgbs = sigmas.contiguous(), rgbs.contiguous()
        rgb, depth, opacity, weights = kernels.composite_forward(sigmas, rgbs, t_starts, t_ends, offsets, eps)
        ctx.save_for_backward(sigmas, rgbs, t_starts, t_ends, offsets, rgb, depth, opacity)
        ctx.kernels, ctx.eps = kernels, eps
        ctx.mark_non_differentiable(weights)
        return rgb, depth, opacity, weights

    @staticmethod
    def backward(ctx, grad_rgb, grad_depth, grad_opacity, _grad_weights):
        sigmas, rgbs, t_starts, t_ends, offsets, rgb, depth, opacity = ctx.saved_tensors
        n_rays = offsets.shape[0] - 1
        zeros = sigmas.new_zeros(n_rays)
        grad_rgb = grad_rgb.contiguous() if grad_rgb is not None else sigmas.new_zeros(n_rays, 3)
        grad_depth = grad_depth.contiguous() if grad_depth is not None else zeros
        grad_opacity = grad_opacity.contiguous() if grad_opacity is not None else zeros
        grad_sigmas, grad_rgbs = ctx.kernels.composite_backward(
            grad_rgb, grad_depth, grad_opacity, rgb, depth, opacity, sigmas, rgbs, t_starts, t_ends, offsets, ctx.eps)
        return None, grad_sigmas, grad_rgbs, None, None, None, None


def composite(kernels: ModuleType, sigmas, rgbs, offsets, t_starts, t_ends, eps: float):
    """rgb (R, 3), depth (R,), opacity (R,), weights (S,) of ray-sorted packed samples;
    offsets (R + 1,): the samples of ray r are [offsets[r], offsets[r + 1])."""
    # float32 kernels: float16 inputs (an autocast run's decoder outputs) are cast, their gradients cast back
    return Composite.apply(kernels, sigmas.float(), rgbs.float(), t_starts.contiguous(), t_ends.contiguous(), offsets,
                           eps)


class HashEncode(torch.autograd.Function):
    """Native hash encoding; gradients flow to the table only. The CUDA build also takes a float16 table
    (the half-precision option): output and accumulation stay float32, the gradient comes back as float16."""

    @staticmethod
    def forward(ctx, kernels, x, table, levels):
        x = x.contiguous()
        HashEncode.remember(ctx, kernels, x, table, levels)
        return kernels.hash_encode_forward(x, table.contiguous(), *levels)

    @staticmethod
    def remember(ctx, kernels, x, table, levels):
        """What backward needs: the points (contiguous), the kernels, the levels and the table's shape and dtype."""
        ctx.save_for_backward(x)
        ctx.kernels, ctx.levels, ctx.table_shape, ctx.table_dtype = kernels, levels, table.shape, table.dtype

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        rows, n_features = ctx.table_shape
        grad_table = ctx.kernels.hash_encode_backward(grad_out.contiguous(), x, rows, n_features, *ctx.levels)
        return None, None, grad_table.to(ctx.table_dtype), None


def hash_encode(kernels: ModuleType, x: torch.Tensor, table: torch.Tensor, levels: tuple) -> torch.Tensor:
    """levels: (scales float32 (L,), resolutions int64 (L,), rows int64 (L,), offsets int64 (L,), n_dense int)."""
    return HashEncode.apply(kernels, x, table, levels)


class ReusedHashEncode(HashEncode):
    """An encoding of x that `hash_encode` computed earlier without gradients, returned as it is, with the table
    gradient HashEncode gives (the forward pass is not run again)."""

    @staticmethod
    def forward(ctx, kernels, x, table, levels, encoding):
        HashEncode.remember(ctx, kernels, x.contiguous(), table, levels)
        return encoding

    @staticmethod
    def backward(ctx, grad_out):
        return *HashEncode.backward(ctx, grad_out), None


def reused_hash_encode(kernels: ModuleType, x: torch.Tensor, table: torch.Tensor, levels: tuple,
                       encoding: torch.Tensor) -> torch.Tensor:
    """`encoding` (N, L*F), hash_encode's gradient-free output at x (N, 3), with gradients to the table."""
    return ReusedHashEncode.apply(kernels, x, table, levels, encoding)


class ViewInputs(torch.autograd.Function):
    """Native [SH basis of directions, features]; gradients flow to the features only."""

    @staticmethod
    def forward(ctx, kernels, directions, features, degree):
        ctx.n_basis = degree * degree
        return kernels.view_inputs(directions.contiguous(), features.contiguous(), degree)

    @staticmethod
    def backward(ctx, grad_out):
        return None, None, grad_out[:, ctx.n_basis:], None


def view_inputs(kernels: ModuleType, directions: torch.Tensor, features: torch.Tensor, degree: int) -> torch.Tensor:
    """(N, degree**2 + F): the SH basis of unit directions (N, 3) (no gradient), then features (N, F)."""
    return ViewInputs.apply(kernels, directions, features, degree)


class PlaneSample(torch.autograd.Function):
    """Native bilinear feature-plane lookup; gradients flow to the planes only."""

    @staticmethod
    def forward(ctx, kernels, planes, coords, sum_planes):
        coords = coords.contiguous()
        out = kernels.plane_sample_forward(planes.contiguous(), coords, sum_planes)
        ctx.save_for_backward(coords)
        ctx.kernels, ctx.plane_size, ctx.sum_planes = kernels, planes.shape[2:], sum_planes
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (coords,) = ctx.saved_tensors
        grad_planes = ctx.kernels.plane_sample_backward(grad_out.contiguous(), coords, *ctx.plane_size, ctx.sum_planes)
        return None, grad_planes, None, None


def plane_sample(kernels: ModuleType, planes: torch.Tensor, coords: torch.Tensor, sum_planes: bool) -> torch.Tensor:
    """planes (P, C, H, W) at coords (P, N, 2) in [-1, 1] -> (N, C) summed over planes, or (P, N, C)."""
    return PlaneSample.apply(kernels, planes, coords, sum_planes)


class VMProducts(torch.autograd.Function):
    """Native TensoRF vector-matrix products (CPU); gradients flow to the planes and lines only."""

    @staticmethod
    def forward(ctx, kernels, x, sum_products, *factors):
        x = x.contiguous()
        out = kernels.vm_products_forward(list(factors[:3]), list(factors[3:]), x, sum_products)
        ctx.save_for_backward(x, *factors)
        ctx.kernels, ctx.sum_products = kernels, sum_products
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x, *factors = ctx.saved_tensors
        grads = ctx.kernels.vm_products_backward(grad_out.contiguous(), factors[:3], factors[3:], x, ctx.sum_products)
        return None, None, None, *grads


def vm_products(kernels: ModuleType, planes: list[torch.Tensor], lines: list[torch.Tensor], x: torch.Tensor,
                sum_products: bool) -> torch.Tensor:
    """Planes (1, C, H, W) and lines (1, C, L, 1), three each, any strides, at x (N, 3) in [-1, 1] ->
    (N, 3C), or (N,) summed (see fields/grids.py: vm_products)."""
    return VMProducts.apply(kernels, x, sum_products, *planes, *lines)


_EMPTY = torch.empty(0)  # no modulation


class FusedMLP(torch.autograd.Function):
    """Native fused ReLU MLP (CPU), optionally with skip layers and CAM's modulation; gradients flow to the input,
    every weight and bias, and the modulation's gamma and beta; to the input's columns from constant_columns on
    (those before are zero: see `fused_mlp`)."""

    @staticmethod
    def forward(ctx, kernels, isa, save, n_layers, skip_layers, constant_columns, x, gamma, beta, *parameters):
        weights, biases = list(parameters[:n_layers]), list(parameters[n_layers:])
        modulation = (gamma, beta) if gamma is not None else (_EMPTY, _EMPTY)
        y, *hidden = kernels.mlp_forward(x, weights, biases, save, isa, list(skip_layers), *modulation)
        ctx.save_for_backward(x, *modulation, *parameters, *hidden)
        ctx.kernels, ctx.isa, ctx.n_layers, ctx.n_parameters = kernels, isa, n_layers, len(parameters)
        ctx.skip_layers, ctx.modulated, ctx.constant_columns = list(skip_layers), gamma is not None, constant_columns
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        x, gamma, beta, *saved = ctx.saved_tensors
        weights, biases = saved[: ctx.n_layers], saved[ctx.n_layers: ctx.n_parameters]
        hidden = saved[ctx.n_parameters:]
        grads = ctx.kernels.mlp_backward(grad_y.contiguous(), x, hidden, weights, biases, ctx.needs_input_grad[6],
                                         ctx.isa, ctx.skip_layers, gamma, beta, ctx.constant_columns)
        grad_x, grad_parameters = grads[0], grads[1: 1 + ctx.n_parameters]
        grad_gamma, grad_beta = grads[1 + ctx.n_parameters:] if ctx.modulated else (None, None)
        return (None, None, None, None, None, None, grad_x if ctx.needs_input_grad[6] else None, grad_gamma, grad_beta,
                *grad_parameters)


def fused_mlp(kernels: ModuleType, x: torch.Tensor, weights: list[torch.Tensor], isa: str,
              biases: list[torch.Tensor] | None = None, skip_layers: tuple[int, ...] = (),
              gamma: torch.Tensor | None = None, beta: torch.Tensor | None = None,
              constant_columns: int = 0) -> torch.Tensor:
    """x (N, n_in) float32 through linear layers weights[l] (out, in), with biases[l] (out,) when given (one per
    layer), ReLU between -> (N, n_out). skip_layers: the layers whose input is the previous output with x appended
    (their weights (out, in + n_in)). gamma, beta (N, n_layers - 1): CAM's modulation, hidden layer l's output z
    becoming gamma[:, l] * z + beta[:, l] before its ReLU. isa: "auto", "avx512", "avx2" or "generic" (the vector
    instructions the kernel uses). constant_columns: x's leading columns that no gradient flows back through (the
    SH basis of directions without gradients): the kernel skips their gradient in whole blocks of 16 columns and
    leaves it zero there, so x's gradient in those columns is not to be used."""
    parameters = [p.contiguous() for p in weights + (biases or [])]
    if gamma is not None:
        gamma, beta = gamma.contiguous(), beta.contiguous()
    inputs = [x] + parameters + ([gamma, beta] if gamma is not None else [])
    save = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)
    return FusedMLP.apply(kernels, isa, save, len(weights), tuple(skip_layers), int(constant_columns), x.contiguous(),
                          gamma, beta, *parameters)
