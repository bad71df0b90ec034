"""Train lego (400x400, white background, val split) for a fixed wall-clock budget per backbone.

Prints validation PSNR at 1, 2, 5 and 10 minutes of training (evaluation time excluded) from
checkpoints snapshotted at those times, all scored on the same evenly spaced val views. Usage:

    python benchmarks/lego_time_budget.py --fields hashgrid mlp --minutes 10 --threads 2
    python benchmarks/lego_time_budget.py --score RUN --checkpoints 5 10 --views 4   # re-score a run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from nfields.engine.config import TrainConfig
from nfields.engine.evaluation import evaluate
from nfields.engine.runs import load_run
from nfields.engine.scenes import load_scene
from nfields.engine.trainer import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fields", nargs="+", default=["hashgrid", "mlp"])
    parser.add_argument("--preset", help="backbone preset for every field (default: each backbone's CPU preset)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--checkpoints", type=float, nargs="+", default=[1, 2, 5, 10])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-root")
    parser.add_argument("--views", type=int, default=8, help="evenly spaced val views scored per checkpoint "
                        "(a 400x400 view takes about 15 s to render on 2 cores with the PyTorch path)")
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--score", metavar="RUN", help="only score the snapshots of an existing benchmark run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.score:
        run = load_run(args.score)
        val = load_scene(run.config, "val")
        row = score_run(Path(args.score), run.config.field, run.checkpoint["step"], args.checkpoints,
                        run.config.time_budget, val, args.views)
        print_table([row], args.checkpoints)
        return

    rows = []
    for field in args.fields:
        out = Path(args.out) / f"lego-{field}-{time.strftime('%Y%m%d-%H%M%S')}"
        config = TrainConfig(scene="lego", data_root=args.data_root, field=field, preset=args.preset,
                             steps=0, time_budget=args.minutes,
                             threads=args.threads, output=str(out), eval_every=1e9, final_eval_views=args.views,
                             snapshot_minutes=[m for m in args.checkpoints if m < args.minutes])
        result = train(config)
        val = load_scene(config, "val")
        row = score_run(out, field, result.step, args.checkpoints, args.minutes, val, args.views)
        rows.append(row)
        (out / "benchmark.json").write_text(json.dumps(row, indent=2))
        print_table(rows, args.checkpoints)


def score_run(out: Path, field: str, steps: int, checkpoints: list[float], minutes: float, val, views: int) -> dict:
    """PSNR / SSIM of each snapshot (and the final checkpoint) on the same evenly spaced val views."""
    row = {"field": field, "preset": load_run(out).checkpoint["field_config"], "steps": steps}
    for minute in checkpoints:
        name = f"checkpoint_{minute:g}min.pt" if minute < minutes else "checkpoint.pt"
        if minute > minutes or not (out / name).exists():
            continue
        run = load_run(out, checkpoint=name)
        m = evaluate(run.field, run.renderer, val, count=views)
        row[f"{minute:g} min"] = {"psnr": m["psnr"], "ssim": m["ssim"], "views": m["views"],
                                  "step": run.checkpoint["step"]}
        row["render_seconds_per_view"] = m["seconds_per_view"]
    return row


def print_table(rows: list[dict], checkpoints: list[float]) -> None:
    header = "| field | steps | " + " | ".join(f"{m:g} min" for m in checkpoints) + " | render s/view |"
    print("\nlego 400x400, white background, val split; PSNR dB (SSIM) [views]")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for row in rows:
        cells = []
        for m in checkpoints:
            v = row.get(f"{m:g} min")
            cells.append(f"{v['psnr']:.2f} ({v['ssim']:.3f}) [{v['views']}]" if v else "-")
        seconds = row["render_seconds_per_view"]
        print(f"| {row['field']} | {row['steps']} | " + " | ".join(cells) + f" | {seconds:.2f} |")


if __name__ == "__main__":
    main()
