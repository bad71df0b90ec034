"""The Field interface every backbone implements; the renderer and trainer rely on nothing else."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .optimizer_spec import OptimizerSpec
from .relu_mlp import ReluMLP

ROLES = ("features", "decoder")


class SavedConfigError(ValueError):
    """A checkpoint's field configuration that this version cannot rebuild the field from."""


@dataclass
class FieldConfig:
    """Base of the backbones' configuration dataclasses: named presets, the preset a device type uses
    by default (`cpu_preset` on the CPU, `gpu_preset` elsewhere), and the optimiser of the backbone's
    reference (`optimizer`, every backbone declares its own; `optimizer_for`: a preset's). `retired_fields`:
    fields older checkpoints saved that no longer exist (dropped when they load)."""

    cpu_preset: ClassVar[str] = "cpu"
    gpu_preset: ClassVar[str] = "published"
    optimizer: ClassVar[OptimizerSpec]
    retired_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_saved(cls, saved: dict) -> "FieldConfig":
        """The config a checkpoint saved (`Field.config_dict()`), older ones included."""
        return cls(**{k: v for k, v in saved.items() if k not in cls.retired_fields})

    @classmethod
    def presets(cls, bound: float = 1.5) -> dict[str, "FieldConfig"]:
        """Named configurations for a box of half-size `bound`."""
        raise NotImplementedError

    @classmethod
    def default_preset(cls, device_type: str) -> str:
        return cls.cpu_preset if device_type == "cpu" else cls.gpu_preset

    @classmethod
    def optimizer_for(cls, preset: str) -> OptimizerSpec:
        """The optimiser preset `preset` trains with: the backbone's `optimizer`, unless a preset has its own."""
        return cls.optimizer


def within(name: str, module: str) -> bool:
    """True when parameter `name` (dotted) lies under the module at dotted path `module`."""
    return name == module or name.startswith(module + ".")


