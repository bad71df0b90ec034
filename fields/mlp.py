"""NeRF's MLP radiance field with positional encoding of position, in two forms: its own heads, or PVD's
shared heads (the hash grid's density and colour MLPs) so a hash-grid teacher's heads fit a student."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .base import Field, FieldConfig, mlp, trunc_exp
from .coordinate import CoordinateNetwork, PositionalEncoder
from .encodings import positional_encoding, positional_encoding_dim, view_mlp
from .optimizer_spec import INSTANT_NGP_OPTIMIZER, OptimizerSpec
from .relu_mlp import fused_relu_layers

HEADS = ("own", "shared")


@dataclass
class MLPConfig(FieldConfig):
    position_frequencies: int = 10
    direction_frequencies: int = 4  # "own" heads: NeRF's encoding of the view direction
    width: int = 128
    depth: int = 4
    skip_at: int = -1  # re-inject the encoded position before this layer (-1: never)
    feature_width: int = 64  # "shared": log-density + appearance, the hash grid's geometry_features (16)
    color_width: int = 64
    color_hidden: int = 1
    density_bias: float = -1.0
    # "own": a density-and-feature layer and a colour MLP over encoded directions (NeRF).
    # "shared": PVD's NeRF student (megvii-research/AAAI2023-PVD, distill_mutual/network.py, model_type "mlp"):
    # the trunk ends in a linear layer of `trunk_out` values (the hash encoding's width) that feeds the hash
    # grid's heads, a bias-free density MLP (trunk_out -> density_width -> feature_width) and a bias-free colour
    # MLP over SH directions, so a hash-grid teacher's heads copy into it and their features mean the same.
    heads: str = "own"
    trunk_out: int = 32  # hashgrid's n_levels * n_features (8 x 4 on the CPU, 16 x 2 published)
    density_width: int = 64
    sh_degree: int = 4
    cpu_preset: ClassVar[str] = "small"
    gpu_preset: ClassVar[str] = "nerf"
    # instant-ngp's Adam (as hashgrid). The reference, NerfAcc's examples/train_mlp_nerf.py (Adam 5e-4, x0.33 at
    # 1/2, 3/4, 5/6, 9/10), trains far slower on a CPU budget: lego val 15.36 dB against 20.17 after 500 steps
    # (docs/backbones.md, "Optimisers").
    optimizer: ClassVar[OptimizerSpec] = INSTANT_NGP_OPTIMIZER

    @classmethod
    def presets(cls, bound: float = 1.5) -> dict[str, "MLPConfig"]:
        nerf = {"width": 256, "depth": 8, "skip_at": 4}
        shared = {"heads": "shared", "feature_width": 16, "color_hidden": 2}  # hashgrid's heads, both presets
        return {
            # NeRF's network: 8 x 256 with a skip at layer 4, a 256-d feature and a 128-wide colour layer.
            "nerf": cls(**nerf, feature_width=256, color_width=128),
            # A small, fast network for CPUs.
            "small": cls(),
            # The same trunks with the hash grid's heads: distillation students of a hash grid (PVD's form).
            "nerf-shared": cls(**nerf, **shared),
            "small-shared": cls(**shared),
        }


class MLPField(Field):
    name = "mlp"
    Config = MLPConfig
    # The density head counts as features, as it did when "mlp" in a name meant decoder: distillation copies
    # the two MLPs only, and weight decay skips the head.
    parameter_roles = {"trunk_mlp": "decoder", "density_head": "features", "color_mlp": "decoder"}
    shared_roles = {"trunk_mlp": "decoder", "density_mlp": "decoder", "color_mlp": "decoder"}
    color_decoder_modules = ("color_mlp",)

    def __init__(self, aabb: torch.Tensor, config: MLPConfig):
        super().__init__(aabb, config)
        c = config
        if c.heads not in HEADS:
            raise ValueError(f"mlp config: 'heads' must be one of {', '.join(HEADS)}, got '{c.heads}'")
        shared = c.heads == "shared"
        n_pos = positional_encoding_dim(3, c.position_frequencies)
        layers, dim = [], n_pos
        for i in range(c.depth):
            if i == c.skip_at:
                dim += n_pos
            layers.append(nn.Linear(dim, c.width))
            dim = c.width
        if shared:  # a last, linear layer to the hash encoding's width
            layers.append(nn.Linear(c.width, c.trunk_out))
            self.parameter_roles = self.shared_roles
            self.density_mlp = mlp(c.trunk_out, c.density_width, 1, c.feature_width)
            n_dir = c.sh_degree**2
        else:
            self.density_head = nn.Linear(c.width, 1 + c.feature_width)
            n_dir = positional_encoding_dim(3, c.direction_frequencies)
        self.trunk_mlp = nn.ModuleList(layers)
        self.color_mlp = mlp(n_dir + c.feature_width, c.color_width, c.color_hidden, 3, bias=not shared)

    def fused_layers(self) -> tuple[list[nn.Linear], tuple[int, ...]] | None:
        """The trunk (with the own form's density head after it) as the fused CPU kernel's ReLU MLP (`density` runs
        it there): its linear layers, a bias in each, and the layer whose input has the encoding appended (NeRF's
        skip), if any; None for a skip before the first layer."""
        skip = self.config.skip_at
        if skip == 0:
            return None
        layers = list(self.trunk_mlp) + ([] if self.config.heads == "shared" else [self.density_head])
        return layers, ((skip,) if 0 < skip < len(self.trunk_mlp) else ())

    def density(self, positions):
        c = self.config
        encoded = positional_encoding(self.normalize(positions) * 2 - 1, c.position_frequencies)
        fused = self.fused_layers()
        # the shared form's trunk output, or the own form's density head output
        out = fused_relu_layers(fused[0], encoded, skip_layers=fused[1]) if fused is not None else None
        if out is None:  # no fused kernel here: the layers one by one
            out = encoded
            for i, layer in enumerate(self.trunk_mlp):
                if i == c.skip_at:
                    out = torch.cat([out, encoded], dim=-1)
                out = layer(out)
                if i < c.depth:  # the shared form's last layer (i == depth) stays linear
                    out = torch.relu(out)
            if c.heads == "own":
                out = self.density_head(out)
        if c.heads == "shared":  # features: log-density (before the bias) and appearance, as the hash grid's
            features = self.density_mlp(out)
            return trunc_exp(features[:, 0] + c.density_bias), features
        return trunc_exp(out[:, 0] + c.density_bias), out[:, 1:]

    def color(self, features, directions):
        if self.config.heads == "shared":  # the hash grid's order: SH directions, then features
            return torch.sigmoid(view_mlp(self.color_mlp, directions, features, self.config.sh_degree))
        inputs = torch.cat([features, positional_encoding(directions, self.config.direction_frequencies)], dim=-1)
        return torch.sigmoid(self.color_mlp(inputs))

    @classmethod
    def coordinate_network(cls, dim, n_out):
        encoder = PositionalEncoder(dim, 10)
        return CoordinateNetwork(encoder, mlp(encoder.out_dim, 128, 3, n_out, bias=True), dim, n_out,
                                 lr=1e-3, decoder_lr=1e-3)
