"""Plots people would rather see than read."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_psnr_vs_time(history: list[dict], path: Path, title: str) -> None:
    """history: [{"train_seconds", "val_psnr", ...}] -> PNG line plot of validation PSNR over training time."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot([h["train_seconds"] / 60 for h in history], [h["val_psnr"] for h in history], marker="o")
    ax.set_xlabel("training time (minutes)")
    ax.set_ylabel("validation PSNR (dB, sampled pixels)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
