"""The loop a Trainer runs (`Trainer.run`): steps until the step or time budget is spent, with quick validations,
checkpoints, snapshots, logs and the progress bar on their schedules. Ctrl-C and SIGTERM stop it with the
checkpoint saved; under torchrun, so does a rank that is lost."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ContextManager, Protocol

from ..interrupts import sigterm_ignored
from .distributed import is_main, lost_contact
from .loggers import make_logger
from .progress import TrainingProgress
from .training_log import TrainingLog

if TYPE_CHECKING:
    from .trainer import Trainer


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    train_seconds: float
    metrics: dict | None  # final evaluation, None when interrupted


class TrainingMonitor(Protocol):
    """Watches a run while it trains (e.g. the live viewer): each step runs inside `step_guard()`."""

    def start(self, trainer: "Trainer") -> None: ...

    def step_guard(self) -> ContextManager: ...

    def after_step(self, trainer: "Trainer", val_psnr: float | None) -> None: ...

    def finish(self, trainer: "Trainer") -> None: ...


def open_log(trainer: "Trainer") -> TrainingLog:
    """The run's log (config.logger) in its folder, continuing the picture schedule of a resumed run."""
    cfg = trainer.config
    kind = cfg.logger if is_main(trainer.ranks) else "none"  # under torchrun, rank 0 alone writes
    logger = make_logger(kind, trainer.run_dir, {"field": cfg.field, "scene": cfg.scene})
    return TrainingLog(logger, cfg.log_every, cfg.log_images_every, last_picture=trainer.train_seconds)


def run_training(trainer: "Trainer", monitor: TrainingMonitor | None = None) -> TrainResult:
    """Train until done, then the final evaluation; an interrupted run saves its checkpoint and says how to resume."""
    cfg = trainer.config
    total = f"{cfg.time_budget:g} min" if cfg.time_budget else f"{cfg.steps} steps"
    bar = TrainingProgress(f"{cfg.field} {cfg.scene} ({total})", cfg.steps, trainer.step,
                           60.0 * cfg.time_budget if cfg.time_budget else None, trainer.train_seconds,
                           trainer.batch_psnr_label, enabled=trainer.progress)
    if trainer.ranks is not None and trainer.progress:
        print(trainer.ranks.batch_line(trainer.target_samples))
    log = open_log(trainer)
    trainer.field.train()
    try:
        try:
            train_steps(trainer, bar, log, monitor)
        except RuntimeError as err:  # another rank is gone: rank 0 saves its state, which is every rank's
            if trainer.ranks is None or not lost_contact(err):
                raise
            with sigterm_ignored():  # torchrun is stopping this process too
                bar.close()
                log.close()
                trainer.save()
            raise trainer.ranks.lost_error(err, trainer.step, trainer.run_dir) from None
    except KeyboardInterrupt:  # also one that comes while the above begins
        with sigterm_ignored():
            bar.close()
            log.close()
            trainer.save()
        if is_main(trainer.ranks):
            print(f"\nInterrupted at step {trainer.step}; checkpoint saved. "
                  f"Resume with: fields train --resume {trainer.run_dir}")
        return TrainResult(trainer.run_dir, trainer.step, trainer.train_seconds, None)
    bar.close()
    trainer.save()
    try:
        return TrainResult(trainer.run_dir, trainer.step, trainer.train_seconds, trainer.finish(log))
    finally:
        log.close()


def train_steps(trainer: "Trainer", bar: TrainingProgress, log: TrainingLog, monitor: TrainingMonitor | None) -> None:
    """Steps until done, with quick validations, checkpoints, snapshots and logs on their schedules."""
    cfg = trainer.config
    guard = monitor.step_guard if monitor is not None else nullcontext
    last_eval = last_ckpt = trainer.train_seconds
    val_psnr = None
    while not trainer.done():
        with guard():
            figures = trainer.train_step()
            figures.seconds = agreed_seconds(trainer, figures.seconds)
        trainer.train_seconds += figures.seconds
        log.after_step(trainer, figures)
        save_snapshots(trainer)
        if trainer.train_seconds - last_eval >= cfg.eval_every:
            with guard():
                val_psnr, last_eval = trainer.quick_eval(), trainer.train_seconds
                log.after_validation(trainer, val_psnr)
        if trainer.train_seconds - last_ckpt >= cfg.checkpoint_every:
            trainer.save()
            last_ckpt = trainer.train_seconds
        if monitor is not None:
            monitor.after_step(trainer, val_psnr)
        bar.update(trainer.step, trainer.train_seconds, figures, val_psnr, trainer.progress_prefix())


def agreed_seconds(trainer: "Trainer", seconds: float) -> float:
    """Under torchrun, the step's time as rank 0 measured it (time budgets and schedules run out alike), after the
    --check-sync test when due; `seconds` as it is in a single process."""
    if trainer.ranks is None:
        return seconds
    if trainer.config.check_sync and trainer.step % trainer.config.check_sync == 0:
        trainer.ranks.check_sync(trainer.synced_tensors(), trainer.step)
    return trainer.ranks.main_seconds(seconds)


def save_snapshots(trainer: "Trainer") -> None:
    """The checkpoints kept at the training times of `snapshot_minutes` (checkpoint_<minutes>min.pt), once each."""
    for minute in trainer.config.snapshot_minutes:
        if minute not in trainer.snapshots_done and trainer.train_seconds >= 60 * minute:
            trainer.snapshots_done.append(minute)
            trainer.save(f"checkpoint_{minute:g}min.pt")
