"""Camera path interpolation in time: the spline reaches every keyframe at its time, with no jump in velocity or
angular rate there (linear interpolation has one); keyframe times in the path file."""

import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from nfields.datasets.cameras import look_at
from nfields.errors import FieldsError
from nfields.outputs.camera_path import load_camera_path
from nfields.outputs.path_interpolation import interpolate_poses

KEY_TIMES = np.array([0.0, 0.7, 1.5, 3.0, 3.4])  # unevenly spaced on purpose
FOVS = np.array([40.0, 50.0, 35.0, 45.0, 60.0])


def keyframes() -> np.ndarray:
    """(5, 4, 4) cameras at irregular places around the origin, looking at points near it."""
    positions = np.array([[3.0, 0, 1], [2, 2.5, 0.5], [-1, 3, 1.5], [-3, 0.5, 0], [-2.5, -2, 1]])
    targets = np.array([[0.0, 0, 0], [0.2, 0, 0], [0, 0.3, 0.1], [0, 0, 0.4], [0.1, 0.1, 0]])
    c2w = np.stack([look_at(torch.tensor(p).float(), torch.tensor(t).float(), torch.tensor([0.0, 0, 1])).double()
                    .numpy() for p, t in zip(positions, targets)])
    c2w[:, :3, :3] = Rotation.from_matrix(c2w[:, :3, :3]).as_matrix()  # rotations exact in float64
    return c2w


def velocities(method: str, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Finite-difference velocity and angular rate (world frame) just before and just after each inner keyframe:
    (3, 3) each, one row per inner keyframe."""
    c2w = keyframes()
    inner = KEY_TIMES[1:-1]
    times = np.concatenate([inner - eps, inner, inner + eps])
    poses, _ = interpolate_poses(c2w, FOVS, KEY_TIMES, times, method)
    before, at, after = poses[:3], poses[3:6], poses[6:]
    v_before, v_after = (at[:, :3, 3] - before[:, :3, 3]) / eps, (after[:, :3, 3] - at[:, :3, 3]) / eps

    def rate(a, b):
        return Rotation.from_matrix(b[:, :3, :3] @ a[:, :3, :3].transpose(0, 2, 1)).as_rotvec() / eps

    return v_before, v_after, rate(before, at), rate(at, after)


@pytest.mark.parametrize("method", ["spline", "linear"])
def test_interpolation_passes_through_every_keyframe_at_its_time(method):
    c2w = keyframes()
    poses, fov = interpolate_poses(c2w, FOVS, KEY_TIMES, KEY_TIMES, method)
    np.testing.assert_allclose(poses, c2w, atol=1e-9)
    np.testing.assert_allclose(fov, FOVS, atol=1e-9)
    # Between keyframes: proper rotations, and the fov stays within its neighbours' range (no overshoot).
    between, fov_between = interpolate_poses(c2w, FOVS, KEY_TIMES, np.linspace(0, 3.4, 200), method)
    rot = between[:, :3, :3]
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape), atol=1e-9)
    assert FOVS.min() - 1e-9 <= fov_between.min() and fov_between.max() <= FOVS.max() + 1e-9


def test_spline_velocity_and_angular_rate_are_continuous_where_linear_jumps():
    v_before, v_after, w_before, w_after = velocities("spline")
    speed = np.linalg.norm(v_after, axis=1)
    assert (speed > 0.5).all()  # the camera is moving through each inner keyframe
    assert np.linalg.norm(v_after - v_before, axis=1).max() < 1e-3 * speed.min()
    assert np.linalg.norm(w_after - w_before, axis=1).max() < 1e-3 * np.linalg.norm(w_after, axis=1).min()
    v_before, v_after, w_before, w_after = velocities("linear")
    assert (np.linalg.norm(v_after - v_before, axis=1) > 0.3 * np.linalg.norm(v_after, axis=1)).all()
    assert (np.linalg.norm(w_after - w_before, axis=1) > 0.05).all()


def test_two_keyframes_give_the_straight_path_at_constant_speed():
    c2w, times = keyframes()[:2], np.linspace(0, 0.7, 8)
    spline, _ = interpolate_poses(c2w, FOVS[:2], KEY_TIMES[:2], times, "spline")
    linear, _ = interpolate_poses(c2w, FOVS[:2], KEY_TIMES[:2], times, "linear")
    np.testing.assert_allclose(spline, linear, atol=1e-9)


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown interpolation 'cubic'"):
        interpolate_poses(keyframes(), FOVS, KEY_TIMES, KEY_TIMES, "cubic")


def path_file(tmp_path, times, **extra) -> str:
    entries = [{"camera_to_world": c.tolist(), "fov": float(f)} | ({} if t is None else {"time": t})
               for c, f, t in zip(keyframes(), FOVS, times)]
    (tmp_path / "p.json").write_text(json.dumps({"keyframes": entries, "fps": 10, **extra}))
    return tmp_path / "p.json"


def test_keyframe_times_in_the_file_are_kept(tmp_path):
    """Keyframes with times: one frame per 1/fps from the first keyframe to the last, each keyframe reached at its
    time (evenly spaced keyframes would put keyframe 1 at frame 8, not 7)."""
    path = load_camera_path(path_file(tmp_path, KEY_TIMES.tolist()))
    assert path.frames == 35  # 3.4 s at 10 fps, both ends included
    c2w = path.cameras().camera_to_world.double().numpy()
    for key, frame in enumerate((0, 7, 15, 30, 34)):
        np.testing.assert_allclose(c2w[frame], keyframes()[key], atol=1e-5)
    # Saved again, the times stay; in nerfstudio's format they are its keyframes' transition times (into each).
    again = load_camera_path(path.save(tmp_path / "again.json"))
    assert [k.time for k in again.keyframes] == KEY_TIMES.tolist() and again.frames == 35
    ns = path.to_json("nerfstudio")["keyframes"]
    assert [k["override_transition_sec"] for k in ns] == pytest.approx([None, 0.7, 0.8, 1.5, 0.4])
    assert [k["override_transition_enabled"] for k in ns] == [False, True, True, True, True]


@pytest.mark.parametrize("times, message", [
    ([0.0, 1.0, None, 2.0, 3.0], r"keyframes\[2\]: field 'time' is missing, unlike keyframes\[0\]"),
    ([None, 1.0, None, None, None], r"keyframes\[1\]: field 'time' is given, unlike keyframes\[0\]"),
    ([0.0, 1.0, 1.0, 2.0, 3.0], r"keyframes\[2\]: field 'time' \(1.0\) must be later than keyframes\[1\]'s"),
    ([0.0, "1", 2.0, 3.0, 4.0], r"keyframes\[1\]: field 'time' must be a number of seconds, got '1'"),
])
def test_bad_keyframe_times_name_file_and_keyframe(tmp_path, times, message):
    with pytest.raises(FieldsError, match=message) as info:
        load_camera_path(path_file(tmp_path, times))
    assert str(tmp_path / "p.json") in str(info.value)
