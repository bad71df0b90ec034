"""Field backbones behind one interface. A backbone never imports the renderer, a trainer or the CLI."""

from .base import Field
from .optimizer_spec import OptimizerSpec, ParamGroupSpec, Schedule
from .registry import (
    FIELDS,
    UnknownFieldError,
    build_field,
    default_preset,
    field_class,
    preset_names,
)

__all__ = ["FIELDS", "Field", "OptimizerSpec", "ParamGroupSpec", "Schedule", "UnknownFieldError", "build_field",
           "default_preset", "field_class", "preset_names"]
