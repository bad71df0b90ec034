"""Backbone registry: adding a backbone is one file plus one entry here."""

from __future__ import annotations

import torch

from .base import Field
from .cam import CAMField
from .hashgrid import HashGridField
from .mlp import MLPField
from .rbf import RBFField
from .tensorf import TensoRFCPField, TensoRFVMField
from .triplane import TriplaneField

FIELDS: dict[str, type[Field]] = {
    HashGridField.name: HashGridField,
    MLPField.name: MLPField,
    TensoRFVMField.name: TensoRFVMField,
    TensoRFCPField.name: TensoRFCPField,
    TriplaneField.name: TriplaneField,
    RBFField.name: RBFField,
    CAMField.name: CAMField,
}


class UnknownFieldError(ValueError):
    pass


def field_class(name: str) -> type[Field]:
    if name not in FIELDS:
        raise UnknownFieldError(f"unknown field backbone '{name}'; valid names: {', '.join(sorted(FIELDS))}")
    return FIELDS[name]


def preset_names(name: str) -> list[str]:
    return list(field_class(name).Config.presets())


def default_preset(name: str, device_type: str) -> str:
    """The preset a backbone uses by default on a device type ("cpu" or "cuda")."""
    return field_class(name).Config.default_preset(device_type)


def build_field(name: str, aabb: torch.Tensor, preset: str | None = None, config: dict | None = None,
                unbounded: bool = False) -> Field:
    """Build backbone `name` over `aabb` (6,) from a named preset (default: the CPU one) or a saved config dict.
    unbounded: the scene extends beyond `aabb`, whose outside the field contracts (`Field.normalize`)."""
    cls = field_class(name)
    bound = float((aabb[3:] - aabb[:3]).max() / 2)
    if config is not None:
        field_config = cls.Config.from_saved(config)
    else:
        presets = cls.Config.presets(bound)
        preset = preset or default_preset(name, "cpu")
        if preset not in presets:
            raise UnknownFieldError(f"unknown preset '{preset}' for '{name}'; valid presets: {', '.join(presets)}")
        field_config = presets[preset]
    field = cls(aabb, field_config)
    field.unbounded = unbounded
    return field
