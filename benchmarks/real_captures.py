"""Real captures: convert, train for a time budget, score every 8th photo held out (LLFF / mip-NeRF 360's rule).

Rows (each converts its capture as `fields convert` does, trains for --minutes on --threads, then renders every
held-out view once at the training resolution and scores it without appearance, under the "mean" protocol and
under the "half" protocol; see renderers/appearance.py):
  beer                    shared/data/real/beer with every default (what `fields convert` + `fields train` do)
  beer-no-appearance      the same without per-image appearance
  beer-camera-refinement  the same with camera refinement
  beer-grid-0.01          the same with the grid threshold of 0.01 per CPU step (the default before: a quarter of
                          instant-ngp's density threshold at the CPU's 4x longer smallest step; keeps more fog)
  beer-wide-cone          the same with cone steps of 1/32 (CPU default 1/64)
  beer-coarse             the same with cone steps of 1/32 and a smallest step twice as long
  beer-fast-render        the same with the fast-render setting: cone steps of 1/32, colour at weights from 1e-2
  lego-colmap             lego's 100 training photos posed by COLMAP
  lego-true-poses         the same photos with their true poses, the same held-out photos
  lego-*-fast-render      the two lego rows with the fast-render setting
A converted scene can be reused (--beer DIR, --lego-colmap DIR: e.g. an earlier run's scenes/beer): beer's
conversion poses it again, and COLMAP's runs differ, so rows compared across runs should share one scene.
It also times one held-out view rendered at the photos' full resolution (720x1280 for beer) and saves a
picture (render | photo | depth) per row. Usage:

    python benchmarks/real_captures.py --rows beer beer-no-appearance --minutes 10 --threads 2
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from machine import cpu_line  # benchmarks/machine.py

from nfields.datasets import capture_scene, read_capture
from nfields.datasets.data_root import default_data_roots
from nfields.datasets.ingest.convert import convert
from nfields.engine.config import TrainConfig
from nfields.engine.evaluation import held_out_colours, render_view
from nfields.engine.metrics import psnr, ssim
from nfields.engine.runs import load_run
from nfields.engine.trainer import train

# The fast-render setting for unbounded scenes on a CPU (docs/real-captures.md, "Fourth round")
FAST_RENDER = {"cone_angle": 1 / 32, "render_weight_threshold": 1e-2}
ROWS = {
    "beer": ("beer", {}),
    "beer-no-appearance": ("beer", {"appearance": False}),
    "beer-camera-refinement": ("beer", {"camera_refinement": True}),
    "beer-grid-0.01": ("beer", {"occupancy_threshold": 0.01}),
    "beer-wide-cone": ("beer", {"cone_angle": 1 / 32}),
    "beer-coarse": ("beer", {"cone_angle": 1 / 32, "steps_per_diagonal": 128}),
    "beer-fast-render": ("beer", FAST_RENDER),
    "lego-colmap": ("lego-colmap", {}),
    "lego-true-poses": ("lego-true-poses", {}),
    "lego-colmap-fast-render": ("lego-colmap", FAST_RENDER),
    "lego-true-poses-fast-render": ("lego-true-poses", FAST_RENDER),
}


def prepare(capture: str, data_root: Path, work: Path, reuse: dict[str, str | None]) -> Path:
    """The converted scene folder of a row's capture: `reuse[capture]` when given, else converted once per
    benchmark run."""
    if reuse.get(capture):
        return Path(reuse[capture])
    out = work / capture
    if out.exists():
        return out
    if capture == "beer":
        convert(data_root / "real" / "beer", out)
    elif capture == "lego-colmap":
        photos = work / "lego-photos"
        shutil.copytree(data_root / "nerf_synthetic" / "lego" / "train", photos / "images")
        convert(photos, out, fmt="images")
    else:
        convert(write_true_pose_capture(data_root / "nerf_synthetic" / "lego", work / "lego-true-input"), out,
                fmt="nerfstudio")
    return out


def write_true_pose_capture(lego: Path, folder: Path) -> Path:
    """lego's training photos with their true poses as a nerfstudio capture (no splits: every 8th held out)."""
    meta = json.loads((lego / "transforms_train.json").read_text())
    (folder / "images").mkdir(parents=True, exist_ok=True)
    frames = []
    for frame in meta["frames"]:
        src = lego / f"{frame['file_path']}.png"
        shutil.copyfile(src, folder / "images" / src.name)
        frames.append({"file_path": f"images/{src.name}", "transform_matrix": frame["transform_matrix"]})
    h, w = iio.imread(folder / "images" / Path(frames[0]["file_path"]).name).shape[:2]
    focal = 0.5 * w / math.tan(0.5 * meta["camera_angle_x"])
    (folder / "transforms.json").write_text(json.dumps(
        {"camera_model": "PINHOLE", "fl_x": focal, "fl_y": focal, "cx": w / 2, "cy": h / 2, "w": w, "h": h,
         "frames": sorted(frames, key=lambda f: f["file_path"])}, indent=1))
    return folder


