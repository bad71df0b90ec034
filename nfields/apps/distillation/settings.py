"""Settings of one distillation, saved as distillation.json beside the student run's config.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ...engine.config import read_config_json
from ...errors import FieldsError

ACTIVE_LEVELS = ("pose", "ray", "point")
# The point level is opt-in: on lego it cost the mlp student 1.4 dB at 2^16-sample steps, and gained nothing
# measurable at the default 2^13 (README, "Distillation", ablation).
DEFAULT_ACTIVE = ("pose", "ray")


@dataclass
class DistillConfig:
    teacher: str  # the teacher's run folder
    student: str  # backbone name
    # Progressive stages as fractions of the run (steps or time budget): features until the first, point
    # densities and colours until the second, rendered RGB after. PVD's 2,000 / 5,000 of 30,000 steps.
    stages: tuple[float, float] = (0.067, 0.167)
    active: tuple[str, ...] = DEFAULT_ACTIVE  # PVD-AL's levels in use, of ACTIVE_LEVELS
    # Mean-reduced losses (PVD's un-normalised norms would scale with the batch): weights relative to the
    # colour terms. Log-densities span [-2, 7], so their squared errors are about 100x those of colours.
    density_weight: float = 0.01
    point_weight: float = 0.1  # point terms beside the RGB term in the last stage
    poses_per_step: int = 8  # virtual poses rendered by the teacher per step
    epoch_poses: int = 256  # virtual poses drawn per epoch
    hard_fraction: float = 0.1  # hard poses per epoch and hard rays per step (PVD-AL: 10 %)
    pose_pool_size: int = 100  # hard poses kept
    pose_pool_from_epoch: int = 4  # first epoch whose hardest poses enter the pool
    ray_pool_size: int = 1 << 15  # hard rays kept
    point_ratio: float = 0.3  # hard points: the top 30 % of a ray's weights, on rays at least this opaque:
    point_min_opacity: float = 0.5  # the opacity of those rays

    def validate(self) -> None:
        lo, hi = self.stages
        if not 0.0 <= lo <= hi <= 1.0:
            raise FieldsError(f"distillation: 'stages' must be fractions 0 <= a <= b <= 1, got {self.stages}")
        unknown = sorted(set(self.active) - set(ACTIVE_LEVELS))
        if unknown:
            raise FieldsError(f"distillation: unknown active-learning level(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(ACTIVE_LEVELS)}")
        if self.poses_per_step < 1 or self.epoch_poses < self.poses_per_step:
            raise FieldsError("distillation: 'epoch_poses' must be at least 'poses_per_step' >= 1")
        if not 0.0 < self.hard_fraction < 1.0 or not 0.0 < self.point_ratio <= 1.0:
            raise FieldsError("distillation: 'hard_fraction' and 'point_ratio' must lie in (0, 1]")

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "DistillConfig":
        data = read_config_json(path, cls, "distillation settings are missing (is this a distilled run?)")
        data["stages"] = tuple(data.get("stages", cls.stages))
        data["active"] = tuple(data.get("active", DEFAULT_ACTIVE))
        return cls(**data)
