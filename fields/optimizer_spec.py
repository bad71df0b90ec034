"""A backbone's optimiser, declared in its config: Adam parameter groups with absolute learning rates, Adam's
betas and eps, and a learning-rate schedule over the fraction of training (so a time-budgeted run maps it onto
its minutes as a step-limited run onto its steps). The trainer builds torch's Adam from it (`adam`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

import torch


def adam(groups: list[dict], **options) -> torch.optim.Adam:
    """torch's Adam over `groups`, fused where torch has the fused form for the parameters' device (CPU since torch
    2.4, CUDA): one pass over each parameter instead of a dozen. On a 2-core CPU: 6x faster on the hash grid's 3.3M
    parameters alone (benchmarks/adam.py), 3 ms less in a 130 ms lego step, where the table no longer sits in the
    cache. The same update rule; the float rounding differs in the last bits."""
    try:
        return torch.optim.Adam(groups, fused=True, **options)
    except RuntimeError:  # an older torch or a device without the fused form
        return torch.optim.Adam(groups, **options)


def keep_fused(optimizer: torch.optim.Optimizer) -> None:
    """After `load_state_dict` of a checkpoint saved by an unfused Adam (whose groups say fused=False): fused again
    when the optimiser was built fused."""
    for group in optimizer.param_groups:
        group["fused"] = optimizer.defaults.get("fused")


@dataclass(frozen=True)
class ParamGroupSpec:
    """One Adam group. A parameter joins the last group of the spec that claims it, so a later, narrower group
    takes its parameters from an earlier, wider one (e.g. the decoder's weight matrices from "every parameter")."""

    name: str
    lr: float
    roles: tuple[str, ...] = ()  # parameters of these roles ("features", "decoder"); empty: every role
    modules: tuple[str, ...] = ()  # ... under these dotted module paths; empty: anywhere
    matrices_only: bool = False  # ... weight matrices (2-D tensors) only
    weight_decay: float = 0.0  # Adam's L2 penalty

    def claims(self, name: str, role: str, ndim: int) -> bool:
        """Whether parameter `name` of role `role` with `ndim` dimensions belongs to this group."""
        return ((not self.roles or role in self.roles)
                and (not self.modules or any(name == m or name.startswith(m + ".") for m in self.modules))
                and (not self.matrices_only or ndim == 2))


@dataclass(frozen=True)
class Schedule:
    """Learning-rate multiplier at a step and a fraction of training in [0, 1]: a linear warm-up from 0.01x over
    `warmup_steps`, x `decay_factor` at each fraction in `decay_at` (step decay), and x `final_ratio`^fraction
    (exponential decay reaching `final_ratio` at the end of training; 1: none)."""

    warmup_steps: int = 0
    decay_at: tuple[float, ...] = ()
    decay_factor: float = 1.0
    final_ratio: float = 1.0

    def factor(self, step: int, progress: float) -> float:
        warm = min(1.0, 0.01 + 0.99 * step / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        stepped = self.decay_factor ** sum(progress >= p for p in self.decay_at)
        return warm * stepped * self.final_ratio ** min(max(progress, 0.0), 1.0)


# NerfAcc's MLP NeRF schedule (examples/train_mlp_nerf.py; CAM_nerfacc the same): MultiStepLR x0.33 at 1/2, 3/4,
# 5/6 and 9/10 of training, no warm-up.
NERFACC_MLP_SCHEDULE = Schedule(decay_at=(0.5, 0.75, 5 / 6, 0.9), decay_factor=0.33)


@dataclass(frozen=True)
class OptimizerSpec:
    """Adam over `groups` (in this order) with `betas` and `eps`, its rates multiplied by `schedule.factor`."""

    groups: tuple[ParamGroupSpec, ...]
    betas: tuple[float, float] = (0.9, 0.999)  # torch's defaults
    eps: float = 1e-8
    schedule: Schedule = field(default_factory=Schedule)

    def scaled(self, scale: float) -> OptimizerSpec:
        """Every group's learning rate times `scale`."""
        return replace(self, groups=tuple(replace(g, lr=g.lr * scale) for g in self.groups))

    def with_weight_decay(self, weight_decay: float) -> OptimizerSpec:
        """The groups that decay their weights decay them by `weight_decay` instead."""
        return replace(self, groups=tuple(replace(g, weight_decay=weight_decay) if g.weight_decay else g
                                          for g in self.groups))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "optimizer") -> OptimizerSpec:
        """The spec `to_dict` wrote (e.g. read back from a run's config.json); errors name `source` and the field."""
        try:
            groups = tuple(_build(ParamGroupSpec, g, f"{source}.groups[{i}]") for i, g in enumerate(data["groups"]))
            schedule = _build(Schedule, data.get("schedule", {}), f"{source}.schedule")
            spec = cls(groups, betas=tuple(data.get("betas", cls.betas)), eps=float(data.get("eps", cls.eps)),
                       schedule=schedule)
        except (KeyError, TypeError) as err:
            raise ValueError(f"{source}: not an optimiser spec ({err})") from None
        if not spec.groups or len(spec.betas) != 2:
            raise ValueError(f"{source}: needs at least one group and two betas")
        return spec


def _build(cls: type, data: dict, source: str):
    """Dataclass `cls` from the dict `data`, lists turned into tuples; unknown keys name `source`."""
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {', '.join(unknown)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


# instant-ngp (nerfacc's train_ngp_nerf_occ.py the same): Adam 1e-2, betas (0.9, 0.99), eps 1e-15, L2 1e-6 on the
# MLPs' weight matrices; linear warm-up from 0.01x over 100 steps, x0.33 at 1/2, 3/4 and 9/10 of training. The hash
# grid's, and the one the backbones whose reference rates train slower on a CPU budget keep (docs/backbones.md).
INSTANT_NGP_OPTIMIZER = OptimizerSpec(
    groups=(ParamGroupSpec("field", 1e-2),
            ParamGroupSpec("decoder weights", 1e-2, roles=("decoder",), matrices_only=True, weight_decay=1e-6)),
    betas=(0.9, 0.99), eps=1e-15, schedule=Schedule(warmup_steps=100, decay_at=(0.5, 0.75, 0.9), decay_factor=0.33))
