"""PVD-AL distillation between field backbones (`fields distill`).

The settings are importable alone (`fields --help` reads them); the distiller, which pulls in the trainer, is
imported on first use of its names.
"""

from importlib import import_module

from .settings import ACTIVE_LEVELS, DEFAULT_ACTIVE, DistillConfig

_DISTILLER_NAMES = ("Distiller", "distill", "psnr_against_teacher", "resume_distillation")

__all__ = ["ACTIVE_LEVELS", "DEFAULT_ACTIVE", "DistillConfig", *_DISTILLER_NAMES]


def __getattr__(name: str):
    if name in _DISTILLER_NAMES:
        return getattr(import_module(".distiller", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
