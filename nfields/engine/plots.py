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


def plot_confusion_matrix(confusion, classes: list[str], path: Path, title: str) -> None:
    """confusion (K, K) counts, rows true, columns predicted -> PNG heat map with the counts written in."""
    size = 2 + 0.5 * len(classes)
    fig, ax = plt.subplots(figsize=(size, size), dpi=120)
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if confusion[i, j]:
                ax.text(j, i, int(confusion[i, j]), ha="center", va="center",
                        color="white" if confusion[i, j] > confusion.max() / 2 else "black", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_training_curves(history: list[dict], path: Path, title: str) -> None:
    """history: [{"epoch", "train_loss", "train_accuracy", "val_accuracy"}] -> PNG, loss and accuracies."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5), dpi=120)
    epochs = [h["epoch"] for h in history]
    left.plot(epochs, [h["train_loss"] for h in history])
    left.set_xlabel("epoch")
    left.set_ylabel("training loss")
    right.plot(epochs, [h["train_accuracy"] for h in history], label="train (augmented)")
    right.plot(epochs, [h["val_accuracy"] for h in history], label="validation")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    right.legend()
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
