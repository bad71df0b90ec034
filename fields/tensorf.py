"""TensoRF radiance fields: vector-matrix (VM) and CANDECOMP/PARAFAC (CP) factorisations of a feature grid.

Density: sigma = distance_scale * softplus(s + density_shift), s a sum of factor products. Appearance:
the factor products, mapped by a bias-free basis matrix to a 27-d feature, decoded with view direction
by TensoRF's `MLP_Fea` (features and direction plus 2 positional-encoding frequencies of each, 2^k without
TensoRF's pi, 150 -> 128 -> 128 -> 3). At `shrink_step` the field's box shrinks to the region the trainer's
occupancy grid finds occupied (`shrink_to`: the factors cropped at their grid nodes, density zero outside),
as TensoRF shrinks to its alpha mask's box at its first mask update; the L1 weight drops there too. The
factors are upsampled on TensoRF's schedule (voxel counts log-linear between the initial and final
resolution, over the box of the moment, so after the shrink the voxels cover the object only) through the
`on_training_progress` hook; `regularization` is the L1 norm of the density factors. The current per-axis
resolution and box live in the config, so a checkpoint reloads at the upsampled size over the shrunk box.

`density` returns the normalised positions (N, 3) as its feature: `color` evaluates the appearance
factors only for the samples the renderer keeps, and of those only where the compositing weight exceeds
1e-4 (`color_weight_threshold`: TensoRF's `app_mask = weight > rayMarch_weight_thres`, black elsewhere).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from .base import Field, FieldConfig, mlp, softplus_density
from .coordinate import with_mlp_head
from .encodings import positional_encoding
from .grids import LINE_AXES, PLANE_AXES, line_coords, plane_coords, resize, sample_lines, sample_planes, vm_products
from .optimizer_spec import OptimizerSpec, ParamGroupSpec, Schedule


@dataclass
class TensoRFConfig(FieldConfig):
    density_rank: int = 16  # per plane/line pair (VM) or in total (CP)
    appearance_rank: int = 48
    initial_resolution: int = 128  # voxels per axis of a cube with the box's volume
    final_resolution: int = 300
    upsample_steps: list[int] = field(default_factory=lambda: [2000, 3000, 4000, 5500, 7000])
    resolution: list[int] | None = None  # current (X, Y, Z) resolution; None: the initial one
    init_scale: float = 0.1
    appearance_dim: int = 27
    color_width: int = 128
    feature_frequencies: int = 2
    view_frequencies: int = 2
    density_shift: float = -10.0
    distance_scale: float = 25.0
    # TensoRF configs/lego.txt: the box shrinks at the first alpha-mask update (update_AlphaMask_list[0]), where
    # the L1 weight drops from L1_weight_inital to L1_weight_rest. shrink_step None: neither happens.
    shrink_step: int | None = 2000
    box: list[float] | None = None  # the field's box (6,) once shrunk; None: the scene box
    l1_weight: float = 8e-5
    l1_weight_rest: float = 4e-5
    # TensoRF (apchenstu/TensoRF, opt.py and train.py): Adam, betas (0.9, 0.99), lr_init 0.02 for the factors and
    # lr_basis 1e-3 for the basis matrix and MLP, no weight decay, x lr_decay_target_ratio 0.1 over training.
    optimizer: ClassVar[OptimizerSpec] = OptimizerSpec(
        groups=(ParamGroupSpec("features", 2e-2, roles=("features",)),
                ParamGroupSpec("decoder", 1e-3, roles=("decoder",))),
        betas=(0.9, 0.99), schedule=Schedule(final_ratio=0.1))
    retired_fields: ClassVar[tuple[str, ...]] = ("factor_lr_scale", "network_lr_scale")  # per-role lr scales

    @classmethod
    def presets(cls, bound: float = 1.5) -> dict[str, TensoRFConfig]:
        return {
            # TensoRF VM-192 for lego: ranks 16/48 per pair, 128^3 -> 300^3, upsampled at 2k ... 7k, L1 8e-5.
            "published": cls(),
            # CPU: the same model on a schedule compressed to the ~2k steps a 10-minute CPU run takes, a
            # 64-wide colour MLP, and a density shift of -4 (initial sigma about 0.45, as the hash grid's
            # exp(-1)), so that early rays stop inside the box instead of marching all of it.
            # The box shrinks at the first upsampling, as in the reference.
            "cpu": cls(density_rank=8, appearance_rank=24, initial_resolution=64, final_resolution=200,
                       upsample_steps=[250, 500, 750, 1000], shrink_step=250, color_width=64, density_shift=-4.0),
        }


@dataclass
class TensoRFCPConfig(TensoRFConfig):
    density_rank: int = 96
    appearance_rank: int = 288
    final_resolution: int = 500
    init_scale: float = 0.2
    l1_weight: float = 1e-5
    l1_weight_rest: float = 1e-5

    @classmethod
    def presets(cls, bound: float = 1.5) -> dict[str, TensoRFCPConfig]:
        return {
            # TensoRF CP-384: ranks 96/288, 128^3 -> 500^3, L1 1e-5.
            "published": cls(),
            "cpu": cls(density_rank=48, appearance_rank=96, initial_resolution=64, final_resolution=300,
                       upsample_steps=[250, 500, 750, 1000], shrink_step=250, color_width=64, density_shift=-4.0),
        }


def voxel_resolution(extent: torch.Tensor, n_voxels: float) -> list[int]:
    """Per-axis resolution with about n_voxels cells in total, proportional to the box extents (3,)."""
    voxel = (float(extent.prod()) / n_voxels) ** (1 / 3)
    return [max(2, int(round(float(e) / voxel))) for e in extent]


class VMCoordinateEncoder(nn.Module):
    """Vector-matrix features of coordinates (N, dim) in [-1, 1]: dim 3 gives the 3 * rank plane-line
    products; in 2-D a matrix needs no factorising, so dim 2 samples one dense plane of `rank` channels."""

    def __init__(self, dim: int, rank: int = 16, resolution: int = 128, init_scale: float = 0.1):
        super().__init__()
        self.dim = dim
        n_planes = 1 if dim == 2 else 3
        self.planes = nn.Parameter(init_scale * torch.randn(n_planes, rank, resolution, resolution))
        self.lines = nn.Parameter(init_scale * torch.randn(3, rank, resolution, 1)) if dim == 3 else None
        self.out_dim = n_planes * rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dim == 2:
            return sample_planes(self.planes, x[None])[0]
        products = sample_planes(self.planes, plane_coords(x)) * sample_lines(self.lines, line_coords(x))
        return products.permute(1, 0, 2).reshape(x.shape[0], -1)


class CPCoordinateEncoder(nn.Module):
    """CP features of coordinates (N, dim) in [-1, 1]: per rank, the product of one line per axis."""

    def __init__(self, dim: int, rank: int = 64, resolution: int = 256, init_scale: float = 0.2):
        super().__init__()
        self.lines = nn.Parameter(1.0 + init_scale * torch.randn(dim, rank, resolution, 1))
        self.out_dim = rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sample_lines(self.lines, x.T.contiguous()).prod(0)


class _TensoRF(Field):
    """What VM and CP share: density, colour decoder, shrinking, upsampling, L1, optimiser groups."""

    decoder_roles = {"basis_mlp": "decoder", "color_mlp": "decoder"}
    color_decoder_modules = ("color_mlp",)
    color_weight_threshold = 1e-4  # TensoRF opt.py: rayMarch_weight_thres

    def __init__(self, aabb: torch.Tensor, config: TensoRFConfig):
        super().__init__(aabb, config)
        c = config
        if c.box is not None:
            self.aabb.copy_(torch.tensor(c.box))
        if c.resolution is None:
            c.resolution = voxel_resolution(self.extent, c.initial_resolution**3)
        self.build_factors(c.resolution)
        n_products = self.appearance_products()
        self.basis_mlp = nn.Linear(n_products, c.appearance_dim, bias=False)
        n_in = (c.appearance_dim * (2 * c.feature_frequencies + 1)) + 3 * (2 * c.view_frequencies + 1)
        self.color_mlp = mlp(n_in, c.color_width, 2, 3, bias=True)
        nn.init.zeros_(self.color_mlp[-1].bias)

    # ----- factor layout (per decomposition) -----
    def build_factors(self, resolution: list[int]) -> None:
        raise NotImplementedError

    def crop_factors(self, first: list[int], last: list[int]) -> None:
        """Keep grid nodes first[a] .. last[a] (inclusive) along each axis a of every factor."""
        raise NotImplementedError

    def appearance_products(self) -> int:
        raise NotImplementedError

    def density_raw(self, x: torch.Tensor) -> torch.Tensor:
        """Summed density products s (N,) at box coordinates x (N, 3) in [-1, 1]."""
        raise NotImplementedError

    def appearance_raw(self, x: torch.Tensor) -> torch.Tensor:
        """Appearance products (N, n_products) at x (N, 3) in [-1, 1]."""
        raise NotImplementedError

    def resize_factors(self, resolution: list[int]) -> None:
        raise NotImplementedError

    def density_factors(self) -> list[torch.Tensor]:
        raise NotImplementedError

    @property
    def extent(self) -> torch.Tensor:
        """Side lengths (3,) of the field's box."""
        return self.aabb[3:] - self.aabb[:3]

    # ----- Field interface -----
    def density(self, positions):
        x = self.normalize(positions) * 2 - 1
        sigma = softplus_density(self.density_raw(x), self.config.density_shift, self.config.distance_scale)
        if self.config.box is not None:  # shrunk: nothing outside the box (TensoRF's alpha mask)
            inside = ((positions >= self.aabb[:3]) & (positions <= self.aabb[3:])).all(-1)
            sigma = sigma * inside
        return sigma, x

    def appearance(self, x: torch.Tensor) -> torch.Tensor:
        """The 27-d appearance feature (N, appearance_dim) at box coordinates x (N, 3) in [-1, 1]."""
        return self.basis_mlp(self.appearance_raw(x))

    def appearance_feature(self, features):
        return self.appearance(features)

    def color(self, features, directions):
        c = self.config
        feature = self.appearance(features)
        inputs = [positional_encoding(feature, c.feature_frequencies, base=1.0),
                  positional_encoding(directions, c.view_frequencies, base=1.0)]
        return torch.sigmoid(self.color_mlp(torch.cat(inputs, dim=-1)))

    # ----- training hooks -----
    def shrink_due(self, step: int) -> bool:
        c = self.config
        return not self.unbounded and c.shrink_step is not None and c.box is None and step >= c.shrink_step

    @torch.no_grad()
    def shrink_to(self, box: torch.Tensor) -> bool:
        """Crop the factors to the grid nodes spanning `box` (6,) (nodes keep their values, so densities inside
        are unchanged) and make the nodes' box the field's. False when no node falls outside the box."""
        lo, hi = self.aabb[:3], self.aabb[3:]
        size = torch.tensor(self.config.resolution, device=lo.device)
        node = (hi - lo) / (size - 1)
        box = box.to(lo.device).float()
        first = ((box[:3] - lo) / node).floor().long().clamp(min=0).minimum(size - 2)
        last = ((box[3:] - lo) / node).ceil().long().minimum(size - 1).maximum(first + 1)  # two nodes at least
        cropped = not bool((first == 0).all() and (last == size - 1).all())
        if cropped:
            self.crop_factors(first.tolist(), last.tolist())
            self.aabb.copy_(torch.cat([lo + first * node, lo + last * node]))
            self.config.resolution = (last - first + 1).tolist()
        self.config.box = self.aabb.tolist()
        return cropped

    def target_resolution(self, step: int) -> list[int]:
        c = self.config
        n_up = sum(step >= s for s in c.upsample_steps)
        if n_up == 0:
            return voxel_resolution(self.extent, c.initial_resolution**3)
        lo, hi = math.log(c.initial_resolution**3), math.log(c.final_resolution**3)
        voxels = math.exp(lo + (hi - lo) * n_up / len(c.upsample_steps))
        return voxel_resolution(self.extent, voxels)

    def on_training_progress(self, step: int) -> bool:
        """Upsample to the schedule's voxel count over the current box (right after a shrink between two
        upsamplings too: the level's count over the smaller box)."""
        target = self.target_resolution(step)
        if target == list(self.config.resolution) or math.prod(target) < math.prod(self.config.resolution):
            return False
        self.resize_factors(target)
        self.config.resolution = target
        return True

    def regularization(self):
        weight = self.config.l1_weight if self.config.box is None else self.config.l1_weight_rest
        if not weight:
            return None
        return weight * sum(f.abs().mean() for f in self.density_factors())


