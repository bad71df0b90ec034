"""Camera poses between keyframes, in time: smooth splines (the default) or linear interpolation.

spline: positions by a natural cubic spline and rotations by scipy's RotationSpline, both with the keyframe times
as knots, so velocity and angular rate are continuous (C2) and every keyframe is reached exactly at its time; the
field of view by a monotone cubic (PCHIP: C1, never outside the keyframes' range). Two keyframes give the linear
path at constant speed. linear: positions and fov lerped, rotations slerped (velocity jumps at each keyframe).
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline, PchipInterpolator
from scipy.spatial.transform import Rotation, RotationSpline, Slerp

INTERPOLATIONS = ("spline", "linear")


def interpolate_poses(c2w: np.ndarray, fov: np.ndarray, key_times: np.ndarray, times: np.ndarray,
                      method: str = "spline") -> tuple[np.ndarray, np.ndarray]:
    """Camera-to-world (F, 4, 4) and fov (F,) at `times` (F,, within the keyframes' span) from keyframes c2w
    (K, 4, 4, rotation and translation) and fov (K,) at key_times (K,, strictly increasing); method: INTERPOLATIONS."""
    rotations = Rotation.from_matrix(c2w[:, :3, :3])
    positions = c2w[:, :3, 3]
    if method == "spline":
        rot = RotationSpline(key_times, rotations)(times)
        pos = CubicSpline(key_times, positions, bc_type="natural")(times)
        fovs = PchipInterpolator(key_times, fov)(times)
    elif method == "linear":
        rot = Slerp(key_times, rotations)(times)
        pos = np.stack([np.interp(times, key_times, positions[:, i]) for i in range(3)], axis=-1)
        fovs = np.interp(times, key_times, fov)
    else:
        raise ValueError(f"unknown interpolation {method!r} (known: {', '.join(INTERPOLATIONS)})")
    out = np.tile(np.eye(4), (len(times), 1, 1))
    out[:, :3, :3], out[:, :3, 3] = rot.as_matrix(), pos
    return out, np.asarray(fovs, dtype=np.float64)
