"""NeRF's MLP radiance field with positional encoding of position and view direction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .base import Field, FieldConfig, mlp, trunc_exp
from .coordinate import CoordinateNetwork, PositionalEncoder
from .encodings import positional_encoding, positional_encoding_dim
from .hashgrid import HashGridConfig
from .optimizer_spec import OptimizerSpec


@dataclass
class MLPConfig(FieldConfig):
    position_frequencies: int = 10
    direction_frequencies: int = 4
    width: int = 128
    depth: int = 4
    skip_at: int = -1  # re-inject the encoded position before this layer (-1: never)
    feature_width: int = 64
    color_width: int = 64
    density_bias: float = -1.0
    cpu_preset: ClassVar[str] = "small"
    gpu_preset: ClassVar[str] = "nerf"
    # instant-ngp's Adam (as hashgrid). The reference, NerfAcc's examples/train_mlp_nerf.py (Adam 5e-4, x0.33 at
    # 1/2, 3/4, 5/6, 9/10), trains far slower on a CPU budget: lego val 15.36 dB against 20.17 after 500 steps
    # (docs/backbones.md, "Optimisers").
    optimizer: ClassVar[OptimizerSpec] = HashGridConfig.optimizer

    @classmethod
    def presets(cls, bound: float = 1.5) -> dict[str, "MLPConfig"]:
        return {
            # NeRF's network: 8 x 256 with a skip at layer 4, a 256-d feature and a 128-wide colour layer.
            "nerf": cls(width=256, depth=8, skip_at=4, feature_width=256, color_width=128),
            # A small, fast network for CPUs.
            "small": cls(),
        }


class MLPField(Field):
    name = "mlp"
    Config = MLPConfig
    # The density head counts as features, as it did when "mlp" in a name meant decoder: distillation copies
    # the two MLPs only, and weight decay skips the head.
    parameter_roles = {"trunk_mlp": "decoder", "density_head": "features", "color_mlp": "decoder"}
    color_decoder_modules = ("color_mlp",)

    def __init__(self, aabb: torch.Tensor, config: MLPConfig):
        super().__init__(aabb, config)
        c = config
        n_pos = positional_encoding_dim(3, c.position_frequencies)
        layers, dim = [], n_pos
        for i in range(c.depth):
            if i == c.skip_at:
                dim += n_pos
            layers.append(nn.Linear(dim, c.width))
            dim = c.width
        self.trunk_mlp = nn.ModuleList(layers)
        self.density_head = nn.Linear(c.width, 1 + c.feature_width)
        n_dir = positional_encoding_dim(3, c.direction_frequencies)
        self.color_mlp = nn.Sequential(
            nn.Linear(c.feature_width + n_dir, c.color_width), nn.ReLU(inplace=True), nn.Linear(c.color_width, 3)
        )

    def density(self, positions):
        encoded = positional_encoding(self.normalize(positions) * 2 - 1, self.config.position_frequencies)
        h = encoded
        for i, layer in enumerate(self.trunk_mlp):
            if i == self.config.skip_at:
                h = torch.cat([h, encoded], dim=-1)
            h = torch.relu(layer(h))
        out = self.density_head(h)
        return trunc_exp(out[:, 0] + self.config.density_bias), out[:, 1:]

    def color(self, features, directions):
        encoded = positional_encoding(directions, self.config.direction_frequencies)
        return torch.sigmoid(self.color_mlp(torch.cat([features, encoded], dim=-1)))

    @classmethod
    def coordinate_network(cls, dim, n_out):
        encoder = PositionalEncoder(dim, 10)
        return CoordinateNetwork(encoder, mlp(encoder.out_dim, 128, 3, n_out, bias=True), dim, n_out,
                                 lr=1e-3, decoder_lr=1e-3)
