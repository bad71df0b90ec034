"""`fields triplanes fit | train-classifier | train-pointnet | classify`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..apps.triplanes.fitting import FitConfig
from .options import add_options, build
from .shared import add_shared, one_line_warnings, set_threads, shared

POSITIVE = {"min": 1}


@dataclass
class FitOptions:
    dataset: str = dataclasses.field(metadata={
        "positional": True, "help": "folder <class>/train/*.pcd (or meshes), or its name under the data root"})
    out: str  # folder of decoder.pt and shapes/<class>/<split>/<file>.pt
    split: Literal["train", "val", "test", "all"] = "all"  # the split to fit
    batch: int = dataclasses.field(default=64, metadata=POSITIVE)  # shapes fitted at once
    # only the first N shapes of each class and split; None: all
    limit_per_class: int | None = dataclasses.field(default=None, metadata=POSITIVE)
    seed: int = 0  # random seed


@dataclass
class ClassifierOptions:
    dir: str = dataclasses.field(metadata={"positional": True, "help": "the --out folder of `fields triplanes fit`"})
    # classifier of the tri-planes (cnn: 93.0 % on ModelNet10's held-out test split, the cpu transformer 88.3 %;
    # docs/triplanes.md)
    model: Literal["transformer", "cnn"] = "cnn"
    # transformer sizes: cpu 3 x 64, medium 4 x 128, paper 8 x 512
    preset: Literal["cpu", "medium", "paper"] = "cpu"
    epochs: int = dataclasses.field(default=30, metadata=POSITIVE)  # training epochs
    batch: int = dataclasses.field(default=64, metadata=POSITIVE)  # shapes per step
    lr: float | None = None  # peak learning rate; None: 5e-4 transformer, 2e-3 CNN
    balanced: bool = False  # class-weighted cross-entropy (weights 1 / class count; not measured on the full set)
    test_crops: bool = True  # evaluate as the mean over the 9 offset crops; --no-test-crops: the centre crop
    out: str | None = None  # report folder; None: DIR/<model>
    seed: int = 0  # random seed


@dataclass
class PointNetOptions:
    dataset: str = dataclasses.field(metadata={"positional": True, "help": "as for `fields triplanes fit`"})
    out: str  # report folder
    preset: Literal["cpu", "paper"] = "cpu"  # cpu: widths up to 128; paper: 1024
    epochs: int = dataclasses.field(default=30, metadata=POSITIVE)  # training epochs
    batch: int = dataclasses.field(default=32, metadata=POSITIVE)  # shapes per step
    balanced: bool = False  # class-weighted cross-entropy (weights 1 / class count; not measured on the full set)
    # only the first N shapes of each class and split; None: all
    limit_per_class: int | None = dataclasses.field(default=None, metadata=POSITIVE)
    seed: int = 0  # random seed


@dataclass
class ClassifyOptions:
    checkpoint: str = dataclasses.field(metadata={"positional": True, "help": "classifier.pt of train-classifier"})
    field: list[str] = dataclasses.field(metadata={
        "positional": True, "help": "shape .pt files, run folders or checkpoint.pt of "
                                    "`fields train --field triplane --preset published`"})


def add_parser(sub) -> None:
    group = sub.add_parser("triplanes", help="tri-plane classifiers: fit a tri-plane per shape, classify them")
    group.set_defaults(handler=run)
    commands = group.add_subparsers(dest="triplanes_command", required=True)
    p = commands.add_parser("fit", help="fit one tri-plane per shape (resumable; shards under torchrun)")
    add_options(p, FitOptions)
    add_options(p, FitConfig)
    add_shared(p, "data_root", "threads", "logger")
    p = commands.add_parser("train-classifier", help="train a classifier on fitted tri-planes (val selects)")
    add_options(p, ClassifierOptions)
    add_shared(p, "threads", "logger")
    p = commands.add_parser("train-pointnet", help="PointNet baseline on the raw points, same split")
    add_options(p, PointNetOptions)
    add_shared(p, "data_root", "threads", "logger")
    p = commands.add_parser("classify", help="classes of fitted tri-plane files or triplane radiance fields")
    add_options(p, ClassifyOptions, overrides={"field": {"nargs": "+"}})


def run(args) -> int:
    one_line_warnings()
    set_threads(args)
    return {"fit": _fit, "train-classifier": _train_classifier, "train-pointnet": _train_pointnet,
            "classify": _classify}[args.triplanes_command](args)


def _fit(args) -> int:
    from ..apps.triplanes.pipeline import fit_dataset

    o = build(FitOptions, args)
    s = fit_dataset(o.dataset, o.out, o.split, o.batch, build(FitConfig, args), shared(args)["data_root"],
                    o.seed, limit=o.limit_per_class, logger=shared(args)["logger"])
    print(f"fitted {s.fitted} shapes ({s.already_done} already done) in {s.seconds:.0f} s "
          f"({s.decoder_seconds:.0f} s decoder); mean UDF error {s.udf_error:.4f}, Chamfer {s.chamfer:.4f} "
          f"(normalised frame, longest side 1.8) -> {Path(o.out) / 'shapes'}")
    if s.skipped:
        print(f"skipped {len(s.skipped)} unusable files:\n  " + "\n  ".join(s.skipped))
    return 0


def _train_classifier(args) -> int:
    from ..apps.triplanes.training import train_plane_classifier

    o = build(ClassifierOptions, args)
    result = train_plane_classifier(o.dir, o.model, o.preset, o.epochs, o.batch, o.lr, seed=o.seed, out=o.out,
                                    logger=shared(args)["logger"], balanced=o.balanced, test_crops=o.test_crops)
    out = Path(o.out) if o.out else Path(o.dir) / o.model
    _report(o.model, result, f"{out} (classifier.pt, confusion.png, per_class.json, curves.png)")
    return 0


def _train_pointnet(args) -> int:
    from ..apps.triplanes.training import train_pointnet

    o = build(PointNetOptions, args)
    result = train_pointnet(o.dataset, o.out, o.preset, o.epochs, o.batch, seed=o.seed,
                            data_root=shared(args)["data_root"], limit=o.limit_per_class,
                            logger=shared(args)["logger"], balanced=o.balanced)
    _report("pointnet", result, o.out)
    return 0


def _report(model: str, result, out) -> None:
    """A classifier training's per-class accuracy table and one summary line."""
    from ..apps.triplanes.training import accuracy_table

    print(accuracy_table(result))
    test = "no test split" if result.test_accuracy is None else f"test accuracy {result.test_accuracy:.3f}"
    print(f"{model}: {test}; best validation accuracy {result.val_accuracy:.3f} (epoch {result.best_epoch}, it "
          f"selected the epoch) in {result.seconds / 60:.1f} min -> {out}")


def _classify(args) -> int:
    from ..apps.triplanes.classify import classify

    o = build(ClassifyOptions, args)
    predictions = classify(o.checkpoint, o.field)
    for p in predictions:
        truth = f"  (true: {p.true_class})" if p.true_class else ""
        print(f"{p.source}: {p.class_name} {p.probability:.3f}{truth}")
    known = [p for p in predictions if p.true_class]
    if len(known) > 1:
        per_class: dict = {}
        for p in known:
            per_class.setdefault(p.true_class, []).append(p.class_name == p.true_class)
        print("\n".join(f"{name:<14}{sum(hits) / len(hits):>8.3f}{len(hits):>6}"
                        for name, hits in sorted(per_class.items())))
        print(f"accuracy {sum(map(sum, per_class.values())) / len(known):.3f} over {len(known)} files of known class")
    return 0
