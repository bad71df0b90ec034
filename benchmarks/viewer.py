"""Viewer frame times on lego: the moving (adaptive) and still (full 400x400) resolutions per backbone, and
the time to the first frame in a browser after the viewer starts.

Each run is a trained lego run folder (train one with
`fields train --scene lego --time-budget 2 --threads 1 --output runs/bench-lego`). Reference in the same
run: the plain evaluation render (`render_chunked` on all rays at once) of the same camera; the ratio shows
the viewer's overhead (row chunks, turns of the compute share, image conversion). Usage:

    python benchmarks/viewer.py --runs runs/bench-lego runs/bench-lego-mlp --threads 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from nfields.engine.evaluation import render_view
from nfields.engine.runs import load_run
from nfields.engine.scenes import load_scene
from nfields.viewer import ComputeShare
from nfields.viewer.ports import free_port
from nfields.viewer.rendering import moving_frame_size, pinhole, render_frame
from nfields.viewer.serve import open_run_viewer

MOVING_SECONDS = 1 / 15


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def band(camera, rows: int | None):
    """The camera cropped to its `rows` central image rows (None: the whole image) and the fraction kept."""
    if not rows or rows >= camera.height:
        return camera, 1.0
    top = (camera.height - rows) // 2
    principal = camera.principal - torch.tensor([[0.0, float(top)]])
    return type(camera)(camera.camera_to_world, camera.focal, principal, camera.width, rows), rows / camera.height


def frame_times(run_dir: str, views: int, repeats: int, still_rows: int | None = None) -> dict:
    run = load_run(run_dir)
    cameras = load_scene(run.config, "train").cameras
    share = ComputeShare()
    idx = torch.linspace(0, len(cameras) - 1, views).round().long().tolist()
    fov = 2 * torch.atan(cameras.height / (2 * cameras.focal[0, 1])).item()
    still, reference, moving, moving_px = [], [], [], []
    for i in idx:
        c2w = cameras.camera_to_world[i].numpy()
        full = pinhole(c2w, fov, cameras.width, cameras.height)
        part, fraction = band(full, still_rows)
        part_cameras, _ = band(cameras, still_rows)
        still.append(timed(lambda: render_frame(run.field, run.renderer, part, "RGB", share), repeats) / fraction)
        reference.append(timed(lambda: render_view(run.field, run.renderer, part_cameras, i), repeats) / fraction)
        # The session's rule: the per-pixel cost from the still frame, the fixed cost from a 48-row frame.
        spp = still[-1] / (full.width * full.height)
        probe = pinhole(c2w, fov, 48, 48)
        overhead = max(0.0, timed(lambda: render_frame(run.field, run.renderer, probe, "RGB", share), repeats)
                       - spp * 48 * 48)
        w, h = moving_frame_size(cameras.width / cameras.height, cameras.height, spp, overhead, MOVING_SECONDS)
        small = pinhole(c2w, fov, w, h)
        moving.append(timed(lambda: render_frame(run.field, run.renderer, small, "RGB", share), repeats))
        moving_px.append((w, h))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return {"run": run_dir, "field": run.checkpoint["field_name"], "step": int(run.checkpoint["step"]),
            "still_seconds": mean(still), "reference_seconds": mean(reference),
            "overhead_ratio": mean(still) / mean(reference), "moving_seconds": mean(moving),
            "moving_fps": 1 / mean(moving), "moving_size": moving_px, "still_rows_timed": still_rows or cameras.height}


def time_to_first_frame(run_dir: str) -> dict:
    """Seconds from starting the viewer (load the run, start the server) until a browser has its first
    frame, and until the full-resolution one; the browser is started beforehand."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
        page = browser.new_page(viewport={"width": 800, "height": 600})
        start = time.perf_counter()
        viewer = open_run_viewer(run_dir, port=free_port("127.0.0.1", 8700), verbose=False)
        try:
            page.goto(viewer.url)
            session = viewer.wait_for_client(120)
            first = session.wait_for_frame(lambda f: True, 300)
            first_s = time.perf_counter() - start
            full = session.wait_for_frame(lambda f: f.kind == "still", 300)
            full_s = time.perf_counter() - start if full is not None else None
        finally:
            viewer.stop()
            browser.close()
    return {"first_frame_seconds": first_s, "first_frame_size": (first.camera.width, first.camera.height),
            "full_frame_seconds": full_s, "full_frame_size": (full.camera.width, full.camera.height) if full else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=["runs/bench-lego", "runs/bench-lego-mlp"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--views", type=int, default=2, help="training cameras timed per run")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--still-rows", type=int, help="time only this many central rows of the still frame and "
                        "scale up (for slow, barely trained runs)")
    parser.add_argument("--out", default="runs/bench-viewer.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for run_dir in args.runs:
        result = frame_times(run_dir, args.views, args.repeats, args.still_rows)
        if shutil.which("chromium"):
            result.update(time_to_first_frame(run_dir))
        results.append(result)
        print(json.dumps(result), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("| backbone | step | still 400x400 (s) | reference render (s) | ratio | moving size | moving fps |"
          " first frame (s) | first full frame (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        w, h = r["moving_size"][0]
        print(f"| {r['field']} | {r['step']} | {r['still_seconds']:.2f} | {r['reference_seconds']:.2f} | "
              f"{r['overhead_ratio']:.2f} | {w}x{h} | {r['moving_fps']:.1f} | {r.get('first_frame_seconds', 0):.1f} | "
              f"{r.get('full_frame_seconds') or float('nan'):.1f} |")


if __name__ == "__main__":
    main()
