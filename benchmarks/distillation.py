"""PVD-AL on lego: distil a trained hash grid into other backbones and compare with training them from scratch.

For each student: a distillation of --minutes (training time, the default active-learning levels) and a
from-scratch run (--scratch-minutes, a checkpoint kept at --minutes), both at --threads. Printed per student:
val PSNR of the distilled and the from-scratch student at equal time (the same evenly spaced val views), and
two speed-ups read off the PSNR-vs-time curves of fixed random val pixels that both runs record: the time
the from-scratch run needs to reach the distilled student's PSNR divided by the distillation time, and the
from-scratch run's whole time divided by the time the distillation needs to reach its final PSNR. Ablation
rows distil --ablate's student with no level, each level alone, the default and all three. --presets picks
a student's preset for its distillations; --feature-ablation distils a student for --minutes in its default
preset, then in its --presets preset with and without the feature stage (PVD's stage 1; without it, the
point stage starts at once). Finished runs are reused, so the script resumes. Usage:

    python benchmarks/distillation.py --teacher runs/bench2/lego-hashgrid-20261127-143538 --minutes 3 \
        --threads 2 --scratch-minutes 30
    python benchmarks/distillation.py --teacher RUN --students --ablate '' --feature-ablation mlp \
        --presets mlp=small-shared --minutes 3 --threads 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nfields.apps.distillation import ACTIVE_LEVELS, DEFAULT_ACTIVE, DistillConfig, distill
from nfields.apps.distillation.losses import shares_color_decoder
from nfields.engine.checkpoint import load_checkpoint
from nfields.engine.config import TrainConfig
from nfields.engine.evaluation import evaluate
from nfields.engine.runs import load_run
from nfields.engine.scenes import load_scene
from nfields.engine.trainer import train


def history(folder: Path) -> list[dict]:
    return json.loads((folder / "history.json").read_text())["history"]


def minutes_to_reach(curve: list[dict], value: float) -> float | None:
    """Training minutes at which a PSNR-vs-time curve first reaches `value` (linear in between), or None."""
    previous = None
    for point in curve:
        if point["val_psnr"] >= value:
            if previous is None:
                return point["train_seconds"] / 60
            (t0, p0), (t1, p1) = (previous["train_seconds"], previous["val_psnr"]), (point["train_seconds"],
                                                                                      point["val_psnr"])
            return (t0 + (t1 - t0) * (value - p0) / max(p1 - p0, 1e-9)) / 60
        previous = point
    return None


def psnr_at(curve: list[dict], minutes: float) -> float:
    """The curve's PSNR at the last point no later than `minutes` of training."""
    points = [p for p in curve if p["train_seconds"] <= 60 * minutes + 1]
    return max(points, key=lambda p: p["train_seconds"])["val_psnr"]


def snapshot_psnr(folder: Path, minutes: float, views: int) -> float:
    """Val PSNR of a run's checkpoint kept at `minutes`, or of its final one (scored by the run itself)."""
    name = f"checkpoint_{minutes:g}min.pt"
    final = json.loads((folder / "metrics.json").read_text())
    if not (folder / name).exists() and final["views"] == views:
        return final["psnr"]
    run = load_run(folder, checkpoint=name if (folder / name).exists() else "checkpoint.pt")
    return evaluate(run.field, run.renderer, load_scene(run.config, "val"), count=views)["psnr"]


def scratch_run(student: str, args, given: dict[str, str]) -> Path:
    folder = Path(given.get(student) or Path(args.out) / f"scratch-{student}")
    if not (folder / "metrics.json").exists():
        train(TrainConfig(scene="lego", data_root=args.data_root, field=student, steps=0,
                          time_budget=args.scratch_minutes, threads=args.threads, output=str(folder),
                          snapshot_minutes=[args.minutes] if args.scratch_minutes > args.minutes else [],
                          final_eval_views=args.views))
    return folder


def distilled_run(student: str, active: tuple[str, ...], minutes: float, views: int, args,
                  preset: str | None = None, feature_stage: bool = True) -> Path:
    """A distillation of `minutes` (reused when finished); without the feature stage, its share of the run
    goes to the point stage (the stages' second boundary is kept)."""
    label = "+".join(active) or "none"
    name = f"{student}-{preset}" if preset else student
    folder = Path(args.out) / f"distilled-{name}-{label}-{minutes:g}min{'' if feature_stage else '-no-features'}"
    if not (folder / "metrics.json").exists():
        settings = DistillConfig(teacher=args.teacher, student=student, active=active)
        if not feature_stage:
            settings.stages = (0.0, settings.stages[1])
        distill(settings, time_budget=minutes, output=str(folder), preset=preset, threads=args.threads,
                data_root=args.data_root, final_eval_views=views)
    return folder


