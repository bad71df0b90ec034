"""PointNet (Qi et al. 2017, without the T-nets) on raw point clouds: the explicit-data baseline."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class PointNetConfig:
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])  # shared per-point MLP
    head: list[int] = field(default_factory=lambda: [128])
    dropout: float = 0.3


POINTNET_PRESETS = {"cpu": PointNetConfig(), "paper": PointNetConfig([64, 64, 128, 1024], [512, 256], 0.3)}


class PointNet(nn.Module):
    """Shared MLP (1x1 convolutions with BN), max-pool over points, MLP head: (B, N, 3) -> (B, classes)."""

    def __init__(self, n_classes: int, config: PointNetConfig = PointNetConfig()):
        super().__init__()
        self.config = config
        layers, n_in = [], 3
        for w in config.widths:
            layers += [nn.Conv1d(n_in, w, 1, bias=False), nn.BatchNorm1d(w), nn.ReLU(inplace=True)]
            n_in = w
        self.features = nn.Sequential(*layers)
        head = []
        for w in config.head:
            head += [nn.Linear(n_in, w, bias=False), nn.BatchNorm1d(w), nn.ReLU(inplace=True),
                     nn.Dropout(config.dropout)]
            n_in = w
        self.head = nn.Sequential(*head, nn.Linear(n_in, n_classes))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(points.transpose(1, 2)).amax(dim=2))


def augment_points(points: torch.Tensor, generator: torch.Generator | None = None, up_axis: int = 2,
                   jitter: float = 0.01, clip: float = 0.05) -> torch.Tensor:
    """Random rotation about the up axis (ModelNet: z) and clipped Gaussian jitter: (B, N, 3) -> (B, N, 3)."""
    b = points.shape[0]
    angle = torch.rand(b, generator=generator) * 2 * math.pi
    c, s = angle.cos(), angle.sin()
    a, b_ = [i for i in range(3) if i != up_axis]
    rotation = torch.eye(3).repeat(b, 1, 1)
    rotation[:, a, a], rotation[:, a, b_], rotation[:, b_, a], rotation[:, b_, b_] = c, -s, s, c
    noise = (torch.randn(points.shape, generator=generator) * jitter).clamp(-clip, clip)
    return points @ rotation.transpose(1, 2) + noise
