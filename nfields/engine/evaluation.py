"""Render a scene split with a trained field and score it (PSNR, SSIM, and LPIPS when the lpips extra is
installed)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from tqdm import tqdm

from ..datasets import Cameras, SceneData, composite_over
from ..fields import Field
from ..renderers import VolumeRenderer
from ..renderers.appearance import PROTOCOLS, PerImageAppearance, apply_transform, fit_transform
from .distributed import Ranks
from .lpips_network import load_lpips, notice
from .metrics import LPIPS_MIN_SIDE, lpips, psnr, ssim
from .pictures import to_uint8

WHITE = torch.ones(3)


def render_view(field: Field, renderer: VolumeRenderer, cameras: Cameras, index: int,
                background: torch.Tensor = WHITE) -> dict[str, torch.Tensor]:
    """rgb (H, W, 3), depth (H, W), opacity (H, W) of camera `index` at its own size, on the CPU. (A run's
    per-image appearance needs no transform here: the training images' mean transform is the identity.)"""
    device = renderer.aabb.device
    rays = cameras.image_rays(index).to(device)
    out = renderer.render_chunked(field, rays.origins, rays.directions, background.to(device))
    w, h = cameras.size_of(index)
    return {"rgb": out.rgb.clamp(0, 1).view(h, w, 3).cpu(), "depth": out.depth.view(h, w).cpu(),
            "opacity": out.opacity.view(h, w).cpu()}


@torch.no_grad()
def sampled_pixel_psnr(field: Field, renderer: VolumeRenderer, scene: SceneData, n_pixels: int, seed: int = 0,
                       ranks: Ranks | None = None) -> float:
    """PSNR over `n_pixels` fixed random pixels of all views (white background): an unbiased estimate
    of the split's pooled MSE at a small fraction of the cost of rendering full views (held-out pixels of a
    run with per-image appearance under its mean transform, the identity). With `ranks`, each renders its part
    of the pixels and the squared errors are summed over the ranks."""
    g = torch.Generator().manual_seed(seed)
    cam, x, y = scene.cameras.random_pixels(n_pixels, generator=g)
    if ranks is not None:
        cam, x, y = cam[ranks.part()], x[ranks.part()], y[ranks.part()]
    rays = scene.cameras.rays(cam, x.float() + 0.5, y.float() + 0.5).to(renderer.aabb.device)
    out = renderer.render_chunked(field, rays.origins, rays.directions, WHITE.to(renderer.aabb.device))
    pixels = scene.pixels(cam, x, y)
    target = composite_over(pixels, WHITE) if scene.has_alpha else pixels
    if ranks is None:
        return psnr(out.rgb.clamp(0, 1).cpu(), target)
    squared, count = ranks.sum([(out.rgb.clamp(0, 1).cpu() - target.float()).square().sum().item(), target.numel()])
    return float("inf") if squared == 0 else -10.0 * math.log10(squared / count)


def view_indices(n_views: int, count: int | None) -> list[int]:
    """`count` evenly spaced view indices (all when count is None or too large)."""
    if count is None or count >= n_views:
        return list(range(n_views))
    return np.linspace(0, n_views - 1, count).round().astype(int).tolist()


def held_out_colours(pred: torch.Tensor, target: torch.Tensor, appearance: PerImageAppearance | None,
                     protocol: str, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """View `index`'s render (H, W, 3) as scored against its photo (H, W, 3), and the photo, under a per-image
    appearance `protocol` (renderers/appearance.py): "mean" transforms the whole render by the training images'
    mean transform; "half" fits a transform on the left half and returns the right halves; "own" (training
    views) takes the image's own transform."""
    if appearance is None:
        return pred, target
    if protocol == "mean":  # the mean transform is the identity (the transforms are kept centred)
        return pred, target
    if protocol == "own":
        return apply_transform(appearance.transform(index), pred.reshape(-1, 3)).view_as(pred).clamp(0, 1), target
    half = pred.shape[1] // 2
    transform = fit_transform(pred[:, :half].reshape(-1, 3), target[:, :half].reshape(-1, 3))
    right = pred[:, half:]
    return apply_transform(transform, right.reshape(-1, 3)).view_as(right).clamp(0, 1), target[:, half:]


def evaluate(field: Field, renderer: VolumeRenderer, scene: SceneData, count: int | None = None,
             image_dir: Path | None = None, progress: bool = False, appearance: PerImageAppearance | None = None,
             protocol: str = "mean", with_lpips: bool = True, ranks: Ranks | None = None) -> dict:
    """Mean PSNR, SSIM and LPIPS over views of `scene` (white background), optionally saving renders.

    appearance: the run's per-image appearance; held-out views are scored under `protocol` (PROTOCOLS, or
    "own" for the training split: each image under its own transform). LPIPS (AlexNet) when with_lpips and the
    lpips package and weights are at hand (nfields.engine.lpips_network; otherwise a one-line notice).
    ranks: each rank renders its part of the views; every rank gets the scores of all, rank 0 saves the renders.
    Returns {"psnr", "ssim", ["lpips",] "views", "seconds_per_view", "per_view": [...]}.
    """
    if protocol not in PROTOCOLS + ("own",):
        raise ValueError(f"appearance protocol must be one of {PROTOCOLS}, got {protocol!r}")
    indices = view_indices(len(scene.cameras), count)
    network = load_lpips(str(renderer.aabb.device)) if with_lpips else None
    per_view, images = [], []
    start = time.perf_counter()
    for i in tqdm(indices[ranks.part()] if ranks else indices, desc="evaluating", disable=not progress, leave=False):
        pred, target = held_out_colours(render_view(field, renderer, scene.cameras, i)["rgb"], scene.image(i, WHITE),
                                        appearance, protocol, i)
        scores = {"view": i, "psnr": psnr(pred, target), "ssim": ssim(pred, target)}
        if network is not None and min(pred.shape[:2]) < LPIPS_MIN_SIDE:
            notice(f"LPIPS not scored: the scored images are {pred.shape[1]}x{pred.shape[0]} pixels, AlexNet needs "
                   f"{LPIPS_MIN_SIDE} a side")
            network = None
        if network is not None:
            scores["lpips"] = lpips(pred, target, network)
        per_view.append(scores)
        if image_dir is not None:
            images.append(to_uint8(torch.cat([pred, target], dim=1)))
    if ranks is not None:  # every rank's views, in view order
        rows = sorted(sum(ranks.gather(list(zip(per_view, images or [None] * len(per_view)))), []),
                      key=lambda row: row[0]["view"])
        per_view, images = [row for row, _ in rows], [image for _, image in rows]
    if image_dir is not None and (ranks is None or ranks.is_main):
        image_dir.mkdir(parents=True, exist_ok=True)
        for row, image in zip(per_view, images):
            iio.imwrite(image_dir / f"{scene.name}_{row['view']:03d}.png", image)
    seconds = time.perf_counter() - start
    # LPIPS only when every view has it (a rank without the network scores none)
    means = {key: float(np.mean([v[key] for v in per_view])) for key in ("psnr", "ssim", "lpips")
             if all(key in v for v in per_view)}
    return {
        **means,
        "views": len(indices),
        "background": "white",
        "appearance": protocol if appearance is not None else "none",
        "seconds_per_view": seconds / len(indices),
        "per_view": per_view,
    }


def scores_line(metrics: dict) -> str:
    """'PSNR 25.31 dB  SSIM 0.9012  LPIPS 0.0871' (LPIPS when scored)."""
    line = f"PSNR {metrics['psnr']:.2f} dB  SSIM {metrics['ssim']:.4f}"
    return line + (f"  LPIPS {metrics['lpips']:.4f}" if "lpips" in metrics else "")


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
