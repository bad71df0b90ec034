"""Run folders: config.json, checkpoint.pt, metrics and renders of one training run; loading one, naming and
checking a new one."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import FieldsError
from ..fields import Field
from ..renderers import VolumeRenderer
from ..renderers.appearance import PerImageAppearance
from .checkpoint import load_checkpoint
from .config import TrainConfig
from .devices import resolve_device
from .models import make_model

CONFIG_NAME = "config.json"
CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class LoadedRun:
    folder: Path
    config: TrainConfig
    field: Field
    renderer: VolumeRenderer
    checkpoint: dict
    appearance: PerImageAppearance | None = None  # the training images' colour transforms (real captures)


def load_run(folder: str | Path, device: str = "auto", checkpoint: str = CHECKPOINT_NAME) -> LoadedRun:
    """Load a trained run for evaluation or rendering (`checkpoint`: e.g. a snapshot's file name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FieldsError(f"{folder}: run folder does not exist")
    config = TrainConfig.load(folder / CONFIG_NAME)
    state = load_checkpoint(folder / checkpoint)
    dev = resolve_device(device)
    aabb = state["renderer"]["aabb"]
    field, renderer = make_model(state["field_name"], aabb, state.get("near", 0.0), config, dev,
                                 field_config=state["field_config"], unbounded=state.get("unbounded", False),
                                 checkpoint=folder / checkpoint)
    try:
        field.load_state_dict(state["field"])
        renderer.load_state_dict(state["renderer"])
    except RuntimeError as err:
        raise FieldsError(f"{folder / checkpoint}: tensors do not match the '{state['field_name']}' "
                          f"field's configuration ({str(err).splitlines()[0]})") from None
    appearance = None
    if state.get("appearance") is not None:
        transforms = state["appearance"]["transforms"]
        appearance = PerImageAppearance(len(transforms)).to(dev)
        appearance.load_state_dict(state["appearance"])
    field.eval()
    renderer.eval()
    return LoadedRun(folder, config, field, renderer, state, appearance)


def default_run_dir(config: TrainConfig) -> Path:
    """runs/<scene>-<field>-<date>-<time>."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{Path(config.scene).name}-{config.field}-{stamp}"


def check_output_folder(run_dir: Path, overwrite: bool, resume_command: str) -> Path:
    """`run_dir`, unless it holds a run (resume it instead) or, unless `overwrite`, any other file."""
    if (run_dir / CHECKPOINT_NAME).exists():
        raise FieldsError(f"{run_dir}: already holds a run. Resume it with `{resume_command} {run_dir}`, "
                          "or choose another --output.")
    if run_dir.is_file():
        raise FieldsError(f"--output {run_dir}: is a file, not a folder; choose another --output.")
    entries = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
    if entries and not overwrite:
        raise FieldsError(f"--output {run_dir}: folder is not empty ({len(entries)} entries, e.g. '{entries[0]}') "
                          "and holds no run; choose another --output, or pass --overwrite to write the run into it.")
    return run_dir
