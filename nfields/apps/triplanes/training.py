"""Training and evaluating the classifiers (tri-plane transformer or CNN, PointNet on points): the validation
split selects the epoch, the test split (never seen before the end) is reported; the report holds the checkpoint,
confusion matrices, per-class accuracies and curves."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ...engine.checkpoint import atomic_torch_save
from ...engine.loggers import RunLogger, make_logger
from ...engine.plots import plot_confusion_matrix, plot_training_curves
from ...errors import FieldsError
from .classifiers import (
    CROP,
    build_plane_classifier,
    center_crop,
    model_config,
    offset_crops,
    random_resized_crop,
    stack_planes,
)
from .pointnet import POINTNET_PRESETS, PointNet, augment_points
from .shapes import class_names, discover_shapes, limit_per_class, load_shapes, resolve_dataset
from .store import load_fitted

CLASSIFIER_FORMAT = "nfields-triplane-classifier-1"
LEARNING_RATES = {"transformer": 5e-4, "cnn": 2e-3, "pointnet": 2e-3}


@dataclass
class TrainResult:
    model: nn.Module  # with the weights of the best validation epoch
    best_epoch: int
    val_accuracy: float
    confusion: np.ndarray  # (classes, classes), rows true, columns predicted, on val at the best epoch
    history: list[dict]  # per epoch: train_loss, train_accuracy, val_accuracy, seconds
    seconds: float
    classes: list[str] = field(default_factory=list)
    test_accuracy: float | None = None  # of the selected model on the test split, when there is one
    test_confusion: np.ndarray | None = None


def predict(model: nn.Module, x: torch.Tensor, views: Callable, batch: int = 256) -> torch.Tensor:
    """Class probabilities (N, classes) in eval mode, averaged over the views: views(x) -> list of model inputs
    of one batch (one view: a plain prediction; several crops: test-time averaging)."""
    model.eval()
    with torch.no_grad():
        return torch.cat([torch.stack([model(v).softmax(1) for v in views(x[i:i + batch])]).mean(0)
                          for i in range(0, len(x), batch)])


def confusion_matrix(truth: torch.Tensor, predicted: torch.Tensor, n_classes: int) -> np.ndarray:
    """(classes, classes) counts, rows true, columns predicted."""
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (truth.numpy(), predicted.numpy()), 1)
    return confusion


def balanced_class_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Cross-entropy weights (classes,) inversely proportional to each class's count, scaled so that the mean
    weight over the samples is 1 (the loss keeps its scale); absent classes get 0."""
    counts = torch.bincount(labels, minlength=n_classes).float()
    weights = torch.where(counts > 0, 1 / counts.clamp(min=1), torch.zeros(()))
    return weights * len(labels) / (weights * counts).sum()


def fit_classifier(model: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor,
                   y_val: torch.Tensor, n_classes: int, augment: Callable, views: Callable, epochs: int,
                   batch: int = 64, lr: float = 1e-3, weight_decay: float = 1e-3, seed: int = 0,
                   progress: bool = True, logger: RunLogger | None = None,
                   class_weights: torch.Tensor | None = None) -> TrainResult:
    """Cross-entropy (weighted per class when `class_weights` is given), AdamW + OneCycle; keeps the epoch with
    the best validation accuracy. augment(x, generator) maps a batch to the model's input, views(x) to the list
    of inputs whose probabilities `predict` averages; `logger` gets each epoch's loss, accuracies and learning
    rate. The test split never comes here: `evaluate_test` scores the selected model afterwards."""
    if len(x_train) == 0 or len(x_val) == 0:
        raise FieldsError(f"need training and validation shapes, got {len(x_train)} and {len(x_val)}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = (len(x_train) + batch - 1) // batch
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=epochs * steps_per_epoch)
    best = (-1.0, 0, None, None)
    history = []
    start = time.perf_counter()
    bar = tqdm(range(epochs), unit="epoch", disable=not progress, dynamic_ncols=True)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        loss_sum, correct = 0.0, 0
        for i in range(0, len(order), batch):
            index = order[i:i + batch]
            if len(index) < 2:  # batch norm needs two samples
                continue
            logits = model(augment(x_train[index], generator))
            loss = F.cross_entropy(logits, y_train[index], weight=class_weights)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            loss_sum += loss.item() * len(index)
            correct += (logits.argmax(1) == y_train[index]).sum().item()
        predicted = predict(model, x_val, views).argmax(1)
        accuracy = (predicted == y_val).float().mean().item()
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / len(x_train),
                        "train_accuracy": correct / len(x_train), "val_accuracy": accuracy,
                        "seconds": time.perf_counter() - start})
        if logger is not None:
            logger.scalars({"train/loss": history[-1]["train_loss"], "train/accuracy": history[-1]["train_accuracy"],
                            "val/accuracy": accuracy, "lr": optimiser.param_groups[0]["lr"]}, epoch + 1)
        if accuracy > best[0]:
            best = (accuracy, epoch + 1, {k: v.clone() for k, v in model.state_dict().items()}, predicted)
        bar.set_postfix(loss=f"{history[-1]['train_loss']:.3f}", val_acc=f"{accuracy:.3f}",
                        best=f"{best[0]:.3f}")
    bar.close()
    model.load_state_dict(best[2])
    model.eval()
    return TrainResult(model, best[1], best[0], confusion_matrix(y_val, best[3], n_classes), history,
                       time.perf_counter() - start)


