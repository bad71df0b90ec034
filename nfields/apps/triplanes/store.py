"""Files of a tri-plane folder: DIR/decoder.pt (the shared decoder), DIR/split.json (the train / val / test
split) and DIR/shapes/<relpath>.pt, one per shape (planes float16 (3, C, R, R), label, class, source path,
split, reconstruction metrics)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ...engine.checkpoint import atomic_torch_save
from ...errors import FieldsError
from .shapes import ShapeRecord

SHAPE_FORMAT = "nfields-triplane-1"
DECODER_FORMAT = "nfields-triplane-decoder-1"
DECODER_NAME = "decoder.pt"
SPLIT_NAME = "split.json"


def shape_file(out: Path, record: ShapeRecord) -> Path:
    return Path(out) / "shapes" / f"{record.relpath}.pt"


def save_shape(out: Path, record: ShapeRecord, planes: torch.Tensor, udf_error: float, chamfer: float,
               decoder_id: str) -> Path:
    path = shape_file(out, record)
    atomic_torch_save(path, {
        "format": SHAPE_FORMAT, "planes": planes.to(torch.float16).clone(), "label": record.label,
        "class_name": record.class_name, "relpath": record.relpath, "split": record.split,
        "udf_error": float(udf_error), "chamfer": float(chamfer), "decoder_id": decoder_id,
    })
    return path


def load_tagged(path: Path, expected_format: str, what: str) -> dict:
    """A dict saved with field 'format' == expected_format; errors name the file and what it should be."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise FieldsError(f"{path}: not a readable {what} ({err.__class__.__name__})") from None
    if not isinstance(state, dict) or state.get("format") != expected_format:
        raise FieldsError(f"{path}: not a {what} (field 'format' is not '{expected_format}')")
    return state


def load_shape_file(path: Path) -> dict:
    """One fitted shape; errors name the file."""
    return load_tagged(path, SHAPE_FORMAT, "tri-plane shape file")


@dataclass
class FittedSet:
    planes: torch.Tensor  # (N, 3, C, R, R) float32
    labels: torch.Tensor  # (N,) int64
    splits: list[str]
    relpaths: list[str]
    udf_error: torch.Tensor  # (N,)
    chamfer: torch.Tensor  # (N,)
    classes: list[str]


def load_fitted(out: Path) -> FittedSet:
    """Every shape file under DIR/shapes, sorted by source path, with the class names of DIR/decoder.pt."""
    out = Path(out)
    decoder = load_decoder_file(out / DECODER_NAME)
    files = sorted((out / "shapes").rglob("*.pt"))
    if not files:
        raise FieldsError(f"{out / 'shapes'}: no fitted tri-planes; run `fields triplanes fit DATASET --out {out}`")
    states = [load_shape_file(f) for f in files]
    for f, s in zip(files, states):
        if s["decoder_id"] != decoder["id"]:
            raise FieldsError(f"{f}: fitted with another decoder than {out / DECODER_NAME}; refit it")
    return FittedSet(torch.stack([s["planes"] for s in states]).float(),
                     torch.tensor([s["label"] for s in states]), [s["split"] for s in states],
                     [s["relpath"] for s in states], torch.tensor([s["udf_error"] for s in states]),
                     torch.tensor([s["chamfer"] for s in states]), decoder["classes"])


def save_split(out: Path, records: list[ShapeRecord], **settings) -> Path:
    """DIR/split.json: the settings that drew the split, each class's count per split, and every file's split."""
    counts: dict = {}
    for r in records:
        counts.setdefault(r.class_name, {}).setdefault(r.split, 0)
        counts[r.class_name][r.split] += 1
    path = Path(out) / SPLIT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**settings, "counts": counts, "files": {r.relpath: r.split for r in records}},
                               indent=1))
    return path


def save_decoder_file(path: Path, state: dict) -> None:
    atomic_torch_save(path, {"format": DECODER_FORMAT, **state})


def load_decoder_file(path: Path) -> dict:
    if not path.is_file():
        raise FieldsError(f"{path}: the shared decoder is missing; run `fields triplanes fit` into this folder")
    return load_tagged(path, DECODER_FORMAT, "tri-plane decoder file")
