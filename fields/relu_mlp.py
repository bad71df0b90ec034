"""The backbones' small MLPs: an nn.Sequential of linear layers with ReLU between, run on the CPU by the fused
native kernel (cuda/src/fused_mlp.h: each block of rows through every layer in cache, forward and backward)
when the layout is one it supports (bias-free as tiny-cuda-nn's, or a bias in every layer; optionally NeRF's skip
and CAM's per-row modulation, `fused_relu_layers`) and the input is float32 outside autocast; otherwise, and
with FIELDS_KERNELS=torch, by nn.Sequential's own forward (the PyTorch twin).
$FIELDS_CPU_ISA (auto, avx512, avx2 or generic, read per call) picks the kernel's vector instructions; "auto"
takes the best this CPU has, and PyTorch where it has neither AVX path (the generic loops are no match for
PyTorch's matrix products)."""

from __future__ import annotations

import os

import torch
from torch import nn

from ..cuda import functions
from ..cuda.dispatch import kernels_for


def cpu_isa(kernels) -> str | None:
    """The kernel path $FIELDS_CPU_ISA asks for, or None for PyTorch (auto on a CPU without AVX2)."""
    isa = os.environ.get("FIELDS_CPU_ISA", "auto").lower()
    if isa == "auto" and kernels.mlp_isas()[0] == "generic":
        return None
    return isa


def fused_relu_layers(linear: list[nn.Linear], x: torch.Tensor, last_weight: torch.Tensor | None = None,
                      skip_layers: tuple[int, ...] = (), gamma: torch.Tensor | None = None,
                      beta: torch.Tensor | None = None, constant_columns: int = 0) -> torch.Tensor | None:
    """x (..., n_in) through `linear` with ReLU between and none after the last, on the fused kernel, with
    last_weight (out, in) in the last layer's place when given; None where the kernel does not compute exactly that
    (not float32 on the CPU, autocast, a bias in some layers only, no kernel path: see cpu_isa).
    skip_layers: the layers whose input is the previous output with x appended (NeRF's skip). gamma, beta (N,
    len(linear) - 1): CAM's modulation, hidden layer l's output z becoming gamma[:, l] * z + beta[:, l] before its
    ReLU (x then (N, n_in)). constant_columns: see `ReluMLP.forward`."""
    tensors = [x] + [p for m in linear for p in m.parameters()] + ([gamma, beta] if gamma is not None else [])
    if not (x.device.type == "cpu" and not torch.is_autocast_enabled("cpu")
            and len({m.bias is None for m in linear}) == 1  # every layer with a bias, or none
            and all(t.dtype == torch.float32 and t.device.type == "cpu" for t in tensors)):
        return None
    kernels = kernels_for(x.device)
    isa = cpu_isa(kernels) if kernels is not None else None
    if isa is None:
        return None
    weights = [m.weight for m in linear]
    biases = None if linear[0].bias is None else [m.bias for m in linear]
    if last_weight is not None:
        weights[-1] = last_weight
        if biases is not None:
            biases[-1] = biases[-1][: len(last_weight)]
    if x.dim() == 2:
        return functions.fused_mlp(kernels, x, weights, isa, biases, skip_layers, gamma, beta, constant_columns)
    y = functions.fused_mlp(kernels, x.reshape(-1, x.shape[-1]), weights, isa, biases, skip_layers, gamma, beta,
                            constant_columns)
    return y.reshape(*x.shape[:-1], y.shape[-1])


class ReluMLP(nn.Sequential):
    """Linear, ReLU, ..., Linear (no output activation): (..., n_in) -> (..., n_out). The children are
    nn.Sequential's, so checkpoints keep their state_dict keys."""

    def forward(self, x: torch.Tensor, constant_columns: int = 0) -> torch.Tensor:
        """constant_columns: x's leading columns through which no gradient flows back (a colour network's SH basis of
        directions without gradients, `view_constant_columns`): the fused kernel does not compute x's gradient there
        (it is left zero), and x's gradient in those columns is not to be used."""
        y = self.fused(x, constant_columns=constant_columns)
        return super().forward(x) if y is None else y

    def leading_outputs(self, x: torch.Tensor, count: int) -> torch.Tensor:
        """The first `count` outputs (..., count) alone: the last layer computes only those."""
        last = self[-1]
        if not isinstance(last, nn.Linear):
            return self(x)[..., :count]
        y = self.fused(x, last.weight[:count])
        if y is not None:
            return y
        return nn.functional.linear(self[:-1](x), last.weight[:count], None if last.bias is None else last.bias[:count])

    def fused(self, x: torch.Tensor, last_weight: torch.Tensor | None = None,
              constant_columns: int = 0) -> torch.Tensor | None:
        """x through the fused kernel (`fused_relu_layers`) when this module is Linear, ReLU, ..., Linear; else
        None."""
        layers = list(self)
        linear = layers[::2]
        if not (len(layers) % 2 == 1 and all(isinstance(m, nn.ReLU) for m in layers[1::2])
                and all(isinstance(m, nn.Linear) for m in linear)):
            return None
        return fused_relu_layers(linear, x, last_weight, constant_columns=constant_columns)
