"""Coordinate networks: a backbone's encoder plus a small head, (N, dim) in [-1, 1] -> (N, n_out).

The same building blocks as the radiance fields, for fitting images (dim 2, pixel coordinates) and
signed distance fields (dim 3). Each backbone builds its own in `Field.coordinate_network`.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import mlp
from .encodings import positional_encoding, positional_encoding_dim


class CoordinateNetwork(nn.Module):
    """encoder: (N, dim) -> (N, encoder.out_dim); head: (N, out_dim) -> (N, n_out).

    `parameter_split()` names the encoder's parameters "features" and the head's "decoder";
    `lr` and `decoder_lr` are the Adam learning rates this network is meant to be fitted with.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, dim: int, n_out: int, lr: float = 1e-2,
                 decoder_lr: float = 1e-2):
        super().__init__()
        self.encoder, self.head = encoder, head
        self.dim, self.n_out = dim, n_out
        self.lr, self.decoder_lr = lr, decoder_lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))

    def parameter_split(self) -> dict[str, list[str]]:
        names = [n for n, _ in self.named_parameters()]
        return {"features": [n for n in names if n.startswith("encoder.")],
                "decoder": [n for n in names if n.startswith("head.")]}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def with_mlp_head(encoder: nn.Module, dim: int, n_out: int, width: int = 64, hidden: int = 1) -> CoordinateNetwork:
    """`encoder` followed by a ReLU MLP head with biases."""
    return CoordinateNetwork(encoder, mlp(encoder.out_dim, width, hidden, n_out, bias=True), dim, n_out)


class PositionalEncoder(nn.Module):
    """NeRF positional encoding as a module: (N, dim) -> (N, dim * (2K + 1))."""

    def __init__(self, dim: int, n_frequencies: int):
        super().__init__()
        self.n_frequencies = n_frequencies
        self.out_dim = positional_encoding_dim(dim, n_frequencies)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return positional_encoding(x, self.n_frequencies)


class FourierFeatures(nn.Module):
    """Random Fourier features [sin(2 pi x B), cos(2 pi x B)], B ~ N(0, sigma^2) fixed: (N, dim) -> (N, 2M)."""

    def __init__(self, dim: int, n_frequencies: int = 256, sigma: float = 10.0, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("matrix", sigma * torch.randn(dim, n_frequencies, generator=g))
        self.out_dim = 2 * n_frequencies

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = 2 * torch.pi * ((x + 1) / 2) @ self.matrix
        return torch.cat([torch.sin(projected), torch.cos(projected)], dim=-1)
