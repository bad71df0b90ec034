"""Where a training step's time goes: per-phase milliseconds from torch.profiler on a trained run.

    python benchmarks/profile_step.py RUN [--steps 16] [--threads 2]

RUN is a run folder (e.g. from `fields train --output RUN`); its checkpoint sets the realistic
state (occupancy grid, ray count). Phases are disjoint: `march` is the rounds of marching, `early termination`
the rest of the gradient-free pass that decides which samples count (its density calls included), `occupancy
update` includes its density calls; `backward + rest` (backward pass, compositing,
loss, batch sampling) is the step minus the phases.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.profiler import profile, record_function

from nfields.engine.config import TrainConfig
from nfields.engine.scenes import load_scene
from nfields.engine.trainer import Trainer
from nfields.renderers.marching import RayMarch

_open_phases: list[str] = []


def labelled(name, fn, only_at_top: bool = False):
    """fn wrapped in a profiler label; with only_at_top, unlabelled when called inside another phase."""

    def wrapper(*args, **kwargs):
        if only_at_top and _open_phases:
            return fn(*args, **kwargs)
        _open_phases.append(name)
        try:
            with record_function(name):
                return fn(*args, **kwargs)
        finally:
            _open_phases.pop()

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = Path(args.run)  # read only: steps taken here are never saved
    config = TrainConfig.load(run / "config.json")
    trainer = Trainer(config, run, load_scene(config, "train"), None, resume=True, progress=False)
    for _ in range(3):
        trainer.train_step()
    renderer, field = trainer.renderer, trainer.field
    RayMarch.next = labelled("march", RayMarch.next)  # rounds of marching, inside early termination
    renderer.march_until_opaque = labelled("early termination", renderer.march_until_opaque)
    renderer.update_occupancy = labelled("occupancy update", renderer.update_occupancy)
    field.density = labelled("density (gradients)", field.density, only_at_top=True)
    field.color = labelled("color", field.color)
    trainer.optimizer.step = labelled("adam", trainer.optimizer.step)
    samples = 0
    with profile() as prof:
        for _ in range(args.steps):
            with record_function("step"):
                samples += trainer.train_step().samples
    totals = {e.key: e.cpu_time_total / args.steps / 1000 for e in prof.key_averages()}
    totals["early termination"] -= totals.get("march", 0)  # its rounds of marching are the march phase
    phases = ["march", "early termination", "density (gradients)", "color", "occupancy update", "adam"]
    step = totals["step"]
    print(f"{config.field} on {config.scene}: {step:.0f} ms/step, {samples / args.steps:.0f} samples/step, "
          f"{int(trainer.n_rays)} rays/step, {torch.get_num_threads()} threads")
    for phase in phases:
        print(f"  {phase:20s} {totals.get(phase, 0):7.1f} ms  {100 * totals.get(phase, 0) / step:5.1f} %")
    rest = step - sum(totals.get(phase, 0) for phase in phases)
    print(f"  {'backward + rest':20s} {rest:7.1f} ms  {100 * rest / step:5.1f} %")
    print("\nTop operators (self time):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


if __name__ == "__main__":
    main()
