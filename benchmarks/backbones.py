"""One table row per backbone: lego val PSNR after a wall-clock budget, parameters, model size, render
speed, image-fitting PSNR, and SDF IoU / Chamfer / fitting time on a mesh.

The lego part trains with lego_time_budget.py's recipe (400x400, white background, --threads, time
budget counting training only) or reuses finished runs of it (--lego-from). Usage:

    python benchmarks/backbones.py --minutes 10 --threads 2                       # everything
    python benchmarks/backbones.py --lego-from runs/bench --fields triplane rbf   # reuse lego runs
    python benchmarks/backbones.py --skip-lego --sdf-seconds 45                   # image and SDF only
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from nfields.apps.fitting.fit_image import fit_image
from nfields.apps.fitting.fit_sdf import fit_sdf
from nfields.datasets import composite_over
from nfields.datasets.data_root import default_data_roots
from nfields.engine.config import TrainConfig
from nfields.engine.runs import load_run
from nfields.engine.scenes import load_scene
from nfields.engine.trainer import train
from nfields.fields import FIELDS

BUNNY = Path("meshes") / "stanford-bunny.obj"  # under the data root
LEGO_PIXELS = 400 * 400  # rays per val view of the 400x400 lego scene


def lego_row(field: str, args) -> dict:
    """Train (or reuse) a lego run; its final evaluation scores evenly spaced val views (metrics.json)."""
    folder = newest_run(Path(args.lego_from), field) if args.lego_from else None
    if folder is None:
        folder = Path(args.out) / f"lego-{field}-{time.strftime('%Y%m%d-%H%M%S')}"
        config = TrainConfig(scene="lego", data_root=args.data_root, field=field, steps=0, time_budget=args.minutes,
                             threads=args.threads, output=str(folder), eval_every=1e9, final_eval_views=args.views)
        train(config)
    run = load_run(folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    return {"lego_psnr": metrics["psnr"], "lego_ssim": metrics["ssim"], "lego_views": metrics["views"],
            "lego_minutes": run.config.time_budget, "lego_steps": run.checkpoint["step"], "lego_run": str(folder),
            "parameters": run.field.num_parameters(), "size_mb": run.field.size_megabytes(),
            "render_rays_per_s": LEGO_PIXELS / metrics["seconds_per_view"]}


def newest_run(root: Path, field: str) -> Path | None:
    runs = sorted(p for p in root.glob(f"lego-{field}-*") if (p / "metrics.json").exists())
    return runs[-1] if runs else None


def benchmark_image(args) -> torch.Tensor:
    """Lego's first training view over white, the image every backbone fits."""
    scene = load_scene(TrainConfig(scene="lego", data_root=args.data_root), "train", args.data_root)
    pixels = scene.images[0].float() / 255.0
    return composite_over(pixels, torch.ones(3)) if scene.has_alpha else pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fields", nargs="+", default=sorted(FIELDS))
    parser.add_argument("--minutes", type=float, default=10.0, help="lego training budget per backbone")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--views", type=int, default=8, help="evenly spaced lego val views scored")
    parser.add_argument("--data-root")
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--lego-from", help="reuse the newest lego-<field>-* run in this folder when there is one")
    parser.add_argument("--skip-lego", action="store_true")
    parser.add_argument("--image-seconds", type=float, default=30.0, help="image-fitting budget")
    parser.add_argument("--mesh", help="default: meshes/stanford-bunny.obj under --data-root or the default roots")
    parser.add_argument("--sdf-seconds", type=float, default=45.0, help="SDF-fitting budget (sampling excluded)")
    parser.add_argument("--sdf-resolution", type=int, default=256, help="grid for IoU and marching cubes")
    args = parser.parse_args()
    if args.mesh is None:
        roots = [Path(args.data_root)] if args.data_root else default_data_roots()
        args.mesh = str(next((r / BUNNY for r in roots if (r / BUNNY).is_file()), roots[0] / BUNNY))
    torch.set_num_threads(args.threads)
    image = benchmark_image(args)
    results = Path(args.out) / "backbones.json"  # rows of earlier invocations are kept, per backbone
    rows = [r for r in json.loads(results.read_text()) if r["field"] not in args.fields] if results.exists() else []
    for field in args.fields:
        row = {"field": field}
        if not args.skip_lego:
            row.update(lego_row(field, args))
        fitted = fit_image(image, field, steps=10**9, time_budget=args.image_seconds, batch=1 << 14)
        row.update(image_psnr=fitted.psnr, image_steps=fitted.steps, image_parameters=fitted.parameters)
        sdf = fit_sdf(args.mesh, field, steps=10**9, time_budget=args.sdf_seconds, resolution=args.sdf_resolution)
        row.update(sdf_iou=sdf.iou, sdf_chamfer=sdf.chamfer, sdf_seconds=sdf.seconds,
                   sdf_sampling_seconds=sdf.sampling_seconds, sdf_steps=sdf.steps, sdf_parameters=sdf.parameters)
        rows.append(row)
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(rows, indent=2))
        print_table(rows, args)


def print_table(rows: list[dict], args) -> None:
    print(f"\nlego 400x400 val (white), {args.threads} threads; image: lego train view 0 (400x400), "
          f"{args.image_seconds:g} s; SDF: {Path(args.mesh).name}, {args.sdf_seconds:g} s fitting, "
          f"IoU on {args.sdf_resolution}^3")
    print("| backbone | lego PSNR (SSIM) | steps | parameters | size MB | render rays/s | image PSNR | "
          "SDF IoU | Chamfer | SDF fit s (+ sampling) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lego = (f"{r['lego_psnr']:.2f} ({r['lego_ssim']:.3f}) | {r['lego_steps']} | {r['parameters']:,} | "
                f"{r['size_mb']:.1f} | {r['render_rays_per_s']:,.0f}") if "lego_psnr" in r else "- | - | - | - | -"
        print(f"| {r['field']} | {lego} | {r['image_psnr']:.2f} | {r['sdf_iou']:.4f} | {r['sdf_chamfer']:.5f} | "
              f"{r['sdf_seconds']:.0f} (+{r['sdf_sampling_seconds']:.0f}) |")


if __name__ == "__main__":
    main()
