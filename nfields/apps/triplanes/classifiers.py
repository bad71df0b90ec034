"""Classifiers of tri-planes: the channel-token transformer (Cardace et al. 2024) and a small CNN.

Input: tri-planes (B, 3, C, R, R) stacked to (B, 3C, R, R), L2-normalised over the 3C-vector at each
location, cropped to (B, 3C, S, S) (random resized crop in training; in evaluation the centre crop, as the paper does,
or the average over every offset crop).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

CROP = 30


def stack_planes(planes: torch.Tensor) -> torch.Tensor:
    """(B, 3, C, R, R) -> (B, 3C, R, R), unit L2 norm over the 3C channels at each location."""
    x = planes.float().flatten(1, 2)
    return F.normalize(x, dim=1)


def center_crop(x: torch.Tensor, size: int = CROP) -> torch.Tensor:
    """(B, K, R, R) -> (B, K, size, size), the centre."""
    top = (x.shape[-1] - size) // 2
    return x[..., top:top + size, top:top + size]


def offset_crops(x: torch.Tensor, size: int = CROP) -> list[torch.Tensor]:
    """Every (B, K, size, size) crop of (B, K, R, R) at integer offsets: (R - size + 1)^2 views (9 for 30 of 32),
    whose predictions are averaged at test time."""
    n = x.shape[-1] - size + 1
    return [x[..., top:top + size, left:left + size] for top in range(n) for left in range(n)]


def random_resized_crop(x: torch.Tensor, size: int = CROP, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """torchvision's RandomResizedCrop per sample, bilinear: (B, K, R, R) -> (B, K, size, size)."""
    b = x.shape[0]
    area = torch.empty(b).uniform_(*scale, generator=generator)
    log_ratio = torch.empty(b).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = log_ratio.exp()
    w = (area * aspect).sqrt().clamp(max=1.0)  # fractions of the side
    h = (area / aspect).sqrt().clamp(max=1.0)
    cx = (torch.rand(b, generator=generator) * 2 - 1) * (1 - w)
    cy = (torch.rand(b, generator=generator) * 2 - 1) * (1 - h)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    grid = F.affine_grid(theta, (b, x.shape[1], size, size), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass
class TransformerConfig:
    d_model: int = 64
    layers: int = 3
    heads: int = 4
    ffn: int = 128
    dropout: float = 0.1


TRANSFORMER_PRESETS = {
    "cpu": TransformerConfig(),
    "medium": TransformerConfig(d_model=128, layers=4, heads=4, ffn=256, dropout=0.1),
    "paper": TransformerConfig(d_model=512, layers=8, heads=4, ffn=2048, dropout=0.1),
}


class ChannelTransformer(nn.Module):
    """One token per channel (its flattened S x S plane), no positional encoding, no CLS token, max-pool over
    tokens: (B, K, S, S) -> (B, classes), invariant to permutations of the K channels."""

    def __init__(self, n_classes: int, config: TransformerConfig = TransformerConfig(), size: int = CROP):
        super().__init__()
        self.config = config
        self.embed = nn.Linear(size * size, config.d_model)
        layer = nn.TransformerEncoderLayer(config.d_model, config.heads, config.ffn, config.dropout,
                                           batch_first=True, norm_first=False)
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.head = nn.Linear(config.d_model, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x.flatten(2))  # (B, K, d)
        return self.head(self.encoder(tokens).amax(dim=1))


@dataclass
class CNNConfig:
    width: int = 32
    dropout: float = 0.3


class PlaneCNN(nn.Module):
    """Conv-BN-ReLU blocks (width, width, pool, 2 width, 2 width), global average pool, linear:
    (B, K, S, S) -> (B, classes)."""

    def __init__(self, n_classes: int, in_channels: int = 48, config: CNNConfig = CNNConfig()):
        super().__init__()
        self.config = config
        w = config.width

        def block(a, b):
            return [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(*block(in_channels, w), *block(w, w), nn.MaxPool2d(2),
                                      *block(w, 2 * w), *block(2 * w, 2 * w), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(config.dropout), nn.Linear(2 * w, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_plane_classifier(model: str, n_classes: int, in_channels: int, preset: str = "cpu",
                           size: int = CROP) -> nn.Module:
    """model: transformer (preset cpu | medium | paper) or cnn."""
    if model == "transformer":
        if preset not in TRANSFORMER_PRESETS:
            raise ValueError(f"transformer preset '{preset}': expected one of {', '.join(TRANSFORMER_PRESETS)}")
        return ChannelTransformer(n_classes, TRANSFORMER_PRESETS[preset], size)
    if model == "cnn":
        return PlaneCNN(n_classes, in_channels)
    raise ValueError(f"model '{model}': expected transformer or cnn")


def model_config(model: nn.Module) -> dict:
    return asdict(model.config)