def channels_last_parameter(factor: torch.Tensor) -> nn.Parameter:
    """A VM factor (1, C, H, W) as a parameter with its channels innermost (torch.channels_last): a point's C
    values at a plane cell lie side by side, where `vm_products`' native kernel reads and adds them (forward and
    backward 2x faster than on PyTorch's layout: benchmarks/kernels.py --only vm); shapes and state_dict keys
    unchanged."""
    return nn.Parameter(factor.contiguous(memory_format=torch.channels_last))


class TensoRFVMField(_TensoRF):
    """Vector-matrix: s = sum over (plane, line) pairs and ranks of P(x_plane) * v(x_line); factors stored
    channels_last (`channels_last_parameter`)."""

    name = "tensorf-vm"
    Config = TensoRFConfig
    parameter_roles = {"density_planes": "features", "density_lines": "features", "appearance_planes": "features",
                       "appearance_lines": "features", **_TensoRF.decoder_roles}

    @classmethod
    def coordinate_network(cls, dim, n_out):
        return with_mlp_head(VMCoordinateEncoder(dim, resolution=128 if dim == 3 else 256), dim, n_out)

    def build_factors(self, resolution):
        c = self.config

        def planes(rank):
            return nn.ParameterList(
                channels_last_parameter(c.init_scale * torch.randn(1, rank, resolution[b], resolution[a]))
                for a, b in PLANE_AXES)

        def lines(rank):
            return nn.ParameterList(channels_last_parameter(c.init_scale * torch.randn(1, rank, resolution[a], 1))
                                    for a in LINE_AXES)

        self.density_planes, self.density_lines = planes(c.density_rank), lines(c.density_rank)
        self.appearance_planes, self.appearance_lines = planes(c.appearance_rank), lines(c.appearance_rank)

    def appearance_products(self):
        return 3 * self.config.appearance_rank

    def density_raw(self, x):
        return vm_products(list(self.density_planes), list(self.density_lines), x, sum_products=True)

    def appearance_raw(self, x):
        return vm_products(list(self.appearance_planes), list(self.appearance_lines), x)

    def resize_factors(self, resolution):
        for plist, llist in ((self.density_planes, self.density_lines),
                             (self.appearance_planes, self.appearance_lines)):
            for m, (a, b) in enumerate(PLANE_AXES):
                plist[m] = channels_last_parameter(resize(plist[m].data, (resolution[b], resolution[a])))
                llist[m] = channels_last_parameter(resize(llist[m].data, (resolution[LINE_AXES[m]], 1)))

    def crop_factors(self, first, last):
        for plist, llist in ((self.density_planes, self.density_lines),
                             (self.appearance_planes, self.appearance_lines)):
            for m, (a, b) in enumerate(PLANE_AXES):
                plist[m] = channels_last_parameter(plist[m].data[..., first[b]:last[b] + 1, first[a]:last[a] + 1])
                line = LINE_AXES[m]
                llist[m] = channels_last_parameter(llist[m].data[..., first[line]:last[line] + 1, :])

    def density_factors(self):
        return list(self.density_planes) + list(self.density_lines)


