"""Where a trained unbounded run's samples go: per cascade, before and after early termination and the alpha
threshold, with each cascade's occupied cells and the field's density there against the grid's threshold.

For every `--stride`-th pixel of held-out views (at the run's training resolution), it marches the rays as a
render does, evaluates the density at every marched sample (a render stops at termination; this probe does
not, so that it can count what termination saves), and reports per cascade (level k spans the box 2^k times):
marched samples per ray, those in front of termination (transmittance >= the early-stop transmittance), those
also above the alpha threshold (what a render shades), and the samples' median opacity; culled as evaluation
renders do, or as training does (`--as-training`: what renders did before the render_* settings). Then per cascade: the
occupied fraction, the threshold on optical thickness (min(mean, 0.01), instant-ngp's rule) as a density, and
the median density at random points. Usage:

    python benchmarks/sample_budget.py RUN_FOLDER [--views 0 4] [--stride 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from nfields.datasets import capture_scene, read_capture
from nfields.engine.runs import load_run
from nfields.renderers import torch_ops


def cascade_of(positions: torch.Tensor, aabbs: torch.Tensor) -> torch.Tensor:
    """Finest cascade (P,) long holding each position (P, 3); the last one for positions beyond all."""
    centre, half = (aabbs[0, :3] + aabbs[0, 3:]) / 2, (aabbs[0, 3:] - aabbs[0, :3]) / 2
    reach = ((positions - centre).abs() / half).amax(-1)
    return torch.log2(reach.clamp(min=1.0)).ceil().long().clamp(max=len(aabbs) - 1)


@torch.no_grad()
def probe_rays(run, origins: torch.Tensor, directions: torch.Tensor, training: bool) -> dict:
    renderer, field = run.renderer, run.field
    alpha_threshold, early_stop_eps = renderer.culling(training)
    samples = renderer.march(origins, directions, jitter=False, training=training)
    positions, _ = samples.midpoints(origins, directions)
    sigma = torch.cat([field.density(p)[0] for p in positions.split(1 << 16)])
    trans, alpha = torch_ops.transmittance(sigma, samples, len(origins))
    alive = trans >= early_stop_eps
    shaded = alive & (alpha >= alpha_threshold)
    level = cascade_of(positions, renderer.occupancy.aabbs)
    rays = len(origins)
    rows = []
    for k in range(len(renderer.occupancy.aabbs)):
        at = level == k
        rows.append({"cascade": k, "marched": at.sum().item() / rays, "before_termination": (at & alive).sum().item()
                     / rays, "shaded": (at & shaded).sum().item() / rays,
                     "median_alpha": alpha[at].median().item() if at.any() else float("nan")})
    return {"rays": rays, "marched": len(samples) / rays, "before_termination": alive.sum().item() / rays,
            "shaded": shaded.sum().item() / rays, "per_cascade": rows}


@torch.no_grad()
def grid_report(run, points: int = 1 << 16) -> list[dict]:
    """Per cascade: occupied fraction, the density the threshold stands for, median density at random points."""
    grid = run.renderer.occupancy
    occs = grid.estimator.occs
    threshold = torch.clamp(occs[occs >= 0].mean(), max=grid.threshold).item()
    rows = []
    for k, box in enumerate(grid.aabbs):
        x = box[:3] + torch.rand(points, 3) * (box[3:] - box[:3])
        sigma = run.field.density(x)[0]
        rows.append({"cascade": k, "occupied": grid.binaries[k].float().mean().item(),
                     "threshold_density": threshold / run.renderer.step_size,
                     "median_density": sigma.median().item(), "p90_density": sigma.quantile(0.9).item()})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--views", type=int, nargs="+", default=[0, 4])
    parser.add_argument("--stride", type=int, default=4, help="every stride-th pixel along each side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--time", action="store_true", help="also time a render of the first view")
    parser.add_argument("--as-training", action="store_true",
                        help="cull as training does (alpha threshold, early stop, grid), not as evaluation renders do")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    run = load_run(args.run, "cpu")
    val = capture_scene(read_capture(Path(run.config.data)), "val", run.config.downscale or 1)
    report = {"run": args.run, "grid": grid_report(run), "views": {}}
    for i in args.views:
        rays = val.cameras.image_rays(i)
        h, w = val.cameras.height, val.cameras.width
        pick = (torch.arange(h)[::args.stride, None] * w + torch.arange(w)[None, ::args.stride]).reshape(-1)
        report["views"][i] = probe_rays(run, rays.origins[pick], rays.directions[pick], args.as_training)
    if args.time:
        if args.as_training:  # an evaluation render culling as training does
            renderer = run.renderer
            renderer.render_alpha_threshold, renderer.render_early_stop_eps = renderer.culling(True)
            renderer.render_occupancy_threshold = None
        rays = val.cameras.image_rays(args.views[0])
        start = time.perf_counter()
        out = run.renderer.render_chunked(run.field, rays.origins, rays.directions, torch.ones(3))
        seconds = time.perf_counter() - start
        report["render"] = {"rays": len(rays.origins), "seconds": seconds, "rays_per_s": len(rays.origins) / seconds,
                            "shaded_per_ray": out.n_samples / len(rays.origins)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
