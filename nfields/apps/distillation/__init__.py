"""PVD-AL distillation between field backbones (`fields distill`)."""

from .distiller import Distiller, distill, psnr_against_teacher, resume_distillation
from .settings import ACTIVE_LEVELS, DEFAULT_ACTIVE, DistillConfig

__all__ = ["ACTIVE_LEVELS", "DEFAULT_ACTIVE", "DistillConfig", "Distiller", "distill", "psnr_against_teacher",
           "resume_distillation"]
