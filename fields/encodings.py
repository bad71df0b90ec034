"""Positional (NeRF) and spherical-harmonic encodings."""

from __future__ import annotations

import torch

from ..cuda import functions
from ..cuda.dispatch import kernels_for


def positional_encoding(x: torch.Tensor, n_frequencies: int, include_input: bool = True,
                        base: float = torch.pi) -> torch.Tensor:
    """NeRF's encoding: [x, sin(2^k base x), cos(2^k base x)] for k < n_frequencies. (N, D) -> (N, D*(2K+1)).
    base pi: NeRF's paper on [-1, 1]; base 1: NeRF's and NerfAcc's code on world coordinates."""
    freqs = (2.0 ** torch.arange(n_frequencies, dtype=x.dtype, device=x.device)) * base
    scaled = (x[..., None, :] * freqs[:, None]).flatten(-2)  # (N, K*D)
    parts = [x] if include_input else []
    parts += [torch.sin(scaled), torch.cos(scaled)]
    return torch.cat(parts, dim=-1)


def positional_encoding_dim(n_inputs: int, n_frequencies: int, include_input: bool = True) -> int:
    return n_inputs * (2 * n_frequencies + int(include_input))


def spherical_harmonics(directions: torch.Tensor, degree: int = 4) -> torch.Tensor:
    """Real SH basis of unit directions (N, 3) -> (N, degree**2), degree in 1..4 (tiny-cuda-nn's constants)."""
    if not 1 <= degree <= 4:
        raise ValueError(f"spherical harmonics degree must be in 1..4, got {degree}")
    x, y, z = directions.unbind(-1)
    out = [torch.full_like(x, 0.28209479177387814)]
    if degree > 1:
        out += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
    if degree > 2:
        xy, yz, xz, x2, y2, z2 = x * y, y * z, x * z, x * x, y * y, z * z
        out += [
            1.0925484305920792 * xy,
            -1.0925484305920792 * yz,
            0.94617469575755997 * z2 - 0.31539156525251999,
            -1.0925484305920792 * xz,
            0.54627421529603959 * (x2 - y2),
        ]
    if degree > 3:
        out += [
            0.59004358992664352 * y * (-3.0 * x2 + y2),
            2.8906114426405538 * xy * z,
            0.45704579946446572 * y * (1.0 - 5.0 * z2),
            0.3731763325901154 * z * (5.0 * z2 - 3.0),
            0.45704579946446572 * x * (1.0 - 5.0 * z2),
            1.4453057213202769 * z * (x2 - y2),
            0.59004358992664352 * x * (-x2 + 3.0 * y2),
        ]
    return torch.stack(out, dim=-1)


def view_inputs(directions: torch.Tensor, features: torch.Tensor, degree: int = 4) -> torch.Tensor:
    """A colour network's input (N, degree**2 + F): the SH basis of unit directions (N, 3), then features (N, F).
    In one pass of the CPU kernel where it applies (float32 CPU tensors, directions without gradient: camera
    refinement's take PyTorch's path); the twin is `spherical_harmonics` and a concatenation."""
    kernels = kernels_for(directions.device) if directions.device.type == "cpu" else None
    if (kernels is not None and not directions.requires_grad and 1 <= degree <= 4
            and directions.dtype == features.dtype == torch.float32 and features.device.type == "cpu"):
        return functions.view_inputs(kernels, directions, features, degree)
    return torch.cat([spherical_harmonics(directions, degree), features], dim=-1)


def view_constant_columns(directions: torch.Tensor, degree: int = 4) -> int:
    """How many leading columns of `view_inputs` no gradient flows back through: the SH basis (degree**2), unless
    the directions carry gradients (camera refinement): 0. A colour MLP skips the input gradient there
    (`ReluMLP.forward`'s constant_columns)."""
    return 0 if directions.requires_grad else degree * degree


def view_mlp(mlp, directions: torch.Tensor, features: torch.Tensor, degree: int = 4) -> torch.Tensor:
    """A colour MLP (a `ReluMLP`) on `view_inputs` (N, degree**2 + F) -> its outputs (N, out), the SH columns'
    input gradient skipped where no gradient flows back through them (`view_constant_columns`)."""
    return mlp(view_inputs(directions, features, degree), view_constant_columns(directions, degree))
