"""The depth loss on lego from sparse views: depth maps rendered from a trained run's field (its expected
termination distance where it is at least half opaque, as z-depth; 0 elsewhere) for N evenly spaced training views
at downscale K, then a run of those N photos with and without --depth-loss, step-limited; scored on 10 val views:
PSNR and the mean |rendered depth - teacher depth| where the teacher sees a surface. Usage:

    FIELDS_DATA_ROOT=/work/shared/data python benchmarks/depth_loss_lego.py --teacher /work/bench/lego_after \\
        --steps 300 --weights 0 0.1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from nfields.datasets import Cameras, SceneData, load_blender_scene, resolve_scene_dir
from nfields.engine.config import TrainConfig
from nfields.engine.evaluation import evaluate
from nfields.engine.runs import load_run
from nfields.engine.trainer import Trainer

WHITE = torch.ones(3)


@torch.no_grad()
def surface_distance(run, cameras: Cameras, index: int) -> torch.Tensor:
    """(H*W,) distance along each ray of view `index` to the run's surface (0 where less than half opaque)."""
    rays = cameras.image_rays(index)
    out = run.renderer.render_chunked(run.field, rays.origins, rays.directions, WHITE)
    return torch.where(out.opacity > 0.5, out.depth / out.opacity.clamp(min=1e-6), 0.0)


def z_depth_map(run, cameras: Cameras, index: int) -> torch.Tensor:
    """(H, W) z-depth of view `index` from the run's surface distance."""
    rays = cameras.image_rays(index)
    w, h = cameras.size_of(index)
    return (surface_distance(run, cameras, index) * (rays.directions @ -cameras.camera_to_world[index, :3, 2])
            ).reshape(h, w)


def sparse_scene(scene: SceneData, views: torch.Tensor, depths: torch.Tensor) -> SceneData:
    c = scene.cameras
    cameras = dataclasses.replace(c, camera_to_world=c.camera_to_world[views], focal=c.focal[views],
                                  principal=c.principal[views])
    return SceneData(cameras, scene.images[views], scene.aabb, scene.name, scene.near, depths=depths)


@torch.no_grad()
def depth_error(trainer: Trainer, val: SceneData, views: list[int], truth: list[torch.Tensor]) -> float:
    errors = []
    for i, t in zip(views, truth):
        rays = val.cameras.image_rays(i)
        out = trainer.renderer.render_chunked(trainer.field, rays.origins, rays.directions, WHITE)
        errors.append((out.depth - t)[t > 0].abs())
    return torch.cat(errors).mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="/work/bench/lego_after")
    parser.add_argument("--views", type=int, default=10)
    parser.add_argument("--downscale", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--samples-per-step", type=int, default=1 << 14)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/depth_loss_lego.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    teacher = load_run(args.teacher, device="cpu")
    teacher.field.eval()
    folder = resolve_scene_dir("lego", None)
    train_all = load_blender_scene(folder, "train", args.downscale)
    val = load_blender_scene(folder, "val", args.downscale)
    views = torch.linspace(0, len(train_all.cameras) - 1, args.views).round().long()
    tic = time.time()
    depths = torch.stack([z_depth_map(teacher, train_all.cameras, int(i)) for i in views])
    train = sparse_scene(train_all, views, depths)
    val_views = torch.linspace(0, len(val.cameras) - 1, 10).round().long().tolist()
    val_truth = [surface_distance(teacher, val.cameras, i) for i in val_views]
    print(f"teacher depth maps: {time.time() - tic:.0f} s; pixels with depth {(depths > 0).float().mean():.3f}")
    results = {}
    for weight in args.weights:
        out = Path(f"/tmp/depth_loss_lego_{weight:g}")
        out.mkdir(exist_ok=True)
        config = TrainConfig(scene="lego", steps=args.steps, samples_per_step=args.samples_per_step, eval_every=1e9,
                             threads=args.threads, depth_loss=weight, logger="none", output=str(out))
        trainer = Trainer(config, out, train, None, progress=False)
        tic = time.time()
        while not trainer.done():
            trainer.train_step()
        seconds = time.time() - tic
        trainer.field.eval()
        metrics = evaluate(trainer.field, trainer.renderer, val, count=10, with_lpips=False)
        results[weight] = {"val_psnr": metrics["psnr"], "val_depth_mae": depth_error(trainer, val, val_views,
                                                                                    val_truth),
                           "train_seconds": seconds}
        print(weight, results[weight], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
