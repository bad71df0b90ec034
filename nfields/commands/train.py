"""`fields train`: every TrainConfig field is a flag; `--config` starts from a run's config.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..engine.config import RECORDED_FIELDS, TrainConfig, read_config_json
from ..errors import FieldsError
from .options import add_options, build, given
from .shared import ViewerAddress


@dataclass
class TrainOptions:
    """How to run the training, beside its TrainConfig."""
    # a run's config.json to start from: flags override it; its output folder is not reused
    config: str | None = dataclasses.field(default=None, metadata={"metavar": "FILE"})
    # continue the run in this folder from its checkpoint (only --steps, --time-budget and --check-sync apply;
    # torchrun's restarts resume the --output folder by themselves)
    resume: str | None = dataclasses.field(default=None, metadata={"metavar": "RUN"})
    view: bool = False  # serve the live viewer while training (see `fields view`)
    view_share: float = 0.5  # most of the time the viewer may take from training while both run (0-1]


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a radiance field on a scene")
    add_options(p, TrainConfig, exclude=RECORDED_FIELDS)
    add_options(p, TrainOptions)
    add_options(p, ViewerAddress, prefix="view")
    p.set_defaults(handler=run)


def train_config(args) -> TrainConfig:
    """TrainConfig from its defaults, then --config FILE (less its output folder), then the flags given.

    Without --steps, a --time-budget run is limited by time only (steps 0)."""
    base, file = {}, build(TrainOptions, args).config
    if file:
        base = read_config_json(Path(file).expanduser(), TrainConfig, "config file does not exist")
        base.pop("output", None)
        # The file's optimiser is resolved again (the backbone's, with its lr scale and overrides and the flags'); a
        # file from before backbones declared theirs holds absolute rates for instant-ngp's, which do not apply.
        if "optimizer" not in base:
            for name in ("lr", "weight_decay", "warmup_steps", "decay_at", "decay_factor"):
                base.pop(name, None)
        base.pop("optimizer", None)
    flags = given(args, TrainConfig)
    if "steps" not in flags and flags.get("time_budget"):
        flags["steps"] = 0
    if flags.get("data"):
        flags["data"] = str(Path(flags["data"]).expanduser().resolve())
    return TrainConfig(**{**base, **flags})


def run(args) -> int:
    from ..engine.distributed import launch_rank, launched_ranks, restarted_run
    from ..engine.evaluation import scores_line
    from ..engine.trainer import resume, train

    options = build(TrainOptions, args)
    monitor = None
    if options.view and launched_ranks() > 1:
        raise FieldsError("--view: the live viewer does not run under torchrun; view the run folder afterwards "
                          "with `fields view RUN`")
    if options.view:
        from ..viewer import LiveViewer

        address = build(ViewerAddress, args, prefix="view")
        monitor = LiveViewer(address.host, address.port, viewer_share=options.view_share)
    run_dir = options.resume or restarted_run(given(args, TrainConfig).get("output"))
    if run_dir:
        overrides = {k: v for k, v in given(args, TrainConfig).items()
                     if k in ("steps", "time_budget", "check_sync")}
        result = resume(Path(run_dir), overrides, monitor=monitor)
    else:
        result = train(train_config(args), monitor=monitor)
    if monitor is not None:
        from ..viewer import serve_until_interrupted

        print("training finished; the viewer stays up until Ctrl-C", flush=True)
        serve_until_interrupted(monitor)
    if result.metrics is None:
        return 130
    if launch_rank() != 0:  # rank 0 reports the run
        return 0
    m = result.metrics
    print(f"val {scores_line(m)}  ({m['views']} views, white background) "
          f"after {result.step} steps, {result.train_seconds / 60:.1f} min of training")
    print(f"run folder: {result.run_dir}  (metrics.json, renders_val/, psnr_vs_time.png, checkpoint.pt, "
          "tensorboard event files)")
    return 0