def evaluate_test(result: TrainResult, x_test: torch.Tensor, y_test: torch.Tensor, views: Callable,
                  n_classes: int) -> None:
    """Score the selected model on the test split: sets result.test_accuracy and result.test_confusion."""
    if len(x_test) == 0:
        return
    predicted = predict(result.model, x_test, views).argmax(1)
    result.test_accuracy = (predicted == y_test).float().mean().item()
    result.test_confusion = confusion_matrix(y_test, predicted, n_classes)


def plane_transforms(crop: int = CROP, test_crops: bool = True) -> tuple[Callable, Callable]:
    """(augment, views) for stacked, normalised planes (B, K, R, R): the paper's random resized crop in
    training; in evaluation every offset crop (test-time averaging) or the centre crop alone."""
    views = (lambda x: offset_crops(x, crop)) if test_crops else (lambda x: [center_crop(x, crop)])
    return (lambda x, g: random_resized_crop(x, crop, generator=g)), views


def split_masks(splits: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boolean masks (N,) of the train, val and test shapes."""
    splits = np.array(splits)
    return tuple(torch.from_numpy(splits == name) for name in ("train", "val", "test"))


def train_plane_classifier(fit_dir: str | Path, model: str = "cnn", preset: str = "cpu",
                           epochs: int = 30, batch: int = 64, lr: float | None = None, weight_decay: float = 1e-3,
                           seed: int = 0, out: str | Path | None = None, progress: bool = True,
                           logger: str = "tensorboard", balanced: bool = False,
                           test_crops: bool = True) -> TrainResult:
    """Train a transformer or CNN on the fitted tri-planes of the train split of `fit_dir`, select by val
    accuracy, score the test split, and write the report and the `logger`'s curves into `out` (default
    fit_dir/<model>). `balanced`: class-weighted loss; `test_crops`: average the offset crops in evaluation."""
    fitted = load_fitted(Path(fit_dir))
    x = stack_planes(fitted.planes)
    train, val, test = split_masks(fitted.splits)
    n_classes = len(fitted.classes)
    crop = min(CROP, x.shape[-1] - 2)  # 30 for the paper's 32 x 32 planes
    net = build_plane_classifier(model, n_classes, x.shape[1], preset, crop)
    augment, views = plane_transforms(crop, test_crops)
    weights = balanced_class_weights(fitted.labels[train], n_classes) if balanced else None
    out = Path(out) if out else Path(fit_dir) / model
    log = make_logger(logger, out)
    try:
        result = fit_classifier(net, x[train], fitted.labels[train], x[val], fitted.labels[val], n_classes,
                                augment, views, epochs, batch, lr or LEARNING_RATES[model], weight_decay, seed,
                                progress, log, weights)
    finally:
        log.close()
    evaluate_test(result, x[test], fitted.labels[test], views, n_classes)
    state = {"model": model, "preset": preset, "model_config": model_config(net), "input": "triplane",
             "in_channels": x.shape[1], "crop": crop, "plane_shape": list(fitted.planes.shape[1:]),
             "balanced": balanced, "test_crops": test_crops}
    result.classes = fitted.classes
    write_report(out, result, state)
    return result


def load_point_sets(dataset: str | Path, data_root: str | Path | None = None, n_points: int = 1024,
                    seed: int = 0, limit: int | None = None):
    """(points (N, n_points, 3), labels (N,), splits, classes) of a data set, normalised as for fitting and
    split as `fields triplanes fit` splits it; clouds of another size are resampled to n_points."""
    records = limit_per_class(discover_shapes(resolve_dataset(dataset, data_root), seed=seed), limit)
    shapes, _ = load_shapes(records, n_points, seed)
    rng = np.random.default_rng(seed)
    points = np.stack([s.points if len(s.points) == n_points
                       else s.points[rng.choice(len(s.points), n_points, replace=len(s.points) < n_points)]
                       for s in shapes])
    return (torch.from_numpy(points), torch.tensor([s.record.label for s in shapes]),
            [s.record.split for s in shapes], class_names(records))


def train_pointnet(dataset: str | Path, out: str | Path, preset: str = "cpu", epochs: int = 30,
                   batch: int = 32, lr: float | None = None, weight_decay: float = 1e-4, seed: int = 0,
                   data_root: str | Path | None = None, limit: int | None = None, progress: bool = True,
                   logger: str = "tensorboard", balanced: bool = False) -> TrainResult:
    """PointNet on the raw points of the train split (the same fixed split as `fit_dataset`), selected by val
    accuracy, scored on test; the report and the `logger`'s curves go into `out`."""
    points, labels, splits, classes = load_point_sets(dataset, data_root, seed=seed, limit=limit)
    train, val, test = split_masks(splits)
    net = PointNet(len(classes), POINTNET_PRESETS[preset])
    weights = balanced_class_weights(labels[train], len(classes)) if balanced else None
    log = make_logger(logger, Path(out))
    try:
        result = fit_classifier(net, points[train], labels[train], points[val], labels[val], len(classes),
                                lambda x, g: augment_points(x, g), lambda x: [x], epochs, batch,
                                lr or LEARNING_RATES["pointnet"], weight_decay, seed, progress, log, weights)
    finally:
        log.close()
    evaluate_test(result, points[test], labels[test], lambda x: [x], len(classes))
    result.classes = classes
    write_report(Path(out), result, {"model": "pointnet", "preset": preset, "model_config": model_config(net),
                                     "input": "points", "balanced": balanced})
    return result


