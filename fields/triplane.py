"""Tri-plane radiance field: three axis-aligned feature planes (optionally several resolutions) and a
small decoder emitting [log-density, 15 features], with the hash model's SH colour MLP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from .base import Field, FieldConfig, mlp, trunc_exp
from .coordinate import with_mlp_head
from .encodings import positional_encoding, positional_encoding_dim, view_mlp
from .grids import MultiPlaneGrid
from .optimizer_spec import INSTANT_NGP_OPTIMIZER, OptimizerSpec


@dataclass
class TriplaneConfig(FieldConfig):
    channels: int = 16
    resolutions: list[int] = field(default_factory=lambda: [64, 128, 256])
    aggregate: str = "sum"  # sum | product of the three planes' samples
    init_std: float = 0.1
    position_frequencies: int = 0  # > 0: concatenate a positional encoding of x to the plane features
    decoder_width: int = 64
    decoder_hidden: int = 1
    geometry_features: int = 16
    color_width: int = 64
    color_hidden: int = 2
    sh_degree: int = 4
    density_bias: float = -1.0
    # instant-ngp's, whose decoders and density this backbone shares: triplane_processing's Adam 1e-4 fits one
    # shape's occupancy planes over thousands of epochs, and no tri-plane reference trains a radiance field here.
    optimizer: ClassVar[OptimizerSpec] = INSTANT_NGP_OPTIMIZER

    @classmethod
    def presets(cls, bound: float = 1.5) -> dict[str, TriplaneConfig]:
        return {
            # triplane_processing's shape tri-plane: 16 channels at 32^2, sum, 63-d PE, std 1e-3 init.
            "published": cls(resolutions=[32], init_std=1e-3, position_frequencies=10),
            # CPU: three resolutions summed per level and concatenated; one hidden decoder layer.
            "cpu": cls(),
        }


class TriplaneField(Field):
    name = "triplane"
    Config = TriplaneConfig
    parameter_roles = {"planes": "features", "density_mlp": "decoder", "color_mlp": "decoder"}
    color_decoder_modules = ("color_mlp",)

    def __init__(self, aabb: torch.Tensor, config: TriplaneConfig):
        super().__init__(aabb, config)
        c = config
        self.planes = MultiPlaneGrid(3, c.channels, c.resolutions, c.aggregate, c.init_std)
        n_in = self.planes.out_dim + (positional_encoding_dim(3, c.position_frequencies)
                                      if c.position_frequencies else 0)
        self.density_mlp = mlp(n_in, c.decoder_width, c.decoder_hidden, c.geometry_features)
        self.color_mlp = mlp(c.sh_degree**2 + c.geometry_features, c.color_width, c.color_hidden, 3)

    def encode(self, positions: torch.Tensor) -> torch.Tensor:
        """Plane features (N, F) of world positions (N, 3)."""
        x = self.normalize(positions) * 2 - 1
        features = self.planes(x)
        if self.config.position_frequencies:
            features = torch.cat([features, positional_encoding(x, self.config.position_frequencies)], dim=-1)
        return features

    def density(self, positions):
        h = self.density_mlp(self.encode(positions))
        return trunc_exp(h[:, 0] + self.config.density_bias), h

    def color(self, features, directions):
        return torch.sigmoid(view_mlp(self.color_mlp, directions, features, self.config.sh_degree))

    @classmethod
    def coordinate_network(cls, dim, n_out):
        """Summed planes at 32, 64, 128 (3-D) or 64, 128, 256 (2-D), 16 channels each, and a 64-wide head."""
        resolutions = [32, 64, 128] if dim == 3 else [64, 128, 256]
        return with_mlp_head(MultiPlaneGrid(dim, 16, resolutions, "sum", init_std=0.1), dim, n_out)
