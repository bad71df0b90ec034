"""Gaussian RBFNet (GNF): one layer of Gaussian RBF units acting on features of a low-resolution grid
encoding, then a linear output. The encoder is a multi-level tri-plane (K-planes layout) whose planes
are summed: its features start near 0, where the units' centres start (U(+-1e-4)), so every unit is
active at first; with K-planes' product of planes near 1 the units start at exp(-|F|^2 / 2) ~ 0.
Radiance head: density softplus(o_0 - 10) * 25 (the CPU preset: exp(o_0 - 1)) and colour
sigmoid(sum_k SH_k(d) c_k) per channel from 16 SH coefficients (the released code's "degree 3")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from .base import Field, FieldConfig, softplus_density, trunc_exp
from .coordinate import CoordinateNetwork
from .encodings import spherical_harmonics
from .grids import MultiPlaneGrid
from .optimizer_spec import INSTANT_NGP_OPTIMIZER, OptimizerSpec


class GaussianRBFLayer(nn.Module):
    """phi_i(F) = exp(-1/2 sum_d beta_id (F_d - mu_id)^2) for N units, then Linear(N -> n_out).

    Centres start at U(-1e-4, 1e-4) and log-precisions at 0 (precisions 1), as in the released code.
    `linear_skip` adds the v1 paper's linear term on F. (B, D) -> (B, n_out).
    """

    def __init__(self, n_in: int, n_units: int, n_out: int, linear_skip: bool = False):
        super().__init__()
        self.centres = nn.Parameter(torch.empty(n_units, n_in).uniform_(-1e-4, 1e-4))
        self.log_precisions = nn.Parameter(torch.zeros(n_units, n_in))
        self.output = nn.Linear(n_units, n_out)
        self.skip = nn.Linear(n_in, n_out, bias=False) if linear_skip else None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        beta = self.log_precisions.exp()
        # d^2 = (F*F) beta^T - 2 F (beta*mu)^T + sum_d beta mu^2: three matmuls, O(B N D).
        d2 = (features * features) @ beta.T - 2 * features @ (beta * self.centres).T \
            + (beta * self.centres**2).sum(-1)
        out = self.output(torch.exp(-0.5 * d2.clamp(min=0)))
        return out + self.skip(features) if self.skip is not None else out


@dataclass
class RBFConfig(FieldConfig):
    channels: int = 4
    resolutions: list[int] = field(default_factory=lambda: [32, 64, 128, 256])  # K-planes levels
    init_std: float = 0.1  # planes start at U(-std, std)
    n_units: int = 32
    linear_skip: bool = False
    sh_degree: int = 4  # 16 coefficients per channel
    density_activation: str = "softplus"  # softplus: scale * softplus(o + shift); exp: exp(o + shift)
    density_shift: float = -10.0
    distance_scale: float = 25.0
    # instant-ngp's Adam (as hashgrid), on which the CPU preset was tuned (lego val 30.15 dB in 10 minutes).
    # GNF's NeRF setting (../shared/docs/methods-backbones.md, section 4: Adam (0.9, 0.99), 2e-2 for the encoder
    # and the RBF units, 1e-3 for the output layers, exponential decay to 0.1x) trained slower on a CPU budget:
    # lego val 20.45 dB against 22.00 after 500 steps (docs/backbones.md, "Optimisers").
    optimizer: ClassVar[OptimizerSpec] = INSTANT_NGP_OPTIMIZER

    @classmethod
    def presets(cls, bound: float = 1.5) -> dict[str, RBFConfig]:
        return {
            # GNF's radiance setting: N = 32 units, output 1 + 3 x 16, K-planes encoder (here at 300^2 max).
            "published": cls(channels=8, resolutions=[64, 128, 300]),
            # CPU: the v1 paper's linear term on the features and the hash grid's density exp(o - 1), both
            # for faster progress in short runs (softplus(o - 10) * 25 needs large outputs to turn opaque).
            "cpu": cls(linear_skip=True, density_activation="exp", density_shift=-1.0),
        }


class RBFField(Field):
    name = "rbf"
    Config = RBFConfig
    # No separate colour decoder: the RBF layer emits density and SH colour coefficients together.
    parameter_roles = {"encoder": "features", "rbf_mlp": "decoder"}

    def __init__(self, aabb: torch.Tensor, config: RBFConfig):
        super().__init__(aabb, config)
        c = config
        self.encoder = MultiPlaneGrid(3, c.channels, c.resolutions, "sum", c.init_std)
        self.rbf_mlp = GaussianRBFLayer(self.encoder.out_dim, c.n_units, 1 + 3 * c.sh_degree**2, c.linear_skip)

    def density(self, positions):
        out = self.rbf_mlp(self.encoder(self.normalize(positions) * 2 - 1))
        c = self.config
        sigma = trunc_exp(out[:, 0] + c.density_shift) if c.density_activation == "exp" \
            else softplus_density(out[:, 0], c.density_shift, c.distance_scale)
        return sigma, out[:, 1:]

    def color(self, features, directions):
        sh = spherical_harmonics(directions, self.config.sh_degree)  # (N, K)
        coefficients = features.view(-1, 3, sh.shape[-1])
        return torch.sigmoid((coefficients * sh[:, None]).sum(-1))

    @classmethod
    def coordinate_network(cls, dim, n_out):
        """Plane encoder (4 levels x 8 channels, three summed planes in 3-D), 64 RBF units, linear output."""
        resolutions = [16, 32, 64, 128] if dim == 3 else [32, 64, 128, 256]
        encoder = MultiPlaneGrid(dim, 8, resolutions, "sum", init_std=0.1)
        return CoordinateNetwork(encoder, GaussianRBFLayer(encoder.out_dim, 64, n_out), dim, n_out)
