"""Classifying fitted tri-planes: per-shape files of `fields triplanes fit`, and `triplane` radiance fields
(run folders or their checkpoint.pt) whose planes have the classifier's layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ...engine.checkpoint import load_checkpoint
from ...errors import FieldsError
from .classifiers import build_plane_classifier, stack_planes
from .store import SHAPE_FORMAT, load_tagged
from .training import CLASSIFIER_FORMAT, plane_transforms, predict

RADIANCE_PLANES = "planes.planes.0"


@dataclass
class Prediction:
    source: str
    class_name: str
    probability: float
    true_class: str | None  # known for fitted shape files


def load_classifier(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """A tri-plane classifier checkpoint written by train_plane_classifier -> (model in eval mode, its state)."""
    path = Path(path)
    state = load_tagged(path, CLASSIFIER_FORMAT, "tri-plane classifier checkpoint")
    if state["input"] != "triplane":
        raise FieldsError(f"{path}: a '{state['model']}' classifier of point clouds, not of tri-planes")
    model = build_plane_classifier(state["model"], len(state["classes"]), state["in_channels"], state["preset"],
                                   state["crop"])
    model.load_state_dict(state["state"])
    return model.eval(), state


def radiance_planes(state_dict: dict, source: Path, expected: tuple[int, ...]) -> torch.Tensor:
    """The single level of tri-planes (3, C, R, R) of a `triplane` radiance field's state dict."""
    levels = sorted(k for k in state_dict if k.startswith("planes.planes."))
    if RADIANCE_PLANES not in state_dict:
        raise FieldsError(f"{source}: no '{RADIANCE_PLANES}' tensor; not a triplane field")
    actual = tuple(state_dict[RADIANCE_PLANES].shape)
    if len(levels) != 1 or actual != tuple(expected):
        raise FieldsError(f"{source}: tri-plane layout {[tuple(state_dict[k].shape) for k in levels]} does not "
                          f"match the classifier's one level of {tuple(expected)} (train the field with "
                          "`fields train --field triplane --preset published`)")
    return state_dict[RADIANCE_PLANES].float()


def read_planes(path: str | Path, expected: tuple[int, ...]) -> tuple[torch.Tensor, str | None]:
    """Planes (3, C, R, R) and the true class (or None) of a shape file, a run folder or a checkpoint."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise FieldsError(f"{path}: no such file (give a fitted shape file, a run folder or a checkpoint.pt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        state = None  # load_checkpoint below names the problem
    if isinstance(state, dict) and state.get("format") == SHAPE_FORMAT:
        planes = state["planes"].float()
        if tuple(planes.shape) != tuple(expected):
            raise FieldsError(f"{path}: tri-plane shape {tuple(planes.shape)}, the classifier expects {expected}")
        return planes, state["class_name"]
    checkpoint = load_checkpoint(path)
    if checkpoint["field_name"] != "triplane":
        raise FieldsError(f"{path}: holds a '{checkpoint['field_name']}' field, not a 'triplane' field")
    return radiance_planes(checkpoint["field"], path, expected), None


def classify(checkpoint: str | Path, sources: list[str | Path]) -> list[Prediction]:
    """Class and probability for each source (fitted shape file, run folder or radiance checkpoint)."""
    model, state = load_classifier(checkpoint)
    expected = tuple(state["plane_shape"])
    planes, truths = zip(*(read_planes(s, expected) for s in sources))
    _, views = plane_transforms(state["crop"], state.get("test_crops", False))  # as the classifier was scored
    best = predict(model, stack_planes(torch.stack(planes)), views).max(1)
    return [Prediction(str(s), state["classes"][i], float(p), t)
            for s, i, p, t in zip(sources, best.indices.tolist(), best.values.tolist(), truths)]
