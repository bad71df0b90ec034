"""Is the equal-size path as fast as before frames of different sizes? Lego 400x400 (100 images), default CPU
settings: main's `sample_batch` (three randint draws inline) and this one (`Cameras.random_pixels`) set on one
Trainer in turn, each timing a training step and 10 x sample_batch(16384), interleaved. Usage:

    FIELDS_DATA_ROOT=/work/shared/data python benchmarks/equal_size_step.py --pairs 12 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
import types
from pathlib import Path

import torch

from nfields.datasets import composite_over, load_blender_scene, resolve_scene_dir
from nfields.engine.config import TrainConfig
from nfields.engine.trainer import Batch, Trainer


def sample_batch_before(self: Trainer, n_rays: int) -> Batch:
    """main's (d0907e7) sample_batch, returning a Batch."""
    cam = torch.randint(0, len(self.cameras), (n_rays,))
    x = torch.randint(0, self.cameras.width, (n_rays,))
    y = torch.randint(0, self.cameras.height, (n_rays,))
    rays = self.cameras.rays(cam, x.float() + 0.5, y.float() + 0.5).to(self.device)
    pixels = self.images[cam, y, x].float() / 255.0
    background = torch.rand(n_rays, 3, device=self.device)
    return Batch(rays.origins, rays.directions, composite_over(pixels, background), background, cam.to(self.device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scene = load_blender_scene(resolve_scene_dir("lego", None), "train", 1)
    out = Path("/tmp/equal_size_step")
    out.mkdir(exist_ok=True)
    config = TrainConfig(scene="lego", steps=10**6, eval_every=1e9, threads=args.threads, logger="none",
                         output=str(out))
    trainer = Trainer(config, out, scene, None, progress=False)
    for _ in range(20):  # past the first occupancy updates
        trainer.train_step()
    variants = {"before": sample_batch_before, "after": Trainer.sample_batch}
    steps, samples = {k: [] for k in variants}, {k: [] for k in variants}
    for i in range(args.pairs):
        for name in (("before", "after") if i % 2 == 0 else ("after", "before")):
            trainer.sample_batch = types.MethodType(variants[name], trainer)
            tic = time.perf_counter()
            trainer.train_step()
            steps[name].append(time.perf_counter() - tic)
            tic = time.perf_counter()
            for _ in range(10):
                trainer.sample_batch(1 << 14)
            samples[name].append((time.perf_counter() - tic) / 10)
    for name in variants:
        print(f"{name}: train_step median {statistics.median(steps[name]) * 1e3:.1f} ms, "
              f"sample_batch(16384) median {statistics.median(samples[name]) * 1e3:.2f} ms")
    print(f"ratio after/before: train_step {statistics.median(steps['after']) / statistics.median(steps['before']):.3f}"
          f", sample_batch {statistics.median(samples['after']) / statistics.median(samples['before']):.3f}")


if __name__ == "__main__":
    main()
