"""Data-parallel training on one CPU machine: lego for a time budget as 1 process x 2 threads, then as 2 ranks x
1 thread (torchrun, gloo), with the same total batch (samples per step over all ranks); prints steps, steps/s
and val PSNR / SSIM at the end of the budget (evaluation time excluded), and the CPU. Usage:

    FIELDS_DATA_ROOT=/work/shared/data python benchmarks/distributed.py --minutes 5
    python benchmarks/distributed.py --minutes 0.3 --views 1    # a quick check that both launches work
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from real_captures import cpu_name

# (label, processes, threads per process)
SETUPS = [("1 rank x 2 threads", 1, 2), ("2 ranks x 1 thread", 2, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="training time of each setup")
    parser.add_argument("--field", default="hashgrid")
    parser.add_argument("--views", type=int, default=8, help="evenly spaced val views scored at the end")
    parser.add_argument("--data-root", help="folder holding nerf_synthetic/lego (default: $FIELDS_DATA_ROOT)")
    parser.add_argument("--out", default="runs/bench-distributed")
    args = parser.parse_args()
    rows = []
    for label, ranks, threads in SETUPS:
        out = Path(args.out) / f"lego-{args.field}-{ranks}x{threads}-{time.strftime('%Y%m%d-%H%M%S')}"
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)] if ranks > 1 else []
        command = [sys.executable, *launcher, "-m", "nfields.cli", "train", "--scene", "lego", "--field", args.field,
                   "--time-budget", str(args.minutes), "--threads", str(threads), "--eval-every", "1e9",
                   "--final-eval-views", str(args.views), "--output", str(out),
                   *(["--data-root", args.data_root] if args.data_root else [])]
        print(f"\n== {label}: {' '.join(command[1:])}", flush=True)
        subprocess.run(command, env=dict(os.environ, OMP_NUM_THREADS=str(threads)), check=True)
        m = json.loads((out / "metrics.json").read_text())
        rows.append({"setup": label, "steps": m["step"], "seconds": m["train_seconds"],
                     "steps_per_s": m["step"] / m["train_seconds"], "psnr": m["psnr"], "ssim": m["ssim"],
                     "views": m["views"], "run": str(out)})
        (out / "benchmark.json").write_text(json.dumps(rows[-1], indent=2) + "\n")
    print_table(rows, args.minutes, args.field)


def print_table(rows: list[dict], minutes: float, field: str) -> None:
    print(f"\nlego {field}, {minutes:g} min of training, same total batch; CPU: {cpu_name()}")
    print("| setup | steps | steps/s | val PSNR (SSIM) [views] |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['setup']} | {r['steps']} | {r['steps_per_s']:.2f} | {r['psnr']:.2f} ({r['ssim']:.3f}) "
              f"[{r['views']}] |")


if __name__ == "__main__":
    main()
