"""Camera path files: round trip, interpolation, malformed input, and rendering a path to video."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from nfields.cli import main
from nfields.datasets import make_procedural_scene
from nfields.engine.config import TrainConfig
from nfields.engine.trainer import train
from nfields.errors import FieldsError
from nfields.outputs.camera_path import CameraPath, load_camera_path, path_from_cameras


@pytest.fixture
def path():
    return path_from_cameras(make_procedural_scene(8, 32).cameras, [0, 2, 5], fps=12, frames=9)


def test_round_trip_and_interpolation(path, tmp_path):
    loaded = load_camera_path(path.save(tmp_path / "p.json"))
    assert (loaded.width, loaded.height, loaded.fps, loaded.frames) == (32, 32, 12, 9)
    for a, b in zip(loaded.keyframes, path.keyframes):
        np.testing.assert_allclose(a.camera_to_world, b.camera_to_world)
        assert a.fov == pytest.approx(b.fov)
    cameras = loaded.cameras()
    assert len(cameras) == 9 and (cameras.width, cameras.height) == (32, 32)
    # Frames 0, 4 and 8 sit on the keyframes; every frame has a proper rotation and the keyframes' focal.
    for frame, key in ((0, 0), (4, 1), (8, 2)):
        expected = torch.from_numpy(path.keyframes[key].camera_to_world).float()
        torch.testing.assert_close(cameras.camera_to_world[frame], expected, atol=1e-5, rtol=0)
    rot = cameras.camera_to_world[:, :3, :3]
    torch.testing.assert_close(rot @ rot.transpose(1, 2), torch.eye(3).expand(9, 3, 3), atol=1e-5, rtol=0)
    focal = make_procedural_scene(1, 32).cameras.focal.expand(9, 2)
    torch.testing.assert_close(cameras.focal, focal, atol=1e-3, rtol=0)
    # Slerp: the camera between two keyframes on a circle around the origin stays at the same distance
    # from it only approximately (positions are lerped), but its rotation turns halfway.
    half = loaded.cameras(frames=5).camera_to_world[1]
    z0, z1 = cameras.camera_to_world[0, :3, 2], cameras.camera_to_world[4, :3, 2]
    assert torch.dot(half[:3, 2], z0).item() == pytest.approx(torch.dot(half[:3, 2], z1).item(), abs=1e-4)


def test_width_override_keeps_aspect(path):
    path.height = 16
    cameras = path.cameras(frames=3, width=64)
    assert (cameras.width, cameras.height) == (64, 32)


@pytest.mark.parametrize("content, message", [
    ("{not json", "malformed JSON at line 1"),
    ('{"keyframes": []}', "field 'keyframes' must be a list of at least 2"),
    ('{"keyframes": [{"fov": 40}, {"fov": 40}]}', r"keyframes\[0\]: field 'camera_to_world' is missing"),
    ('{"keyframes": [{"camera_to_world": [[1, 0], [0, 1]], "fov": 40}, {}]}', r"keyframes\[0\]: .*4x4"),
    ('{"keyframes": [{"camera_to_world": [[2,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]], "fov": 40}, {}]}',
     "no rotation"),
    ('{"keyframes": [{"camera_to_world": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]], "fov": 0}, {}]}',
     r"keyframes\[0\]: field 'fov'"),
    ('{"format": "other", "keyframes": []}', "field 'format' is 'other'"),
    ('{"frames": -3, "keyframes": [{"camera_to_world": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]], "fov": 40}, '
     '{"camera_to_world": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]], "fov": 40}]}',
     "field 'frames' must be a positive"),
])
def test_malformed_files_name_file_and_field(tmp_path, content, message):
    bad = tmp_path / "path.json"
    bad.write_text(content)
    with pytest.raises(FieldsError, match=message) as info:
        load_camera_path(bad)
    assert str(bad) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(FieldsError, match="camera path file does not exist"):
        load_camera_path(tmp_path / "none.json")


def test_cli_renders_a_path_with_requested_frames_and_size(procedural_dir, tmp_path, path, capsys):
    run = tmp_path / "run"
    train(TrainConfig(scene=str(procedural_dir), field="mlp", steps=5, output=str(run), grid_resolution=32,
                      eval_every=1e9, eval_pixels=256, final_eval_views=1), progress=False)
    path.save(tmp_path / "p.json")
    assert main(["render", str(run), "--path", str(tmp_path / "p.json"), "--frames", "4", "--resolution", "16",
                 "--format", "gif"]) == 0
    frames = iio.imread(run / "p.gif", index=None)
    assert frames.shape[:3] == (4, 16, 32)  # RGB | depth side by side
    (tmp_path / "bad.json").write_text(json.dumps({"keyframes": "x"}))
    capsys.readouterr()
    assert main(["render", str(run), "--path", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("fields render: error:") and "bad.json" in err


def test_camera_path_dataclass_to_json_has_format(path):
    data = CameraPath.to_json(path)
    assert data["format"] == "nfields-camera-path-1" and len(data["keyframes"]) == 3