def per_class_accuracy(confusion: np.ndarray, classes: list[str]) -> dict:
    totals = confusion.sum(1)
    return {c: {"accuracy": float(confusion[i, i] / totals[i]) if totals[i] else None, "count": int(totals[i])}
            for i, c in enumerate(classes)}


def accuracy_table(result: TrainResult) -> str:
    """Per-class accuracy and count on val (and test, when scored), and the overall rows."""
    tables = [("val", result.confusion)] + ([("test", result.test_confusion)]
                                            if result.test_confusion is not None else [])
    per_split = [per_class_accuracy(c, result.classes) for _, c in tables]
    rows = [f"{'class':<14}" + "".join(f"{name + ' acc':>10}{'n':>6}" for name, _ in tables)]
    for name in result.classes:
        cells = [(row[name]["accuracy"], row[name]["count"]) for row in per_split]
        rows.append(f"{name:<14}" + "".join(f"{'-' if a is None else f'{a:.3f}':>10}{n:>6}" for a, n in cells))
    overall = [result.val_accuracy] + ([result.test_accuracy] if result.test_confusion is not None else [])
    rows.append(f"{'all':<14}" + "".join(f"{a:>10.3f}{int(c.sum()):>6}" for a, (_, c) in zip(overall, tables)))
    return "\n".join(rows)


def write_report(out: Path, result: TrainResult, state: dict) -> None:
    """out/classifier.pt (atomic), confusion.png (test when scored, else val), per_class.json, curves.png."""
    classes = result.classes
    out.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(out / "classifier.pt", {
        "format": CLASSIFIER_FORMAT, **state, "classes": classes, "state": result.model.state_dict(),
        "val_accuracy": result.val_accuracy, "test_accuracy": result.test_accuracy, "best_epoch": result.best_epoch})
    if result.test_confusion is not None:
        plot_confusion_matrix(result.test_confusion, classes, out / "confusion.png",
                              f"{state['model']}: test accuracy {result.test_accuracy:.3f}")
    else:
        plot_confusion_matrix(result.confusion, classes, out / "confusion.png",
                              f"{state['model']}: validation accuracy {result.val_accuracy:.3f}")
    plot_training_curves(result.history, out / "curves.png", state["model"])
    report = {"model": state["model"], "val_accuracy": result.val_accuracy, "test_accuracy": result.test_accuracy,
              "best_epoch": result.best_epoch, "seconds": result.seconds,
              **{k: state[k] for k in ("preset", "balanced", "test_crops") if k in state},
              "per_class": per_class_accuracy(result.confusion, classes), "confusion": result.confusion.tolist(),
              "test_per_class": None if result.test_confusion is None
              else per_class_accuracy(result.test_confusion, classes),
              "test_confusion": None if result.test_confusion is None else result.test_confusion.tolist(),
              "history": result.history}
    (out / "per_class.json").write_text(json.dumps(report, indent=1))
