"""Adam's step over a backbone's parameters: torch's fused form (what training uses, `fields.optimizer_spec.adam`)
against its default foreach form, side by side in one process, with the ratio.

    python benchmarks/adam.py [--field hashgrid] [--preset cpu] [--threads 2] [--repeats 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from machine import cpu_line  # benchmarks/machine.py

from nfields.fields import field_class
from nfields.fields.optimizer_spec import adam


def step_seconds(optimizer: torch.optim.Optimizer) -> float:
    start = time.perf_counter()
    optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--field", default="hashgrid")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cls = field_class(args.field)
    field = cls(torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5]), cls.Config.presets()[args.preset])
    spec = cls.Config.optimizer
    for p in field.parameters():
        p.grad = torch.randn_like(p)
    optimizers = {
        "foreach (torch's default)": torch.optim.Adam(field.param_groups(spec), betas=spec.betas, eps=spec.eps),
        "fused (training's)": adam(field.param_groups(spec), betas=spec.betas, eps=spec.eps),
    }
    times = {name: [] for name in optimizers}
    for _ in range(3):  # warm-up: state allocation
        for optimizer in optimizers.values():
            optimizer.step()
    for _ in range(args.repeats):  # interleaved, so both see the same machine
        for name, optimizer in optimizers.items():
            times[name].append(step_seconds(optimizer))
    n_params = sum(p.numel() for p in field.parameters())
    print(f"{args.field} ({args.preset}): {n_params / 1e6:.2f} M parameters, {args.threads} threads, {cpu_line()}")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, seconds in medians.items():
        print(f"  {name:28s} {1000 * seconds:7.2f} ms/step")
    foreach, fused = medians.values()
    print(f"  fused is {foreach / fused:.1f}x faster")


if __name__ == "__main__":
    main()