def feature_stage_ablation(student: str, args) -> list[dict]:
    """The student distilled for --minutes in its default preset, then in its --presets preset with and without
    the feature stage (PVD's stage 1)."""
    preset = args.presets.get(student)
    runs = ((None, True), (preset, True), (preset, False)) if preset else ((None, True), (None, False))
    rows = []
    for form, feature_stage in runs:
        folder = distilled_run(student, DEFAULT_ACTIVE, args.minutes, args.views, args, form, feature_stage)
        metrics = json.loads((folder / "metrics.json").read_text())
        copied = load_checkpoint(folder / "checkpoint.pt")["distillation"]["copied"]
        ran = feature_stage and shares_color_decoder(load_run(folder).field, copied)  # as the distiller decides
        rows.append({"preset": form or "default", "feature_stage": ran,
                     "copied": sorted({n.split(".")[0] for n in copied}),
                     "psnr": snapshot_psnr(folder, args.minutes, args.views),
                     "curve_psnr": history(folder)[-1]["val_psnr"], "vs_teacher": metrics["psnr_vs_teacher"],
                     "steps": metrics["step"], "run": str(folder)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="a trained lego run (e.g. hashgrid, 10 minutes)")
    parser.add_argument("--students", nargs="*", default=["mlp", "tensorf-vm", "triplane", "rbf"])
    parser.add_argument("--minutes", type=float, default=3.0, help="distillation budget (training time)")
    parser.add_argument("--scratch-minutes", type=float, default=3.0, help="from-scratch budget")
    parser.add_argument("--scratch", nargs="*", default=[], metavar="STUDENT=RUN",
                        help="existing from-scratch runs (with a checkpoint kept at --minutes) to reuse")
    parser.add_argument("--presets", nargs="*", default=[], metavar="STUDENT=PRESET",
                        help="a student's preset for its distillations (e.g. mlp=small-shared: the hash grid's heads)")
    parser.add_argument("--feature-ablation", default="", metavar="STUDENT",
                        help="distil STUDENT for --minutes with and without the feature stage ('' for none)")
    parser.add_argument("--ablate", default="mlp", help="student of the active-learning ablation ('' for none)")
    parser.add_argument("--ablate-minutes", type=float, default=2.0, help="budget of each ablation run")
    parser.add_argument("--views", type=int, default=4, help="evenly spaced val views scored")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-root")
    parser.add_argument("--out", default="runs/distill")
    args = parser.parse_args()
    given = dict(item.split("=", 1) for item in args.scratch)
    args.presets = dict(item.split("=", 1) for item in args.presets)
    teacher_psnr = json.loads((Path(args.teacher) / "metrics.json").read_text())["psnr"]

    rows = []
    for student in args.students:
        distilled = distilled_run(student, DEFAULT_ACTIVE, args.minutes, args.views, args, args.presets.get(student))
        scratch = scratch_run(student, args, given)
        d_metrics = json.loads((distilled / "metrics.json").read_text())
        d_curve, s_curve = history(distilled), history(scratch)
        reach = minutes_to_reach(s_curve, d_curve[-1]["val_psnr"])
        scratch_minutes = s_curve[-1]["train_seconds"] / 60
        rows.append({
            "student": student, "distilled_psnr": snapshot_psnr(distilled, args.minutes, args.views),
            "vs_teacher": d_metrics["psnr_vs_teacher"],
            "scratch_psnr": snapshot_psnr(scratch, args.minutes, args.views),
            "scratch_minutes": scratch_minutes,
            "scratch_final_psnr": snapshot_psnr(scratch, scratch_minutes, args.views),
            "curve_distilled": d_curve[-1]["val_psnr"], "curve_scratch_at_budget": psnr_at(s_curve, args.minutes),
            "scratch_minutes_to_reach": reach,
            "speedup": reach / args.minutes if reach is not None else None,
            "speedup_at_least": scratch_minutes / args.minutes if reach is None else None,
            "distilled_run": str(distilled), "scratch_run": str(scratch),
        })
        # How soon the distilled student reached the from-scratch run's final PSNR.
        reached = minutes_to_reach(d_curve, s_curve[-1]["val_psnr"])
        rows[-1]["distilled_minutes_to_scratch_final"] = reached
        rows[-1]["speedup_to_scratch_final"] = scratch_minutes / reached if reached else None
        # Reached by the first point of the curve: the time is an upper bound, the speed-up a lower one.
        rows[-1]["reached_at_first_point"] = d_curve[0]["val_psnr"] >= s_curve[-1]["val_psnr"]

    ablations = []
    if args.ablate:  # scored on the PSNR-vs-time curve's fixed val pixels (one val view for metrics.json)
        levels = [(), *((level,) for level in ACTIVE_LEVELS), DEFAULT_ACTIVE, ACTIVE_LEVELS]
        for active in levels:
            folder = distilled_run(args.ablate, active, args.ablate_minutes, 1, args)
            metrics = json.loads((folder / "metrics.json").read_text())
            ablations.append({"active": "+".join(active) or "none", "curve_psnr": history(folder)[-1]["val_psnr"],
                              "vs_teacher": metrics["psnr_vs_teacher"], "steps": metrics["step"]})

    features = feature_stage_ablation(args.feature_ablation, args) if args.feature_ablation else []

    Path(args.out, "distillation.json").write_text(json.dumps(
        {"teacher": args.teacher, "teacher_psnr": teacher_psnr, "minutes": args.minutes, "presets": args.presets,
         "rows": rows, "ablations": ablations, "feature_stage_ablation": features}, indent=2) + "\n")
    print(f"\nteacher {args.teacher}: val PSNR {teacher_psnr:.2f}; budget {args.minutes:g} min, "
          f"{args.threads} threads; "
          f"PSNR over {args.views} val views")
    print(f"| student | distilled, {args.minutes:g} min | vs teacher | from scratch, {args.minutes:g} min | "
          f"from scratch, end (min) | scratch time to distilled PSNR | speed-up | distilled time to scratch end "
          f"| speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        reach = f"{r['scratch_minutes_to_reach']:.1f} min" if r["scratch_minutes_to_reach"] is not None \
            else f"> {r['scratch_minutes']:.0f} min"
        speedup = f"{r['speedup']:.1f}x" if r["speedup"] is not None else f"> {r['speedup_at_least']:.1f}x"
        reached = r["distilled_minutes_to_scratch_final"]
        at_most, at_least = ("<= ", ">= ") if r["reached_at_first_point"] else ("", "")
        back = f"{at_most}{reached:.2f} min | {at_least}{r['speedup_to_scratch_final']:.1f}x" if reached else \
            f"not in {args.minutes:g} min | < {r['scratch_minutes'] / args.minutes:.1f}x"
        print(f"| {r['student']} | {r['distilled_psnr']:.2f} | {r['vs_teacher']:.2f} | {r['scratch_psnr']:.2f} | "
              f"{r['scratch_final_psnr']:.2f} ({r['scratch_minutes']:.0f}) | {reach} | {speedup} | {back} |")
    if ablations:
        print(f"\nactive-learning ablation ({args.ablate}, {args.ablate_minutes:g} min; val PSNR on the curve's "
              "16,384 fixed val pixels; vs teacher on 2 val views)")
        print("| levels | val PSNR | vs teacher | steps |\n|---|---|---|---|")
        for a in ablations:
            print(f"| {a['active']} | {a['curve_psnr']:.2f} | {a['vs_teacher']:.2f} | {a['steps']} |")
    if features:
        print(f"\nfeature-stage ablation ({args.feature_ablation}, {args.minutes:g} min each)")
        print(f"| preset | copied from the teacher | feature stage | val PSNR ({args.views} views) | curve PSNR "
              "| vs teacher | steps |\n|---|---|---|---|---|---|---|")
        for f in features:
            print(f"| {f['preset']} | {', '.join(f['copied']) or 'nothing'} | {'on' if f['feature_stage'] else 'off'} "
                  f"| {f['psnr']:.2f} | {f['curve_psnr']:.2f} | {f['vs_teacher']:.2f} | {f['steps']} |")


if __name__ == "__main__":
    main()
