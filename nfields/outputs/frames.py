"""The frame an export is written in: the capture's own coordinates (undoing `fields convert`'s normalisation)
or the normalised scene frame the field was trained in."""

from __future__ import annotations

import numpy as np

from ..datasets import Normalization

FRAMES = ("capture", "scene")


def to_capture(norm: Normalization, points: np.ndarray, normals: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """Scene points (N, 3) (and unit normals (N, 3)) -> capture coordinates (`Normalization.invert_points`),
    n = R^T n_scene (a similarity keeps normals unit length)."""
    out = norm.invert_points(points)
    turned = None if normals is None else np.asarray(normals, dtype=np.float64) @ norm.rotation
    return out, turned


def flips_winding(norm: Normalization) -> bool:
    """Whether the scene -> capture map is a reflection (faces must then be reversed to keep facing out)."""
    return bool(np.linalg.det(norm.rotation) < 0)
