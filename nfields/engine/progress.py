"""The progress bar of a training run: over steps, or over training time for a time-budget run (elapsed and
remaining training time shown), with the batch PSNR, the last validation PSNR and the speed."""

from __future__ import annotations

from tqdm import tqdm

from .training_log import StepFigures


def minutes_seconds(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class TrainingProgress:
    """One bar for a run. `label` names the PSNR of the batch (e.g. "PSNR vs teacher" for a distillation)."""

    def __init__(self, description: str, steps: int, step: int, budget_seconds: float | None, train_seconds: float,
                 label: str, enabled: bool = True):
        self.budget, self.label = budget_seconds, label
        if budget_seconds:  # the bar fills with training time (evaluation excluded), steps in the text
            self.bar = tqdm(total=round(budget_seconds), initial=round(train_seconds), disable=not enabled,
                            desc=description, dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s trained{postfix}")
        else:
            self.bar = tqdm(total=steps, initial=step, unit="step", disable=not enabled, desc=description,
                            dynamic_ncols=True)
        self.psnr_ema: float | None = None
        self.rays_per_second = 0.0

    def update(self, step: int, train_seconds: float, figures: StepFigures, val_psnr: float | None,
               prefix: str = "") -> None:
        """After step `step` (its `figures`), at `train_seconds` of training."""
        psnr = figures.batch_psnr
        self.psnr_ema = psnr if self.psnr_ema is None else 0.9 * self.psnr_ema + 0.1 * psnr
        speed = figures.rays / max(figures.seconds, 1e-9)
        self.rays_per_second = 0.9 * self.rays_per_second + 0.1 * speed if self.rays_per_second else speed
        parts = [prefix] if prefix else []  # tqdm puts ", " before them
        parts += [f"step {step}", f"loss {figures.loss:.4f}", f"{self.label} {self.psnr_ema:.2f}"]
        if val_psnr is not None:
            parts.append(f"val PSNR {val_psnr:.2f}")
        parts += [f"{self.rays_per_second / 1000:.1f}k rays/s", f"{figures.samples / 1000:.0f}k samples"]
        if self.budget:
            parts.append(f"{minutes_seconds(self.budget - train_seconds)} left")
            self.bar.n = min(round(train_seconds), self.bar.total)
        else:
            self.bar.n = step
        self.bar.set_postfix_str(" | ".join(parts))  # refreshes the bar

    def close(self) -> None:
        self.bar.close()
