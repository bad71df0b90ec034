"""Coordinate-Aware Modulation (CAM): an MLP whose hidden features, after each hidden linear layer, are
(optionally) normalised, then scaled and shifted by scalars interpolated from small grids:
h' = gamma(x) * Norm(h) + beta(x). Gamma starts at 1 and beta at 0, so CAM starts as the plain MLP.

Radiance fields follow the NerfAcc static-scene variant (grids over position, a tri-plane per
modulated layer) with its two known bugs fixed: the planes are summed, not multiplied (zero-initialised
beta planes multiplied together never train), and the grids really get their 10x learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import Field, FieldConfig, trunc_exp
from .coordinate import CoordinateNetwork, FourierFeatures
from .encodings import positional_encoding, positional_encoding_dim
from .grids import MultiPlaneGrid


class CoordinateModulation(nn.Module):
    """Per-layer scalar gamma and beta (N, n_layers) from grids over coordinates (N, dim) in [-1, 1]."""

    def __init__(self, dim: int, n_layers: int, resolution: int):
        super().__init__()
        self.n_layers = n_layers
        self.grid = MultiPlaneGrid(dim, 2 * n_layers, [resolution], "sum", init_std=0.0)
        n_planes = self.grid.planes[0].shape[0]
        with torch.no_grad():  # summed planes: gamma sums to 1, beta to 0
            self.grid.planes[0][:, :n_layers] = 1.0 / n_planes

    def forward(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = self.grid(coords)
        return values[:, :self.n_layers], values[:, self.n_layers:]


class ModulatedMLP(nn.Module):
    """ReLU MLP (N, n_in) -> (N, width) with CAM after every hidden linear layer.

    normalization: "none" (NerfAcc), or "layer" (per-sample layer norm without affine, the image task).
    """

    def __init__(self, n_in: int, width: int, depth: int, coord_dim: int, grid_resolution: int,
                 normalization: str = "none"):
        super().__init__()
        if normalization not in ("none", "layer"):
            raise ValueError(f"CAM normalization must be 'none' or 'layer', got '{normalization}'")
        self.normalization = normalization
        self.layers_mlp = nn.ModuleList(nn.Linear(n_in if i == 0 else width, width) for i in range(depth))
        self.modulation = CoordinateModulation(coord_dim, depth, grid_resolution)

    def forward(self, h: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.modulation(coords.detach())
        for i, layer in enumerate(self.layers_mlp):
            h = layer(h)
            if self.normalization == "layer":
                h = F.layer_norm(h, h.shape[-1:], eps=1e-5)
            h = torch.relu(gamma[:, i:i + 1] * h + beta[:, i:i + 1])
        return h


class CAMCoordinateNetwork(CoordinateNetwork):
    """CAM's image network (FFN: random Fourier features, sigma 10, 256 frequencies; 3 x 256 ReLU layers
    with layer norm and modulation grids over the input coordinates: 32^2 in 2-D, tri-planes of 32^2 in
    3-D) and a linear output; CAM's learning rates, 1e-2 for the grids and 1e-3 for the MLP."""

    def __init__(self, dim: int, n_out: int, width: int = 256, depth: int = 3, grid_resolution: int = 32):
        encoder = FourierFeatures(dim, 256, 10.0)
        head = ModulatedMLP(encoder.out_dim, width, depth, dim, grid_resolution, normalization="layer")
        super().__init__(encoder, head, dim, n_out, lr=1e-2, decoder_lr=1e-3)
        self.output = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.head(self.encoder(x), x))

    def parameter_split(self):
        names = [n for n, _ in self.named_parameters()]
        grids = [n for n in names if ".modulation." in n]
        return {"features": grids, "decoder": [n for n in names if n not in grids]}


@dataclass
class CAMConfig(FieldConfig):
    position_frequencies: int = 10
    direction_frequencies: int = 4
    width: int = 128
    depth: int = 4
    grid_resolution: int = 128  # per tri-plane side, one gamma/beta pair per hidden layer
    normalization: str = "none"
    feature_width: int = 64
    color_width: int = 64
    density_bias: float = -1.0
    grid_lr_scale: float = 10.0

    @classmethod
    def presets(cls, bound: float = 1.5) -> dict[str, CAMConfig]:
        return {
            # NerfAcc static CAM: 8 x 256 trunk, tri-planes of 512^2 per layer over position.
            "published": cls(width=256, depth=8, grid_resolution=512, feature_width=256, color_width=128),
            "cpu": cls(),
        }


class CAMField(Field):
    name = "cam"
    Config = CAMConfig
    parameter_roles = {"trunk_mlp.layers_mlp": "decoder", "trunk_mlp.modulation": "features",
                       "density_head": "decoder", "color_mlp": "decoder"}
    color_decoder_modules = ("color_mlp",)

    def __init__(self, aabb: torch.Tensor, config: CAMConfig):
        super().__init__(aabb, config)
        c = config
        self.trunk_mlp = ModulatedMLP(positional_encoding_dim(3, c.position_frequencies), c.width, c.depth, 3,
                                      c.grid_resolution, c.normalization)
        self.density_head = nn.Linear(c.width, 1 + c.feature_width)
        n_dir = positional_encoding_dim(3, c.direction_frequencies)
        self.color_mlp = nn.Sequential(
            nn.Linear(c.feature_width + n_dir, c.color_width), nn.ReLU(inplace=True), nn.Linear(c.color_width, 3)
        )

    def density(self, positions):
        x = self.normalize(positions) * 2 - 1
        h = self.trunk_mlp(positional_encoding(x, self.config.position_frequencies), x)
        out = self.density_head(h)
        return trunc_exp(out[:, 0] + self.config.density_bias), out[:, 1:]

    def color(self, features, directions):
        encoded = positional_encoding(directions, self.config.direction_frequencies)
        return torch.sigmoid(self.color_mlp(torch.cat([features, encoded], dim=-1)))

    def param_groups(self, lr, weight_decay):
        named = dict(self.named_parameters())
        split = self.parameter_split()
        return [
            {"name": "features", "params": [named[n] for n in split["features"]], "lr": lr * self.config.grid_lr_scale,
             "weight_decay": 0.0},
            {"name": "decoder", "params": [named[n] for n in split["decoder"]], "lr": lr, "weight_decay": weight_decay},
        ]

    @classmethod
    def coordinate_network(cls, dim, n_out):
        return CAMCoordinateNetwork(dim, n_out)