def score_held_out(run_dir: Path, out_png: Path) -> dict:
    """PSNR / SSIM of every held-out view (none / mean / half appearance), full-resolution render time."""
    run = load_run(run_dir, "cpu")
    capture = read_capture(Path(run.config.data))
    val = capture_scene(capture, "val", run.config.downscale or 1)
    scores = {"none": [], "mean": [], "half": []}
    picture = None
    for i in range(len(val.cameras)):
        view = render_view(run.field, run.renderer, val.cameras, i)
        photo = val.image(i)
        for protocol in scores:
            appearance = None if protocol == "none" else run.appearance
            scored_as = "mean" if protocol == "none" else protocol
            pred, target = held_out_colours(view["rgb"], photo, appearance, scored_as, i)
            scores[protocol].append((psnr(pred, target), ssim(pred, target)))
        if i == 0:
            depth = view["depth"] / view["opacity"].clamp(min=1e-6)
            shade = (1 / (1 + depth)).clamp(0, 1)[..., None].expand(-1, -1, 3)
            picture = torch.cat([view["rgb"], photo, shade], dim=1)
    iio.imwrite(out_png, (picture.numpy() * 255 + 0.5).astype(np.uint8))
    full = capture_scene(capture, "val", 1)
    start = time.perf_counter()
    render_view(run.field, run.renderer, full.cameras, 0)
    full_seconds = time.perf_counter() - start
    result = {p: {"psnr": float(np.mean([s[0] for s in v])), "ssim": float(np.mean([s[1] for s in v]))}
              for p, v in scores.items() if v and (p == "none" or run.appearance is not None)}
    result.update(views=len(val.cameras), resolution=f"{val.cameras.width}x{val.cameras.height}",
                  full_resolution=f"{full.cameras.width}x{full.cameras.height}", full_render_seconds=full_seconds,
                  steps=run.checkpoint["step"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-root")
    parser.add_argument("--lego-colmap", help="a converted scene of lego's photos posed by COLMAP, to reuse")
    parser.add_argument("--beer", help="a converted scene of beer (e.g. an earlier run's scenes/beer), to reuse")
    parser.add_argument("--out", default="runs/real_captures")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data_root = find_data_root(args.data_root)
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    print(f"CPU: {cpu_line()}; {args.threads} threads; {args.minutes:g} min of training per row")
    results = {}
    for row in args.rows:
        capture, overrides = ROWS[row]
        scene = prepare(capture, data_root, out / "scenes", {"beer": args.beer, "lego-colmap": args.lego_colmap})
        config = TrainConfig(data=str(scene), steps=0, time_budget=args.minutes, threads=args.threads,
                             output=str(out / row), final_eval_views=1, **overrides)
        train(config)
        results[row] = score_held_out(out / row, out / f"{row}.png")
        (out / "results.json").write_text(json.dumps(results, indent=2))
        print_table(results)


def find_data_root(given: str | None) -> Path:
    """The data root holding real/beer and nerf_synthetic/lego (the project's shared data)."""
    roots = [Path(given).expanduser()] if given else default_data_roots()
    for root in roots:
        if (root / "real" / "beer").is_dir() and (root / "nerf_synthetic" / "lego").is_dir():
            return root
    raise SystemExit(f"real/beer and nerf_synthetic/lego not found under {', '.join(map(str, roots))}: "
                     "point --data-root at the project's shared data folder")


def print_table(results: dict) -> None:
    print("\n| row | steps | held-out PSNR (SSIM): no appearance | mean | half | views | full-res render |")
    print("|---|---|---|---|---|---|---|")
    for row, r in results.items():
        cells = [f"{r[p]['psnr']:.2f} ({r[p]['ssim']:.3f})" if p in r else "-" for p in ("none", "mean", "half")]
        print(f"| {row} | {r['steps']} | {' | '.join(cells)} | {r['views']} at {r['resolution']} | "
              f"{r['full_render_seconds']:.1f} s at {r['full_resolution']} |")


if __name__ == "__main__":
    main()
