"""Training speed and quality of this checkout against an earlier revision, side by side in one session.

Each checkout trains lego for the same wall-clock budget with the README's command (`fields train --scene lego
--time-budget M --threads T`), one after the other on the same machine; the table gives steps, steps per second
(both aim at the same samples per step), held-out PSNR (the run's own final evaluation on 10 val views), seconds
per 400x400 view, and the ratios. `--isa avx2` runs both on the code paths of an AVX2-only CPU (ATen, MKL and
oneDNN capped at AVX2, the native kernels built with -march=x86-64-v3): what the project's weaker 2-core machines
run, measured on a stronger one.

On a machine whose speed drifts (a shared VM: the same steps can take 50 % longer an hour later), one pair says
little: `--pairs N` runs N pairs, every other one in the reverse order (after first), so that a steady drift counts
against each side alike, and gives each pair's ratio and the pooled one (all steps over all training seconds of
each side). Finished runs in --out are read again, not rerun.

    python benchmarks/speed_against_revision.py --before 040d046 --minutes 10 --isa avx2 --out /tmp/speed --pairs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from machine import cpu_line  # benchmarks/machine.py

AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "FIELDS_KERNEL_MARCH": "x86-64-v3", "FIELDS_CPU_ISA": "avx2"}
REPO = Path(__file__).resolve().parents[1]


def checkout_python(revision: str, folder: Path) -> str:
    """A Python whose `nfields` is `revision` of this repository: a worktree installed into its own venv."""
    if not folder.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), revision], check=True)
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(folder / ".venv")], check=True)
        # A wheel, not an editable install: this checkout's own (seen through --system-site-packages) would mix in.
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                        str(folder / "wheel"), str(folder)], check=True)
        wheel = next((folder / "wheel").glob("nfields-*.whl"))
        subprocess.run([str(folder / ".venv/bin/pip"), "install", "-q", "--no-deps", str(wheel)], check=True)
    python = str(folder / ".venv/bin/python")
    imported = subprocess.run([python, "-c", "import nfields.cuda; print(nfields.cuda.__file__)"], cwd=folder.parent,
                              capture_output=True, text=True, check=True).stdout.strip()
    if not imported.startswith(str(folder)):  # this checkout's editable install would mix in
        raise SystemExit(f"{revision}'s Python imports nfields from {imported}, not from {folder}")
    return python


def train(python: str, out: Path, minutes: float, threads: int, env: dict) -> dict:
    """One time-budgeted lego run (kept: a second call only reads it); its steps, training seconds and final
    evaluation."""
    if not (out / "metrics.json").exists():
        # Run outside any checkout: a checkout's `nfields/` folder in the working directory would shadow the
        # revision's installed package. The data root is the README's ../shared/data unless FIELDS_DATA_ROOT is set.
        data_root = os.environ.get("FIELDS_DATA_ROOT", str(REPO.parent / "shared" / "data"))
        subprocess.run([python, "-m", "nfields.cli", "train", "--scene", "lego", "--time-budget", str(minutes),
                        "--threads", str(threads), "--output", str(out), "--logger", "none"],
                       env={**os.environ, **env, "FIELDS_DATA_ROOT": data_root}, check=True, cwd=out.parent)
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    metrics = json.loads((out / "metrics.json").read_text())
    return {"steps": int(state["step"]), "seconds": float(state["train_seconds"]), "psnr": metrics["psnr"],
            "view_s": metrics["seconds_per_view"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the earlier revision (commit, tag or branch)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--isa", choices=["native", "avx2"], default="native")
    parser.add_argument("--out", type=Path, default=Path("runs/speed"))
    parser.add_argument("--pairs", type=int, default=1, help="pairs of runs, every other one after first")
    args = parser.parse_args()
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    args.out = args.out.resolve()  # the runs start in another working directory
    args.out.mkdir(parents=True, exist_ok=True)
    env = AVX2_ONLY if args.isa == "avx2" else {}
    pythons = {"before": checkout_python(args.before, args.out / "before-checkout"), "after": sys.executable}
    pairs = []
    for pair in range(args.pairs):
        sides = ["before", "after"] if pair % 2 == 0 else ["after", "before"]
        suffix = "" if pair == 0 else f"-{pair + 1}"  # the first pair's folders keep a single pair's names
        pairs.append({side: train(pythons[side], args.out / f"{side}{suffix}", args.minutes, args.threads, env)
                      for side in sides})
    aten = "; the runs: ATen AVX2, kernels -march=x86-64-v3" if args.isa == "avx2" else ""
    print(f"lego, {args.minutes:g} minutes, {args.threads} threads, {args.isa} code paths; {cpu_line()}{aten}")
    labels = {"before": f"before ({args.before})", "after": "after (this checkout)"}
    for number, runs in enumerate(pairs, 1):
        print(f"pair {number} ({' then '.join(runs)}):")
        for side, r in runs.items():
            print(f"  {labels[side]:28s} {r['steps']:6d} steps {rate(r):6.2f} steps/s "
                  f"val {r['psnr']:.2f} dB, {r['view_s']:.2f} s per 400x400 view")
        before, after = runs["before"], runs["after"]
        print(f"  after/before: steps/s x{rate(after) / rate(before):.2f}, PSNR {after['psnr'] - before['psnr']:+.2f} "
              f"dB, render x{before['view_s'] / after['view_s']:.2f} faster")
    if len(pairs) > 1:
        pooled = {side: sum(p[side]["steps"] for p in pairs) / sum(p[side]["seconds"] for p in pairs)
                  for side in pythons}  # all steps over all training seconds
        print(f"pooled over {len(pairs)} pairs: {pooled['before']:.2f} against {pooled['after']:.2f} steps/s, "
              f"x{pooled['after'] / pooled['before']:.2f}")


def rate(run: dict) -> float:
    """Steps per second of training time."""
    return run["steps"] / run["seconds"]


if __name__ == "__main__":
    main()
