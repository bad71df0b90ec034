"""`fields eval`: PSNR, SSIM and (with the lpips extra) LPIPS of a trained run on a split."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from .options import add_options, build
from .shared import RUN_FOLDER, add_shared, shared


@dataclass
class EvalOptions:
    run: str = dataclasses.field(metadata=RUN_FOLDER)
    split: Literal["train", "val", "test"] = "val"  # the split to score
    views: int | None = dataclasses.field(default=None, metadata={"min": 1})  # evenly spaced views; None: all
    # runs with per-image appearance (real captures), held-out views: "mean", the training images' mean colour
    # transform (nerfstudio's choice), or "half", one fitted on the left half of the photo, the right half scored
    # (NeRF-W's); the train split always takes each image's own
    appearance: Literal["mean", "half"] = "mean"
    # image downscale factor to score at (1: the photos' full resolution); None: the run's training resolution
    downscale: int | None = dataclasses.field(default=None, metadata={"min": 1})


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="PSNR, SSIM and LPIPS (with the lpips extra) of a trained run on a split")
    add_options(p, EvalOptions)
    add_shared(p, "data_root", "device")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..engine.evaluation import evaluate, scores_line, write_json
    from ..engine.runs import load_run
    from ..engine.scenes import load_scene

    o, s = build(EvalOptions, args), shared(args)
    run_ = load_run(o.run, s["device"])
    config = run_.config if o.downscale is None else dataclasses.replace(run_.config, downscale=o.downscale)
    scene = load_scene(config, o.split, s["data_root"])
    protocol = "own" if o.split == "train" else o.appearance
    metrics = evaluate(run_.field, run_.renderer, scene, count=o.views, image_dir=run_.folder / f"renders_{o.split}",
                       progress=True, appearance=run_.appearance, protocol=protocol)
    metrics.update(split=o.split, resolution=f"{scene.cameras.width}x{scene.cameras.height}")
    out = run_.folder / f"eval_{o.split}.json"
    write_json(out, metrics)
    print(f"{o.split}: {scores_line(metrics)}  ({metrics['views']} views at {metrics['resolution']}, "
          f"{metrics['seconds_per_view']:.1f} s each, "
          f"white background{'' if run_.appearance is None else f', appearance: {protocol}'}) -> {out}")
    return 0
