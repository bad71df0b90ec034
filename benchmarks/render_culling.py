"""Render-time culling of an unbounded run, emulated exactly on every marched sample: held-out PSNR against the
density and colour evaluations a ray would cost, for early-stop transmittances x colour weight thresholds x alpha
thresholds (what `VolumeRenderer.render_in_rounds` does with render_early_stop, render_weight_threshold and
render_alpha_threshold).

Every `--stride`-th pixel of the given held-out views (at the run's training resolution) is marched once as an
evaluation render marches (its grid), with the density and colour evaluated at every sample; each setting is then
composited from those values: samples under the alpha threshold are dropped, a ray's samples behind the early-stop
transmittance are not evaluated, and colour counts only at samples whose weight reaches the weight threshold, the
ray's shaded colours rescaled to its opacity (the per-round "heaviest sample" rule of the renderer is not
emulated). PSNR is on those pixels over a white background, appearance under the "mean" protocol (the identity).
Usage:

    python benchmarks/render_culling.py RUN_FOLDER [--views 0 2 4 6 8] [--stride 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import math

import torch

from nfields.engine.runs import load_run
from nfields.engine.scenes import load_scene
from nfields.renderers import torch_ops

CHUNK = 1 << 16


@torch.no_grad()
def marched_values(run, origins: torch.Tensor, directions: torch.Tensor):
    """Every sample an evaluation render marches for these rays, with its density (S,) and colour (S, 3)."""
    samples = run.renderer.march(origins, directions, jitter=False, training=False)
    positions, _ = samples.midpoints(origins, directions)
    sigmas, features = zip(*(run.field.density(p) for p in positions.split(CHUNK)))
    features = torch.cat(features)
    view_dirs = directions.index_select(0, samples.ray_indices)
    rgbs = torch.cat([run.field.color(f, d) for f, d in zip(features.split(CHUNK), view_dirs.split(CHUNK))])
    return samples, torch.cat(sigmas), rgbs


def composite(samples, sigmas, rgbs, n_rays: int, alpha_threshold: float, early_stop: float, weight_threshold: float):
    """Pixels (R, 3) over white, and the density and colour evaluations per ray, of one setting."""
    trans_all, alpha = torch_ops.transmittance(sigmas, samples, n_rays)
    evaluated = trans_all >= early_stop  # the density is evaluated up to the early stop
    kept = evaluated & (alpha >= alpha_threshold)
    kept_sigmas = torch.where(kept, sigmas, torch.zeros_like(sigmas))  # dropped samples do not attenuate
    trans, kept_alpha = torch_ops.transmittance(kept_sigmas, samples, n_rays)
    weights = trans * kept_alpha
    shaded = kept & (weights >= weight_threshold)
    rays = samples.ray_indices
    opacity = torch.zeros(n_rays).index_add_(0, rays, weights)
    shaded_weight = torch.zeros(n_rays).index_add_(0, rays, weights * shaded)
    colour = torch.zeros(n_rays, 3).index_add_(0, rays, (weights * shaded)[:, None] * rgbs)
    colour = colour * (opacity / shaded_weight.clamp(min=1e-12))[:, None]
    pixels = colour + (1.0 - opacity[:, None])
    return pixels, evaluated.sum().item() / n_rays, shaded.sum().item() / n_rays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--views", type=int, nargs="+", default=[0, 2, 4, 6, 8])
    parser.add_argument("--stride", type=int, default=8, help="every stride-th pixel along each side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--alpha", type=float, nargs="+", default=[0.01, 0.02, 0.03])
    parser.add_argument("--early-stop", type=float, nargs="+", default=[1e-3, 1e-2, 3e-2])
    parser.add_argument("--weight", type=float, nargs="+", default=[0.0, 1e-3, 3e-3, 1e-2])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = load_run(args.run, "cpu")
    val = load_scene(run.config, "val")  # as the run reads it: its scene type and resolution
    h, w = val.cameras.height, val.cameras.width
    pick = (torch.arange(h)[::args.stride, None] * w + torch.arange(w)[None, ::args.stride]).reshape(-1)
    origins, directions, photos = [], [], []
    for i in args.views:
        rays = val.cameras.image_rays(i)
        origins.append(rays.origins[pick])
        directions.append(rays.directions[pick])
        photos.append(val.image(i).reshape(-1, 3)[pick])
    origins, directions, photo = torch.cat(origins), torch.cat(directions), torch.cat(photos)
    samples, sigmas, rgbs = marched_values(run, origins, directions)
    print(f"{args.run}: {len(origins)} rays of views {args.views}, {len(samples) / len(origins):.1f} marched a ray")
    print("| alpha threshold | early stop | colour at weights from | PSNR | density a ray | colour a ray |")
    print("|---|---|---|---|---|---|")
    for alpha in args.alpha:
        for early_stop in args.early_stop:
            for weight in args.weight:
                pixels, density, colour = composite(samples, sigmas, rgbs, len(origins), alpha, early_stop, weight)
                mse = ((pixels.clamp(0, 1) - photo) ** 2).mean().item()
                print(f"| {alpha:g} | {early_stop:g} | {weight:g} | {-10 * math.log10(mse):.3f} | {density:.1f} | "
                      f"{colour:.1f} |", flush=True)


if __name__ == "__main__":
    main()