class TensoRFCPField(_TensoRF):
    """CP: s = sum over ranks of v_X(x) * v_Y(y) * v_Z(z)."""

    name = "tensorf-cp"
    Config = TensoRFCPConfig
    parameter_roles = {"density_lines": "features", "appearance_lines": "features", **_TensoRF.decoder_roles}

    @classmethod
    def coordinate_network(cls, dim, n_out):
        return with_mlp_head(CPCoordinateEncoder(dim), dim, n_out)

    def build_factors(self, resolution):
        c = self.config

        def lines(rank):
            return nn.ParameterList(nn.Parameter(c.init_scale * torch.randn(1, rank, resolution[a], 1))
                                    for a in range(3))

        self.density_lines, self.appearance_lines = lines(c.density_rank), lines(c.appearance_rank)

    def appearance_products(self):
        return self.config.appearance_rank

    def _product(self, lines, x):
        out = None
        for a, v in enumerate(lines):
            sample = sample_lines(v, x[None, :, a])[0]
            out = sample if out is None else out * sample
        return out

    def density_raw(self, x):
        return self._product(self.density_lines, x).sum(-1)

    def appearance_raw(self, x):
        return self._product(self.appearance_lines, x)

    def resize_factors(self, resolution):
        for llist in (self.density_lines, self.appearance_lines):
            for a in range(3):
                llist[a] = nn.Parameter(resize(llist[a].data, (resolution[a], 1)))

    def crop_factors(self, first, last):
        for llist in (self.density_lines, self.appearance_lines):
            for a in range(3):
                llist[a] = nn.Parameter(llist[a].data[..., first[a]:last[a] + 1, :].contiguous())

    def density_factors(self):
        return list(self.density_lines)
