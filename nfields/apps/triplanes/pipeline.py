"""`fields triplanes fit`: every shape of a data set split into its own tri-plane file, resumable and sharded."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ...engine.loggers import make_logger
from .fitting import FitConfig, fit_planes, make_decoder
from .shapes import (
    TEST_FRACTION,
    VAL_FRACTION,
    class_names,
    discover_shapes,
    limit_per_class,
    load_shapes,
    resolve_dataset,
    select_split,
)
from .sharding import rank_and_world, shard, wait_for_file
from .store import DECODER_NAME, load_decoder_file, save_decoder_file, save_shape, save_split, shape_file


@dataclass
class FitSummary:
    fitted: int  # shapes fitted by this call (this rank)
    already_done: int  # shapes of this rank's shard whose file existed
    skipped: list[str] = field(default_factory=list)  # one message per unusable shape file
    seconds: float = 0.0  # wall time of this call, decoder included
    decoder_seconds: float = 0.0
    udf_error: float = float("nan")  # means over the shapes fitted by this call
    chamfer: float = float("nan")


def prepare_decoder(out: Path, records, config: FitConfig, seed: int, fractions: dict, progress: bool) -> dict:
    """Train the shared decoder jointly with tri-planes of `batch` training shapes spread over the sorted list,
    and save it; reuse DIR/decoder.pt when it exists."""
    path = out / DECODER_NAME
    if path.is_file():
        return load_decoder_file(path)
    train = [r for r in records if r.split == "train"]
    n = min(len(train), 64)
    chosen = [train[i] for i in np.linspace(0, len(train) - 1, n).round().astype(int)]
    shapes, _ = load_shapes(chosen)
    torch.manual_seed(seed)
    decoder = make_decoder(config)
    if progress:
        print(f"training the shared decoder on {len(shapes)} shapes ({config.decoder_steps} steps)", flush=True)
    result = fit_planes([s.points for s in shapes], decoder, config, seed=seed, train_decoder=True)
    state = {"id": uuid.uuid4().hex, "config": config.to_dict(), "state": decoder.state_dict(),
             "classes": class_names(records), "seed": seed, **fractions,
             "udf_error": float(result.udf_error.mean()), "chamfer": float(result.chamfer.mean())}
    save_decoder_file(path, state)
    return state


def fit_dataset(dataset: str | Path, out: str | Path, split: str = "all", batch: int = 64,
                config: FitConfig | None = None, data_root: str | Path | None = None, seed: int = 0,
                val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION, limit: int | None = None,
                progress: bool = True, decoder_timeout: float = 3600.0, logger: str = "tensorboard") -> FitSummary:
    """Fit one tri-plane per shape of `split` into OUT/shapes/<relpath>.pt, `batch` shapes at once.

    Shapes with a file are skipped (resume). Under torchrun (RANK, WORLD_SIZE) this process fits shapes
    i % WORLD_SIZE == RANK of the sorted list; rank 0 trains OUT/decoder.pt, the others wait for it.
    `limit` keeps the first n shapes of each class and split (for quick runs). Rank 0's `logger` writes each
    batch's mean UDF error and Chamfer distance into OUT, by shapes fitted.
    """
    start = time.perf_counter()
    out = Path(out)
    config = config or FitConfig()
    fractions = {"val_fraction": val_fraction, "test_fraction": test_fraction}
    records = limit_per_class(discover_shapes(resolve_dataset(dataset, data_root), seed=seed, **fractions), limit)
    rank, world = rank_and_world()
    if rank == 0:
        save_split(out, records, seed=seed, **fractions)
        decoder_state = prepare_decoder(out, records, config, seed, fractions, progress)
    else:
        wait_for_file(out / DECODER_NAME, decoder_timeout)
        decoder_state = load_decoder_file(out / DECODER_NAME)
    decoder_seconds = time.perf_counter() - start
    stored = FitConfig(**decoder_state["config"])  # the layout and decoder are the folder's; steps etc. are ours
    config = replace(config, channels=stored.channels, resolution=stored.resolution,
                     decoder_width=stored.decoder_width, decoder_hidden=stored.decoder_hidden)
    decoder = make_decoder(config)
    decoder.load_state_dict(decoder_state["state"])
    mine = shard(select_split(records, split), rank, world)
    pending = [r for r in mine if not shape_file(out, r).is_file()]
    summary = FitSummary(0, len(mine) - len(pending), decoder_seconds=decoder_seconds)
    errors, chamfers = [], []
    log, fit_start = make_logger(logger if rank == 0 else "none", out), time.perf_counter()
    bar = tqdm(total=len(mine), initial=summary.already_done, unit="shape", disable=not progress,
               desc=f"fit rank {rank}/{world}" if world > 1 else "fit", dynamic_ncols=True)
    for i in range(0, len(pending), batch):
        chunk = pending[i:i + batch]
        shapes, skipped = load_shapes(chunk)
        summary.skipped += skipped
        if shapes:
            result = fit_planes([s.points for s in shapes], decoder, config, seed=seed + i)
            for shape, planes, e, c in zip(shapes, result.planes, result.udf_error, result.chamfer):
                save_shape(out, shape.record, planes, e, c, decoder_state["id"])
            errors += result.udf_error.tolist()
            chamfers += result.chamfer.tolist()
            summary.fitted += len(shapes)
            log.scalars({"fit/udf_error": float(result.udf_error.mean()), "fit/chamfer": float(result.chamfer.mean()),
                         "fit/shapes_per_second": summary.fitted / (time.perf_counter() - fit_start)}, summary.fitted)
        bar.update(len(chunk))
        bar.set_postfix(udf_err=f"{np.mean(errors):.4f}" if errors else "-",
                        chamfer=f"{np.mean(chamfers):.4f}" if chamfers else "-")
    bar.close()
    log.close()
    if errors:
        summary.udf_error, summary.chamfer = float(np.mean(errors)), float(np.mean(chamfers))
    summary.seconds = time.perf_counter() - start
    return summary
