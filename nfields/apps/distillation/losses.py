"""What distillation matches per point and how the student starts from the teacher."""

from __future__ import annotations

import torch

from ...fields import Field
from ...fields.base import clamped_log_density

LOG_DENSITY_RANGE = (-2.0, 7.0)  # PVD's constrained density: log sigma in [-2, 7]


def log_density_error(sigma_student: torch.Tensor, sigma_teacher: torch.Tensor) -> torch.Tensor:
    """Student minus teacher log-density (N,), the teacher's clamped to PVD's [-2, 7].

    The student's is clamped only on the side where the teacher sits at a bound (below -2 where the teacher
    is empty, above 7 where it is saturated), so a student value outside the range still gets a gradient
    whenever the teacher lies inside it (a plain clamp would leave it stuck: PVD's pitfall)."""
    low, high = LOG_DENSITY_RANGE
    target = clamped_log_density(sigma_teacher, low, high)
    prediction = torch.log(sigma_student.clamp(min=1e-30))
    prediction = torch.where(target <= low, prediction.clamp(min=low),
                             torch.where(target >= high, prediction.clamp(max=high), prediction))
    return prediction - target


def copy_compatible_tensors(student: Field, teacher: Field) -> list[str]:
    """PVD's student initialisation: copy each decoder module of the teacher (e.g. `color_mlp`) into the
    student when the student has one of the same name whose tensors all match in shape. Returns the names."""
    teacher_state = teacher.state_dict()
    parameters = dict(student.named_parameters())
    modules: dict[str, list[str]] = {}
    for name in student.parameter_split()["decoder"]:
        modules.setdefault(name.split(".")[0], []).append(name)
    copied = []
    with torch.no_grad():
        for names in modules.values():
            if all(n in teacher_state and teacher_state[n].shape == parameters[n].shape for n in names):
                for n in names:
                    parameters[n].copy_(teacher_state[n])
                copied += names
    return copied


def shares_color_decoder(student: Field, copied: list[str]) -> bool:
    """True when the student's whole colour decoder came from the teacher, so the two fields' appearance
    features mean the same thing and can be matched directly (PVD's stage 1)."""
    names = student.color_decoder_names()
    return bool(names) and set(names) <= set(copied)
