"""Checkpoints: written atomically (temp file, fsync, rename), validated on load."""

from __future__ import annotations

import glob
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
    """torch.save into a temp file beside `path` (<name>.<pid>.<random>.tmp), fsync, then rename over `path`.
    Temp files that killed writers left beside `path` are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: Path) -> None:
    """Delete the temp files of `atomic_torch_save(path)` whose writer is gone (killed midway): those whose
    process id is not running, or that name none (older versions). Files that cannot be deleted are left."""
    name = Path(path).name
    for tmp in Path(path).parent.glob(f"{glob.escape(name)}*.tmp"):
        pid = tmp.name[len(name):].split(".")[1]  # ".<pid>.<random>.tmp"; older: "<random>.tmp"
        if pid.isdigit() and _process_running(int(pid)):
            continue
        try:
            tmp.unlink()
        except OSError:  # e.g. a read-only run folder
            pass


def _process_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def load_checkpoint(path: Path, expected_field: str | None = None) -> dict:
    """Load and check a checkpoint; errors name the file and what is wrong with it. Temp files that a killed
    write left beside it are removed."""
    remove_stale_temporaries(path)
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
