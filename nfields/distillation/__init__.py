"""PVD-AL distillation between field backbones (`fields distill`)."""

from .config import ACTIVE_LEVELS, DEFAULT_ACTIVE, DistillConfig
from .distiller import Distiller, distill, psnr_against_teacher, resume_distillation

__all__ = ["ACTIVE_LEVELS", "DEFAULT_ACTIVE", "DistillConfig", "Distiller", "distill", "psnr_against_teacher",
           "resume_distillation"]