class Field(nn.Module):
    """A radiance field over an axis-aligned box.

    Subclasses set `name`, `Config` (a FieldConfig dataclass) and `parameter_roles`, take
    `(aabb, config)` in their constructor, and implement `density` and `color`.

    `parameter_roles` names the field's modules or parameters (dotted paths) with their role: "features"
    (grids, planes, encoders) or "decoder" (MLPs, bases); every parameter lies under exactly one of them.
    A backbone whose config picks its modules sets them per instance in its constructor (mlp's "shared" heads).
    The roles give `parameter_split`, the optimiser's groups (`param_groups`) and what distillation copies:
    each decoder module whose name and shapes match the teacher's (PVD's shared heads).
    `color_decoder_modules` names the colour decoder's modules (none by default).

    Optional hooks, with defaults that do nothing, let a backbone steer its own training:
    - `regularization()`: a loss term the trainer adds to the photometric loss each step;
    - `on_training_progress(step)`: called before each step; returns True when the backbone re-created
      its parameters (e.g. upsampled grids), so the trainer builds a fresh optimiser. Whatever a
      checkpoint needs to rebuild the field at its current size must be kept in `config`, which the
      checkpoint saves (`config_dict()`).
    - `shrink_due(step)` / `shrink_to(box)`: when `shrink_due` says so, before step `step`, the trainer passes
      the box (6,) the occupancy grid finds occupied; the field fits its own box (`aabb`) to it, has zero
      density outside, and returns True when it re-created its parameters (e.g. cropped grids). The box is
      the `aabb` buffer, saved with the state;
    - `appearance_feature(features)`: the per-point feature the colour decoder reads; distillation matches
      it between fields that share the colour decoder (`color_decoder_names()`).
    - `coordinate_network(dim, n_out)`: the backbone's encoder and a small head as a plain coordinate
      network, (N, dim) in [-1, 1] -> (N, n_out), for fitting images (dim 2) and SDFs (dim 3).
    - `marching_density(positions)` / `density_reusing(positions, reused)`: sigma alone where the renderer marches
      without gradients, plus per-point values the training step's gradient pass reuses at the samples it keeps
      (the hash grid's encodings); by default density's sigma and nothing to reuse.

    `color_weight_threshold`: the renderer runs `color` only at samples whose compositing weight exceeds it and
    leaves the others black (TensoRF's appearance mask); 0, the default: at every visible sample.
    """

    name: ClassVar[str]
    Config: ClassVar[type[FieldConfig]]
    parameter_roles: dict[str, str]  # on the class, or per instance (see above)
    color_decoder_modules: ClassVar[tuple[str, ...]] = ()
    trains_in_half_precision: ClassVar[bool] = False  # its reference trains under float16 (mixed precision on CUDA)
    color_weight_threshold: ClassVar[float] = 0.0

    def __init__(self, aabb: torch.Tensor, config: Any):
        super().__init__()
        self.config = config
        self.unbounded = False  # content beyond the box, contracted (build_field sets it from the scene)
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).clone())

    def normalize(self, positions: torch.Tensor) -> torch.Tensor:
        """World positions (N, 3) to [0, 1]^3 coordinates. Bounded: the box onto [0, 1]^3 (clamped).
        Unbounded: the box onto [1/4, 3/4]^3 and everything else into the shell around it (`contract`)."""
        lo, hi = self.aabb[:3], self.aabb[3:]
        if self.unbounded:
            return contract(2 * (positions - lo) / (hi - lo) - 1) / 4 + 0.5
        return ((positions - lo) / (hi - lo)).clamp(0.0, 1.0)

    def density(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density sigma (N,) >= 0 and a geometry feature (N, F) at world positions (N, 3)."""
        raise NotImplementedError

    def marching_density(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Density sigma (N,) at world positions (N, 3) where the renderer marches without gradients, and per point
        what `density_reusing` may take instead of computing it again at those positions (N, E), or None (the
        default: density's sigma, nothing to reuse). Only sigma is needed here, not the features."""
        return self.density(positions)[0], None

    def density_reusing(self, positions: torch.Tensor, reused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`density(positions)`, with gradients, given what `marching_density` returned at these positions (N, E),
        with the same parameters."""
        raise NotImplementedError(f"{type(self).__name__}.marching_density offers nothing to reuse")

    def color(self, features: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """RGB (N, 3) in [0, 1] from geometry features (N, F) and unit view directions (N, 3)."""
        raise NotImplementedError

    def forward(self, positions: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density (N,) and RGB (N, 3)."""
        sigma, features = self.density(positions)
        return sigma, self.color(features, directions)

    def parameter_role(self, name: str) -> str:
        """The role of parameter `name`: that of the one module of `parameter_roles` holding it."""
        roles = [role for module, role in self.parameter_roles.items() if within(name, module)]
        if len(roles) != 1 or roles[0] not in ROLES:
            raise ValueError(f"{type(self).__name__}.parameter_roles gives parameter '{name}' the roles {roles}; "
                             f"it needs exactly one of {', '.join(ROLES)}")
        return roles[0]

    def param_groups(self, spec: OptimizerSpec) -> list[dict]:
        """Adam's groups (named: the logs' learning-rate curves) from `spec`: each parameter in the last group
        that claims it (by role, module and shape); groups left empty are dropped."""
        members: list[list[nn.Parameter]] = [[] for _ in spec.groups]
        for name, p in self.named_parameters():
            role = self.parameter_role(name)
            claimed = [i for i, g in enumerate(spec.groups) if g.claims(name, role, p.ndim)]
            if not claimed:
                raise ValueError(f"{type(self).__name__}: no optimiser group of {type(self.config).__name__}"
                                 f".optimizer claims parameter '{name}' (role {role})")
            members[claimed[-1]].append(p)
        return [{"name": g.name, "params": params, "lr": g.lr, "weight_decay": g.weight_decay}
                for g, params in zip(spec.groups, members) if params]

    def regularization(self) -> torch.Tensor | None:
        """Scalar loss term added to the photometric loss, or None."""
        return None

    def on_training_progress(self, step: int) -> bool:
        """Hook before training step `step`; True when parameters were re-created (rebuild the optimiser)."""
        return False

    def shrink_due(self, step: int) -> bool:
        """True when the trainer should call `shrink_to` with the occupied box before training step `step`."""
        return False

    def shrink_to(self, box: torch.Tensor) -> bool:
        """Fit the field's box to the occupied box (6,); True when parameters were re-created (rebuild the
        optimiser)."""
        return False

    def parameter_split(self) -> dict[str, list[str]]:
        """{"features": [...], "decoder": [...]} parameter names, by `parameter_roles`."""
        split: dict[str, list[str]] = {role: [] for role in ROLES}
        for name, _ in self.named_parameters():
            split[self.parameter_role(name)].append(name)
        return split

    def appearance_feature(self, features: torch.Tensor) -> torch.Tensor:
        """The appearance feature (N, A) the colour decoder reads, from `density`'s features (N, F).
        Default: the features themselves."""
        return features

    def color_decoder_names(self) -> list[str]:
        """Parameter names of the colour decoder (PVD's phi^2): those under `color_decoder_modules`."""
        return [n for n, _ in self.named_parameters() if any(within(n, m) for m in self.color_decoder_modules)]

    @classmethod
    def coordinate_network(cls, dim: int, n_out: int, preset: str | None = None) -> nn.Module:
        """A coordinate network (N, dim) in [-1, 1] -> (N, n_out) built from this backbone's encoder."""
        raise NotImplementedError(f"the '{cls.name}' backbone has no coordinate network")

    def config_dict(self) -> dict:
        return asdict(self.config)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def size_megabytes(self) -> float:
        """Memory of the parameters and buffers in MB (10^6 bytes)."""
        tensors = list(self.parameters()) + list(self.buffers())
        return sum(t.numel() * t.element_size() for t in tensors) / 1e6


def clamped_log_density(sigma: torch.Tensor, low: float = -2.0, high: float = 7.0) -> torch.Tensor:
    """PVD's constrained density: log sigma (N,) clamped to [low, high], the space densities are distilled in."""
    return torch.log(sigma.clamp(min=1e-30)).clamp(low, high)


def contract(p: torch.Tensor) -> torch.Tensor:
    """mip-NeRF 360's scene contraction with the L-inf norm (as instant-ngp's and nerfstudio's boxes):
    points (N, 3) with |p|_inf <= 1 stay, the rest map to (2 - 1 / |p|_inf) p / |p|_inf, inside (-2, 2)^3."""
    magnitude = p.abs().amax(-1, keepdim=True).clamp(min=1.0)
    return p * ((2 - 1 / magnitude) / magnitude)


class TruncExp(torch.autograd.Function):
    """exp(x) whose gradient clamps x at 15, as instant-ngp and torch-ngp do, to keep early steps finite."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(max=15.0))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    return TruncExp.apply(x.float())  # in float32 under autocast too: exp overflows float16 above 11


def softplus_density(raw: torch.Tensor, shift: float, scale: float) -> torch.Tensor:
    """TensoRF's density: scale * softplus(raw + shift) (shift -10, distance scale 25 for Blender scenes)."""
    return scale * torch.nn.functional.softplus(raw + shift)


def mlp(n_in: int, width: int, n_hidden: int, n_out: int, bias: bool = False) -> ReluMLP:
    """ReLU MLP with `n_hidden` hidden layers of `width` (tiny-cuda-nn's MLPs have no biases); bias-free
    ones run on the fused CPU kernel where it is available (see relu_mlp.py)."""
    layers, dim = [], n_in
    for _ in range(n_hidden):
        layers += [nn.Linear(dim, width, bias=bias), nn.ReLU(inplace=True)]
        dim = width
    layers.append(nn.Linear(dim, n_out, bias=bias))
    return ReluMLP(*layers)
