"""Tri-plane classifiers on ModelNet10: fit every shape (resumable), train the transformer, the CNN and the
PointNet baseline with fixed seeds on one split (train; val selects the epoch; test, carved out of train when
the data set has no test folders, is only reported), print one table with per-class test accuracy and write
results JSON.

    python benchmarks/triplanes.py --out runs/triplanes-modelnet10 --threads 2
    python benchmarks/triplanes.py --out runs/tp-small --limit-per-class 20 --epochs 10   # a quick check
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from nfields.apps.triplanes.pipeline import fit_dataset
from nfields.apps.triplanes.store import load_fitted
from nfields.apps.triplanes.training import accuracy_table, per_class_accuracy, train_plane_classifier, train_pointnet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="modelnet10_pcd")
    parser.add_argument("--data-root")
    parser.add_argument("--out", default="runs/triplanes-modelnet10")
    parser.add_argument("--stages", default="fit,transformer,cnn,pointnet")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64, help="shapes fitted at once")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--balanced", action=argparse.BooleanOptionalAction, default=False,
                        help="class-weighted cross-entropy")
    parser.add_argument("--test-crops", action=argparse.BooleanOptionalAction, default=True,
                        help="average the 9 offset crops in evaluation (tri-plane models)")
    parser.add_argument("--tag", default="", help="suffix of the result keys and report folders of this run")
    parser.add_argument("--transformer-preset", default="cpu", help="cpu | medium | paper")
    parser.add_argument("--pointnet-preset", default="cpu", help="cpu | paper")
    parser.add_argument("--limit-per-class", type=int, help="first N shapes of each class and split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    stages = args.stages.split(",")
    # Stages run one at a time keep the results of earlier invocations.
    results: dict = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else {}
    results.update(threads=args.threads, limit_per_class=args.limit_per_class, epochs=args.epochs)
    if "fit" in stages:
        s = fit_dataset(args.dataset, out, "all", args.batch, data_root=args.data_root, seed=args.seed,
                        limit=args.limit_per_class)
        results["fit"] = {"fitted": s.fitted, "already_done": s.already_done, "skipped": s.skipped,
                          "seconds": s.seconds, "decoder_seconds": s.decoder_seconds,
                          "seconds_per_shape": (s.seconds - s.decoder_seconds) / max(s.fitted, 1)}
    if (out / "shapes").is_dir():
        fitted = load_fitted(out)
        results["reconstruction"] = {"shapes": len(fitted.labels), "udf_error": fitted.udf_error.mean().item(),
                                     "chamfer": fitted.chamfer.mean().item()}
    presets = {"transformer": args.transformer_preset, "cnn": "cpu", "pointnet": args.pointnet_preset}
    # results keys and report folders
    keys = {m: (m if p == "cpu" else f"{m}-{p}") + (f"-{args.tag}" if args.tag else "") for m, p in presets.items()}
    for model in ("transformer", "cnn", "pointnet"):
        if model not in stages:
            continue
        start = time.perf_counter()
        if model == "pointnet":
            r = train_pointnet(args.dataset, out / keys[model], presets[model], epochs=args.epochs, seed=args.seed,
                               data_root=args.data_root, limit=args.limit_per_class, balanced=args.balanced)
        else:
            r = train_plane_classifier(out, model, presets[model], epochs=args.epochs, seed=args.seed,
                                       out=out / keys[model], balanced=args.balanced, test_crops=args.test_crops)
        print(accuracy_table(r))
        results[keys[model]] = {
            "val_accuracy": r.val_accuracy, "test_accuracy": r.test_accuracy, "best_epoch": r.best_epoch,
            "epochs": args.epochs, "balanced": args.balanced, "test_crops": args.test_crops and model != "pointnet",
            "minutes": (time.perf_counter() - start) / 60,
            "test_per_class": None if r.test_confusion is None else per_class_accuracy(r.test_confusion, r.classes)}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    rows = []
    if "fit" in results:
        f = results["fit"]
        rows += [("fit: shapes fitted now", f"{f['fitted']} ({f['already_done']} done before)"),
                 ("fit: total seconds (decoder)", f"{f['seconds']:.0f} ({f['decoder_seconds']:.0f})"),
                 ("fit: seconds per shape (decoder excluded)", f"{f['seconds_per_shape']:.3f}")]
    if "reconstruction" in results:
        rec = results["reconstruction"]
        rows += [("mean UDF error (all shapes)", f"{rec['udf_error']:.4f}"),
                 ("mean Chamfer (all shapes)", f"{rec['chamfer']:.4f}")]
    for model in sorted(k for k in results if k.startswith(("transformer", "cnn", "pointnet"))):
        r = results[model]
        test = "-" if r.get("test_accuracy") is None else f"{r['test_accuracy']:.3f}"
        rows.append((f"{model}: test accuracy (val, selects)", f"{test} ({r['val_accuracy']:.3f}; "
                                                               f"{r['minutes']:.1f} min)"))
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    print(f"-> {out / 'results.json'}")


if __name__ == "__main__":
    main()
