"""Instant-NGP radiance field: hash-grid encoding, tiny density and colour MLPs, SH view encoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .base import Field, FieldConfig, mlp, trunc_exp
from .coordinate import with_mlp_head
from .encodings import view_mlp
from .hash_encoding import HashGridGeometry, hash_encode, reuse_hash_encoding
from .optimizer_spec import INSTANT_NGP_OPTIMIZER, OptimizerSpec


@dataclass
class HashGridConfig(FieldConfig):
    n_levels: int = 8
    n_features: int = 4
    log2_table_size: int = 17
    base_resolution: int = 16
    max_resolution: float = 2048.0
    density_width: int = 64
    geometry_features: int = 16  # density MLP outputs: log-density + 15 features
    color_width: int = 64
    color_hidden: int = 2
    sh_degree: int = 4
    density_bias: float = -1.0  # sigma = exp(raw + bias), as nerfacc's trunc_exp(x - 1)
    optimizer: ClassVar[OptimizerSpec] = INSTANT_NGP_OPTIMIZER  # instant-ngp's Adam

    @classmethod
    def presets(cls, bound: float = 1.5) -> dict[str, "HashGridConfig"]:
        return {
            # instant-ngp's paper configuration: 16 levels x 2 features, 2^19 rows, growth to 2048*bound.
            "published": cls(n_levels=16, n_features=2, log2_table_size=19, max_resolution=2048.0 * bound),
            # CPU default: instant-ngp's newer 8 x 4 layout (half the lookups) in a 2^17 table that fits the caches.
            "cpu": cls(),
        }


class HashCoordinateEncoder(nn.Module):
    """Hash-grid features (N, L*F) of coordinates (N, dim) in [-1, 1]; 2-D points lie on the z = 0 plane."""

    def __init__(self, dim: int, config: HashGridConfig):
        super().__init__()
        self.dim = dim
        self.geometry = HashGridGeometry.build(config.n_levels, config.log2_table_size, config.base_resolution,
                                               config.max_resolution)
        self.table = nn.Parameter(torch.empty(self.geometry.total_size, config.n_features).uniform_(-1e-4, 1e-4))
        self.out_dim = config.n_levels * config.n_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        unit = (x + 1) / 2
        if self.dim == 2:
            unit = torch.cat([unit, torch.full_like(unit[:, :1], 0.5)], dim=-1)
        return hash_encode(unit.clamp(0, 1), self.table, self.geometry)


class HashGridField(Field):
    name = "hashgrid"
    Config = HashGridConfig
    parameter_roles = {"table": "features", "density_mlp": "decoder", "color_mlp": "decoder"}
    color_decoder_modules = ("color_mlp",)
    trains_in_half_precision = True  # instant-ngp (tiny-cuda-nn) trains in float16

    def __init__(self, aabb: torch.Tensor, config: HashGridConfig):
        super().__init__(aabb, config)
        c = config
        self.geometry = HashGridGeometry.build(c.n_levels, c.log2_table_size, c.base_resolution, c.max_resolution)
        self.table = nn.Parameter(torch.empty(self.geometry.total_size, c.n_features).uniform_(-1e-4, 1e-4))
        self.density_mlp = mlp(c.n_levels * c.n_features, c.density_width, 1, c.geometry_features)
        self.color_mlp = mlp(c.sh_degree**2 + c.geometry_features, c.color_width, c.color_hidden, 3)

    def encode(self, positions: torch.Tensor) -> torch.Tensor:
        """Hash features (N, L*F) of world positions (N, 3)."""
        return hash_encode(self.normalize(positions), self.table, self.geometry)

    def density(self, positions):
        h = self.density_mlp(self.encode(positions))
        return self.sigma_of(h), h

    def marching_density(self, positions):
        """Sigma alone (the density MLP's first output) and the hash encoding, which a training step's gradient
        pass reuses at the samples it keeps."""
        encoding = self.encode(positions)
        return self.sigma_of(self.density_mlp.leading_outputs(encoding, 1)), encoding

    def density_reusing(self, positions, reused):
        if positions.requires_grad:  # camera refinement: the encoding needs its gradient to the positions
            return self.density(positions)
        h = self.density_mlp(reuse_hash_encoding(self.normalize(positions), self.table, self.geometry, reused))
        return self.sigma_of(h), h

    def sigma_of(self, h: torch.Tensor) -> torch.Tensor:
        """Density (N,) from the density MLP's outputs (N, >= 1): exp of the first, shifted by the bias."""
        return trunc_exp(h[:, 0] + self.config.density_bias)

    def color(self, features, directions):
        return torch.sigmoid(view_mlp(self.color_mlp, directions, features, self.config.sh_degree))

    @classmethod
    def coordinate_network(cls, dim, n_out):
        return with_mlp_head(HashCoordinateEncoder(dim, HashGridConfig()), dim, n_out)
