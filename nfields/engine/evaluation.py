"""Render a scene split with a trained field and score it (PSNR, SSIM)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from tqdm import tqdm

from ..datasets import Cameras, SceneData, composite_over
from ..fields import Field
from ..renderers import VolumeRenderer
from .metrics import psnr, ssim

WHITE = torch.ones(3)


def render_view(field: Field, renderer: VolumeRenderer, cameras: Cameras, index: int,
                background: torch.Tensor = WHITE) -> dict[str, torch.Tensor]:
    """rgb (H, W, 3), depth (H, W), opacity (H, W) of camera `index`, on the CPU."""
    device = renderer.aabb.device
    rays = cameras.image_rays(index).to(device)
    out = renderer.render_chunked(field, rays.origins, rays.directions, background.to(device))
    h, w = cameras.height, cameras.width
    return {"rgb": out.rgb.clamp(0, 1).view(h, w, 3).cpu(), "depth": out.depth.view(h, w).cpu(),
            "opacity": out.opacity.view(h, w).cpu()}


@torch.no_grad()
def sampled_pixel_psnr(field: Field, renderer: VolumeRenderer, scene: SceneData, n_pixels: int, seed: int = 0) -> float:
    """PSNR over `n_pixels` fixed random pixels of all views (white background): an unbiased estimate
    of the split's pooled MSE at a small fraction of the cost of rendering full views."""
    g = torch.Generator().manual_seed(seed)
    cam = torch.randint(0, len(scene.cameras), (n_pixels,), generator=g)
    x = torch.randint(0, scene.cameras.width, (n_pixels,), generator=g)
    y = torch.randint(0, scene.cameras.height, (n_pixels,), generator=g)
    rays = scene.cameras.rays(cam, x.float() + 0.5, y.float() + 0.5).to(renderer.aabb.device)
    out = renderer.render_chunked(field, rays.origins, rays.directions, WHITE.to(renderer.aabb.device))
    pixels = scene.pixels(cam, x, y)
    target = composite_over(pixels, WHITE) if scene.has_alpha else pixels
    return psnr(out.rgb.clamp(0, 1).cpu(), target)


def view_indices(n_views: int, count: int | None) -> list[int]:
    """`count` evenly spaced view indices (all when count is None or too large)."""
    if count is None or count >= n_views:
        return list(range(n_views))
    return np.linspace(0, n_views - 1, count).round().astype(int).tolist()


def evaluate(field: Field, renderer: VolumeRenderer, scene: SceneData, count: int | None = None,
             image_dir: Path | None = None, progress: bool = False) -> dict:
    """Mean PSNR and SSIM over views of `scene` (white background), optionally saving renders.

    Returns {"psnr", "ssim", "views", "seconds_per_view", "per_view": [...]}.
    """
    indices = view_indices(len(scene.cameras), count)
    if image_dir is not None:
        image_dir.mkdir(parents=True, exist_ok=True)
    per_view = []
    start = time.perf_counter()
    for i in tqdm(indices, desc="evaluating", disable=not progress, leave=False):
        pred = render_view(field, renderer, scene.cameras, i)["rgb"]
        target = scene.image(i, WHITE)
        per_view.append({"view": i, "psnr": psnr(pred, target), "ssim": ssim(pred, target)})
        if image_dir is not None:
            side_by_side = torch.cat([pred, target], dim=1)
            iio.imwrite(image_dir / f"{scene.name}_{i:03d}.png", (side_by_side * 255 + 0.5).byte().numpy())
    seconds = time.perf_counter() - start
    return {
        "psnr": float(np.mean([v["psnr"] for v in per_view])),
        "ssim": float(np.mean([v["ssim"] for v in per_view])),
        "views": len(indices),
        "background": "white",
        "seconds_per_view": seconds / len(indices),
        "per_view": per_view,
    }


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
