"""Run folders: config.json, checkpoint.pt, metrics and renders of one training run."""

from __future__ import annotations

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
                                 field_config=state["field_config"], unbounded=state.get("unbounded", False))
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
