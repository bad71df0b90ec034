"""Coordinate-Aware Modulation (CAM): an MLP whose hidden features, after each hidden linear layer, are
(optionally) normalised, then scaled and shifted by scalars interpolated from small grids:
h' = gamma(x) * Norm(h) + beta(x). Gamma starts at 1 and beta at 0, so CAM starts as the plain MLP.

Radiance fields follow the NerfAcc static-scene variant (CAM_nerfacc/examples/radiance_fields/mlp.py): NeRF's
MLP (Xavier-uniform weights, zero biases, the encoded input re-joined after hidden layer `skip_layer`, ReLU
density, a bottleneck feature and one 128-wide colour layer) on sin(2^k x) of world coordinates, with a
tri-plane per modulated layer over the box. Its two known bugs are fixed: the planes are summed, not
multiplied (zero-initialised beta planes multiplied together never train), and the grids really get their
10x learning rate. The `cpu` preset modulates the mlp backbone's network instead, with its optimiser (the
README says why).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .base import Field, FieldConfig, SavedConfigError, mlp, trunc_exp
from .coordinate import CoordinateNetwork, FourierFeatures
from .encodings import positional_encoding, positional_encoding_dim
from .grids import MultiPlaneGrid
from .optimizer_spec import INSTANT_NGP_OPTIMIZER, NERFACC_MLP_SCHEDULE, OptimizerSpec, ParamGroupSpec
from .relu_mlp import fused_relu_layers

POSITION_ENCODINGS = ("world", "box")
DENSITY_ACTIVATIONS = ("relu", "trunc_exp")


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
    """ReLU MLP (N, n_in) -> (N, out_dim) with CAM after every hidden linear layer, before its activation.

    normalization: "none" (NerfAcc), or "layer" (per-sample layer norm without affine, the image task).
    skip_layer: the input is concatenated to the output of hidden layer skip_layer (NerfAcc's, and NeRF's,
    skip: layers i with i % skip_layer == 0, i > 0); 0: never. out_dim is width, plus n_in when the last
    layer is one of them.
    """

    def __init__(self, n_in: int, width: int, depth: int, coord_dim: int, grid_resolution: int,
                 normalization: str = "none", skip_layer: int = 0):
        super().__init__()
        if normalization not in ("none", "layer"):
            raise ValueError(f"CAM normalization must be 'none' or 'layer', got '{normalization}'")
        self.normalization = normalization
        self.skips = {i for i in range(1, depth) if skip_layer > 0 and i % skip_layer == 0}
        dims = [n_in] + [width + (n_in if i in self.skips else 0) for i in range(depth)]
        self.out_dim = dims[-1]
        self.layers_mlp = nn.ModuleList(nn.Linear(dims[i], width) for i in range(depth))
        self.modulation = CoordinateModulation(coord_dim, depth, grid_resolution)

    def forward(self, x: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        return self.layers(x, *self.modulation(coords.detach()))

    @property
    def skip_layers(self) -> tuple[int, ...]:
        """The layers (counting the head after the trunk) whose input has x appended: the fused kernel's
        `skip_layers`."""
        return tuple(i + 1 for i in sorted(self.skips))

    def with_head(self, head: nn.Linear, x: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """head(self(x, coords)) (N, head.out_features): trunk and head in one pass of the fused CPU kernel (the
        modulation and the skip in it) where it runs and there is no normalization; else layer by layer."""
        gamma, beta = self.modulation(coords.detach())
        if self.normalization == "none":
            y = fused_relu_layers([*self.layers_mlp, head], x, skip_layers=self.skip_layers, gamma=gamma, beta=beta)
            if y is not None:
                return y
        return head(self.layers(x, gamma, beta))

    def layers(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """The layers one by one (PyTorch; the fused kernel's twin): x (N, n_in), gamma and beta (N, depth)."""
        h = x
        for i, layer in enumerate(self.layers_mlp):
            h = layer(h)
            if self.normalization == "layer":
                h = F.layer_norm(h, h.shape[-1:], eps=1e-5)
            h = torch.relu(gamma[:, i:i + 1] * h + beta[:, i:i + 1])
            if i in self.skips:
                h = torch.cat([h, x], dim=-1)
        return h


class CAMCoordinateNetwork(CoordinateNetwork):
    """CAM's image network (FFN: random Fourier features, sigma 10, 256 frequencies; 3 ReLU layers with layer
    norm and modulation grids over the input coordinates: 32^2 in 2-D, tri-planes of 32^2 in 3-D) and a linear
    output; CAM's learning rates, 1e-2 for the grids and 1e-3 for the MLP. Width 128 (CAM's is 256), the mlp
    backbone's: on two CPU cores the 256-wide network fits lego's 400x400 view to 23.6 dB in 30 s (150 steps),
    the 128-wide one to 26.9 dB (336 steps), and the bunny SDF in 45 s to IoU 0.66 against 0.81."""

    def __init__(self, dim: int, n_out: int, width: int = 128, depth: int = 3, grid_resolution: int = 32):
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
    position_frequencies: int = 10  # sin(2^k x), k < 10, of world coordinates (box centre at 0)
    direction_frequencies: int = 4
    width: int = 256
    depth: int = 8
    skip_layer: int = 4  # the encoded position re-joins after hidden layer 4 (0: never)
    grid_resolution: int = 512  # per tri-plane side, one gamma/beta pair per hidden layer
    normalization: str = "none"
    feature_width: int = 256  # the bottleneck feature fed to the colour layer
    color_width: int = 128
    # "world": sin(2^k x) of world coordinates about the box centre (CAM_nerfacc); "box": sin(2^k pi x) of the
    # box's [-1, 1]^3 (NeRF's paper; the mlp backbone's)
    position_encoding: str = "world"
    # "relu" (CAM_nerfacc), or "trunc_exp": exp(x - 1), instant-ngp's (the mlp backbone's)
    density_activation: str = "relu"
    # CAM_nerfacc's train_mlp_nerf.py: Adam (torch's betas and eps), 5e-4 for the network and 5e-3 for the grids
    # (its name filter misses the grids, which the fix applies), no weight decay; NerfAcc's steps x0.33.
    optimizer: ClassVar[OptimizerSpec] = OptimizerSpec(
        groups=(ParamGroupSpec("decoder", 5e-4), ParamGroupSpec("features", 5e-3, roles=("features",))),
        schedule=NERFACC_MLP_SCHEDULE)

    # The cpu preset's: instant-ngp's Adam, the mlp backbone's (ten minutes on two cores are a few thousand steps,
    # where NerfAcc's 5e-4 leaves an MLP NeRF far behind), with the grids at 3e-3: at 1e-2 and above they
    # destabilise it (docs/backbones.md, "cam's cpu preset").
    cpu_optimizer: ClassVar[OptimizerSpec] = replace(INSTANT_NGP_OPTIMIZER, groups=INSTANT_NGP_OPTIMIZER.groups + (
        ParamGroupSpec("modulation grids", 3e-3, roles=("features",)),))

    @classmethod
    def optimizer_for(cls, preset: str) -> OptimizerSpec:
        return cls.cpu_optimizer if preset == "cpu" else cls.optimizer

    @classmethod
    def from_saved(cls, saved: dict) -> CAMConfig:
        if "density_bias" in saved:  # saved before the reference trunk, whose weights would load with other meanings
            raise SavedConfigError("this cam checkpoint predates CAM's reference trunk (ReLU density, encoding of "
                                   "world coordinates, skip); it cannot be rebuilt: train it again")
        return super().from_saved(saved)

    @classmethod
    def presets(cls, bound: float = 1.5) -> dict[str, CAMConfig]:
        return {
            # NerfAcc static CAM: 8 x 256 trunk with a skip after layer 4, tri-planes of 512^2 per layer.
            "published": cls(),
            # CPU: the mlp backbone's network (4 x 128, no skip, exp density, sin(2^k pi x) over the box, a 64-d
            # feature and a 64-wide colour layer) with CAM's modulation, tri-planes of 128^2: CAM's claim is about
            # the MLP it modulates, and on two cores this is the MLP that trains best.
            "cpu": cls(width=128, depth=4, skip_layer=0, grid_resolution=128, feature_width=64, color_width=64,
                       position_encoding="box", density_activation="trunc_exp"),
            # CPU, the reference network at half the depth and width (skip after layer 2), with CAM's optimiser.
            "reference-small": cls(width=128, depth=4, skip_layer=2, grid_resolution=128, feature_width=128,
                                   color_width=64),
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
        for name, allowed in (("position_encoding", POSITION_ENCODINGS), ("density_activation", DENSITY_ACTIVATIONS)):
            if getattr(c, name) not in allowed:
                raise ValueError(f"cam config: '{name}' must be one of {', '.join(allowed)}, got '{getattr(c, name)}'")
        self.trunk_mlp = ModulatedMLP(positional_encoding_dim(3, c.position_frequencies), c.width, c.depth, 3,
                                      c.grid_resolution, c.normalization, c.skip_layer)
        self.density_head = nn.Linear(self.trunk_mlp.out_dim, 1 + c.feature_width)  # sigma and bottleneck layers
        n_dir = positional_encoding_dim(3, c.direction_frequencies)
        self.color_mlp = mlp(c.feature_width + n_dir, c.color_width, 1, 3, bias=True)  # the fused kernel's form
        for module in self.modules():  # NerfAcc's MLP initialisation
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def density(self, positions):
        c = self.config
        unit = self.normalize(positions)  # [0, 1]^3 over the box (contracted when unbounded)
        box = unit * 2 - 1
        if c.position_encoding == "world":
            centred = (unit - 0.5) * (self.aabb[3:] - self.aabb[:3])  # world units about the box centre
            encoded = positional_encoding(centred, c.position_frequencies, base=1.0)
        else:
            encoded = positional_encoding(box, c.position_frequencies)
        out = self.trunk_mlp.with_head(self.density_head, encoded, box)
        sigma = torch.relu(out[:, 0]) if c.density_activation == "relu" else trunc_exp(out[:, 0] - 1.0)
        return sigma, out[:, 1:]

    def color(self, features, directions):
        encoded = positional_encoding(directions, self.config.direction_frequencies, base=1.0)
        return torch.sigmoid(self.color_mlp(torch.cat([features, encoded], dim=-1)))

    @classmethod
    def coordinate_network(cls, dim, n_out):
        return CAMCoordinateNetwork(dim, n_out)
