"""`fields triplanes fit | train-classifier | train-pointnet | classify`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path


def add_parser(sub) -> None:
    group = sub.add_parser("triplanes", help="tri-plane classifiers: fit a tri-plane per shape, classify them")
    commands = group.add_subparsers(dest="triplanes_command", required=True)
    p = commands.add_parser("fit", help="fit one tri-plane per shape (resumable; shards under torchrun)")
    p.add_argument("dataset", help="folder <class>/train/*.pcd (or meshes), or its name under the data root")
    p.add_argument("--out", required=True, help="folder of decoder.pt and shapes/<class>/<split>/<file>.pt")
    p.add_argument("--data-root", help="default: $FIELDS_DATA_ROOT, ../shared/data")
    p.add_argument("--split", default="all", choices=["train", "val", "test", "all"])
    p.add_argument("--batch", type=int, default=64, help="shapes fitted at once")
    p.add_argument("--steps", type=int, help="Adam steps per batch (default 100)")
    p.add_argument("--limit-per-class", type=int, help="only the first N shapes of each class and split")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    p.add_argument("--seed", type=int, default=0)
    p = commands.add_parser("train-classifier", help="train a classifier on fitted tri-planes (val selects)")
    p.add_argument("dir", help="the --out folder of `fields triplanes fit`")
    p.add_argument("--model", default="transformer", choices=["transformer", "cnn"])
    p.add_argument("--preset", default="cpu", choices=["cpu", "medium", "paper"],
                   help="transformer sizes: cpu 3 x 64, medium 4 x 128, paper 8 x 512")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, help="peak learning rate (default 5e-4 transformer, 2e-3 CNN)")
    p.add_argument("--out", help="report folder (default DIR/<model>)")
    p.add_argument("--threads", type=int)
    p.add_argument("--seed", type=int, default=0)
    p = commands.add_parser("train-pointnet", help="PointNet baseline on the raw points, same split")
    p.add_argument("dataset")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--data-root")
    p.add_argument("--preset", default="cpu", choices=["cpu", "paper"], help="cpu: widths up to 128; paper: 1024")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--limit-per-class", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--seed", type=int, default=0)
    p = commands.add_parser("classify", help="classes of fitted tri-plane files or triplane radiance fields")
    p.add_argument("checkpoint", help="classifier.pt of train-classifier")
    p.add_argument("field", nargs="+", help="shape .pt files, run folders or checkpoint.pt of "
                                            "`fields train --field triplane --preset published`")


def run(args) -> int:
    import torch

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    return {"fit": _fit, "train-classifier": _train_classifier, "train-pointnet": _train_pointnet,
            "classify": _classify}[args.triplanes_command](args)


def _fit(args) -> int:
    from ..apps.triplanes.fitting import FitConfig
    from ..apps.triplanes.pipeline import fit_dataset

    config = FitConfig() if args.steps is None else replace(FitConfig(), steps=args.steps)
    s = fit_dataset(args.dataset, args.out, args.split, args.batch, config, args.data_root, args.seed,
                    limit=args.limit_per_class)
    print(f"fitted {s.fitted} shapes ({s.already_done} already done) in {s.seconds:.0f} s "
          f"({s.decoder_seconds:.0f} s decoder); mean UDF error {s.udf_error:.4f}, Chamfer {s.chamfer:.4f} "
          f"(normalised frame, longest side 1.8) -> {Path(args.out) / 'shapes'}")
    if s.skipped:
        print(f"skipped {len(s.skipped)} unusable files:\n  " + "\n  ".join(s.skipped))
    return 0


def _train_classifier(args) -> int:
    from ..apps.triplanes.training import accuracy_table, train_plane_classifier

    result = train_plane_classifier(args.dir, args.model, args.preset, args.epochs, args.batch, args.lr,
                                    seed=args.seed, out=args.out)
    out = Path(args.out) if args.out else Path(args.dir) / args.model
    print(accuracy_table(result))
    print(f"{args.model}: best validation accuracy {result.val_accuracy:.3f} (epoch {result.best_epoch}) in "
          f"{result.seconds / 60:.1f} min -> {out} (classifier.pt, confusion.png, per_class.json, curves.png)")
    return 0


def _train_pointnet(args) -> int:
    from ..apps.triplanes.training import accuracy_table, train_pointnet

    result = train_pointnet(args.dataset, args.out, args.preset, args.epochs, args.batch, seed=args.seed,
                            data_root=args.data_root, limit=args.limit_per_class)
    print(accuracy_table(result))
    print(f"pointnet: best validation accuracy {result.val_accuracy:.3f} (epoch {result.best_epoch}) in "
          f"{result.seconds / 60:.1f} min -> {args.out}")
    return 0


def _classify(args) -> int:
    from ..apps.triplanes.classify import classify

    for p in classify(args.checkpoint, args.field):
        truth = f"  (true: {p.true_class})" if p.true_class else ""
        print(f"{p.source}: {p.class_name} {p.probability:.3f}{truth}")
    return 0
