"""Checkpoints: written atomically (temp file, fsync, rename), validated on load."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from ..errors import FieldsError

FORMAT = "nfields-checkpoint-1"


def save_checkpoint(path: Path, state: dict) -> None:
    """Write `state` to `path` so that a crash leaves either the old file or the new one, never half."""
    atomic_torch_save(path, {"format": FORMAT, **state})


def atomic_torch_save(path: Path, obj) -> None:
    """torch.save into a temp file beside `path`, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, expected_field: str | None = None) -> dict:
    """Load and check a checkpoint; errors name the file and what is wrong with it."""
    if not path.is_file():
        raise FieldsError(f"{path}: checkpoint is missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise FieldsError(
            f"{path}: checkpoint is corrupt or not a fields checkpoint ({err.__class__.__name__}). "
            "Earlier snapshots, if any, are in the same folder."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise FieldsError(f"{path}: field 'format' is {state.get('format') if isinstance(state, dict) else None!r}, "
                          f"expected '{FORMAT}'")
    for key in ("field_name", "field_config", "field", "renderer", "step"):
        if key not in state:
            raise FieldsError(f"{path}: checkpoint field '{key}' is missing")
    if expected_field is not None and state["field_name"] != expected_field:
        raise FieldsError(
            f"{path}: checkpoint holds a '{state['field_name']}' field, not '{expected_field}'. "
            f"Resume with --field {state['field_name']}, or start a new run folder."
        )
    return state
