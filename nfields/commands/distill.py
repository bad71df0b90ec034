"""`fields distill`: a trained run converted into another backbone (PVD-AL); every DistillConfig field a flag."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from ..apps.distillation.settings import ACTIVE_LEVELS, DistillConfig
from ..errors import FieldsError
from .options import add_options, build, given
from .shared import add_shared, shared


@dataclass
class DistillRun:
    """How to run the distillation, beside its DistillConfig (the arguments of `distill`)."""
    preset: str | None = None  # student preset; None: the device's
    steps: int | None = dataclasses.field(default=None, metadata={"min": 1})  # distillation steps
    time_budget: float | None = None  # minutes of distillation; stops at whichever limit comes first
    output: str | None = None  # run folder; None: runs/<scene>-<student>-distilled-<time>
    overwrite: bool = False  # distil into an --output folder that holds other files (a run there is still refused)
    resume: str | None = dataclasses.field(default=None, metadata={"metavar": "RUN"})  # continue this distillation
    # target samples per step; None: 2^13 on CPU (many small steps), 2^18 on CUDA
    samples_per_step: int | None = dataclasses.field(default=None, metadata={"min": 1})
    seed: int = 0  # random seed
    snapshot_minutes: list[float] = dataclasses.field(default_factory=list)  # keep checkpoints at these minutes


def _levels(text: str) -> tuple[str, ...]:
    """'pose,ray' -> ('pose', 'ray'); 'none' -> ()."""
    return () if text.strip().lower() == "none" else tuple(a.strip() for a in text.split(",") if a.strip())


OVERRIDES = {
    "teacher": {"required": False, "metavar": "RUN",
                "help": "the trained run folder to distil (required without --resume)"},
    "student": {"required": False, "help": "the backbone to distil into: hashgrid, mlp, tensorf-vm, tensorf-cp, "
                                           "triplane, rbf, cam (required without --resume)"},
    "stages": {"metavar": ("FEATURES", "POINTS")},
    "active": {"type": _levels, "nargs": None, "metavar": "LEVELS",
               "help": f"active-learning levels, comma-separated, of {', '.join(ACTIVE_LEVELS)}; or 'none'"},
}


def add_parser(sub) -> None:
    p = sub.add_parser("distill", help="convert a trained run into another backbone (PVD-AL distillation)")
    add_options(p, DistillConfig, overrides=OVERRIDES)
    add_options(p, DistillRun)
    add_shared(p, "threads", "device", "data_root", "check_sync",
               help={"data_root": "where the teacher's scene lies, if not where it was trained"})
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..apps.distillation import distill, resume_distillation
    from ..engine.distributed import launch_rank, restarted_run
    from ..engine.evaluation import scores_line

    o = build(DistillRun, args)
    o.resume = o.resume or restarted_run(o.output)  # torchrun's restarts resume the --output folder
    if o.resume:
        overrides = {k: v for k, v in given(args, DistillRun).items() if k in ("steps", "time_budget")}
        if "check_sync" in vars(args):
            overrides["check_sync"] = args.check_sync
        result = resume_distillation(o.resume, overrides)
    else:
        if not hasattr(args, "teacher") or not hasattr(args, "student"):
            raise FieldsError("give --teacher RUN and --student NAME (or --resume RUN)")
        s = shared(args)
        result = distill(build(DistillConfig, args), steps=o.steps, time_budget=o.time_budget, output=o.output,
                         preset=o.preset, threads=s["threads"], seed=o.seed, device=s["device"],
                         snapshot_minutes=o.snapshot_minutes, data_root=s["data_root"],
                         samples_per_step=o.samples_per_step, overwrite=o.overwrite, check_sync=s["check_sync"])
    if result.metrics is None:
        return 130
    if launch_rank() != 0:  # rank 0 reports the run
        return 0
    m = result.metrics
    print(f"val {scores_line(m)}  ({m['views']} views), "
          f"{m['psnr_vs_teacher']:.2f} dB against the teacher's renders, after {result.step} steps, "
          f"{result.train_seconds / 60:.1f} min")
    print(f"run folder: {result.run_dir}  (metrics.json, renders_val/, psnr_vs_time.png, checkpoint.pt)")
    return 0
