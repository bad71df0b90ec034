"""A pose model broken into inconsistently registered pieces is reported; a continuous video or an
unordered photo set is not."""

import numpy as np
from support import orbit_c2w

from nfields.datasets.pose_checks import pose_breaks


def rotate_about_z(c2w: np.ndarray, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    r = np.eye(4)
    r[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    return r @ c2w


def test_a_piece_registered_at_the_wrong_angle_is_reported_at_its_seam():
    c2w = orbit_c2w(72)[:30]  # a video: 5 degrees between neighbouring frames
    c2w[12:] = rotate_about_z(c2w[12:], 130.0)  # frames 12+ misplaced around the object, as COLMAP did on beer
    names = [f"{i:04d}.jpg" for i in range(30)]
    breaks = pose_breaks(c2w, names)
    assert len(breaks) == 1 and breaks[0].startswith("0011.jpg -> 0012.jpg")


def test_a_continuous_video_and_unordered_photos_are_not_reported():
    names = [f"{i:04d}.jpg" for i in range(30)]
    assert pose_breaks(orbit_c2w(72)[:30], names) == []
    shuffled = orbit_c2w(30)[np.random.default_rng(0).permutation(30)]  # lego-like: random views, no sequence
    assert pose_breaks(shuffled, names) == []
