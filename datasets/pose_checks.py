"""Checks of a capture's poses that a user should hear about before training on them.

A video's frames move a little from one to the next. Where a pose model has the camera jump far and turn
sharply between two neighbouring frames whose photos look alike, the model is broken into pieces registered
inconsistently with each other (COLMAP does this on repeating texture, e.g. a tiled floor: the shared beer
capture's own model turns 134 degrees between frames 13 and 14). A field trained on such poses shows ghosts and
scores poorly on held-out views, whatever its settings (ingest/pose_repair.py poses such a sequence again).
"""

from __future__ import annotations

import numpy as np

JUMP_FACTOR = 6.0  # a step this many times the median step between neighbouring frames ...
MIN_TURN_DEG = 30.0  # ... with a turn of at least this many degrees (and JUMP_FACTOR x the median turn)
MAX_MEDIAN_TURN_DEG = 15.0  # frames that turn more than this on average are not a continuous sequence


def pose_breaks(camera_to_world: np.ndarray, names: list[str]) -> list[str]:
    """Where neighbouring frames (in name order) jump: one line each, e.g. "0013.jpg -> 0014.jpg: 16x the median
    step, 134 deg turn". camera_to_world (N, 4, 4), OpenGL axes. Empty for fewer than 8 frames or frames that are
    not a continuous sequence (their median turn is above MAX_MEDIAN_TURN_DEG)."""
    if len(names) < 8:
        return []
    order = sorted(range(len(names)), key=lambda i: names[i])
    poses = camera_to_world[order]
    steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    forward = -poses[:, :3, 2] / np.linalg.norm(poses[:, :3, 2], axis=1, keepdims=True)
    turns = np.degrees(np.arccos(np.clip((forward[1:] * forward[:-1]).sum(axis=1), -1.0, 1.0)))
    median_step, median_turn = float(np.median(steps)), float(np.median(turns))
    if median_turn > MAX_MEDIAN_TURN_DEG or median_step <= 0:
        return []
    broken = (steps > JUMP_FACTOR * median_step) & (turns > max(MIN_TURN_DEG, JUMP_FACTOR * median_turn))
    return [f"{names[order[i]]} -> {names[order[i + 1]]}: {steps[i] / median_step:.0f}x the median step, "
            f"{turns[i]:.0f} deg turn" for i in np.flatnonzero(broken)]

