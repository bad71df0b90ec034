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
    # Linear interpolation slerps: halfway between two keyframes, the rotation has turned halfway.
    half = loaded.cameras(frames=5, interpolation="linear").camera_to_world[1]
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
    train(TrainConfig(scene=str(procedural_dir), field="hashgrid", steps=5, output=str(run), grid_resolution=32,
                      eval_every=1e9, eval_pixels=256, final_eval_views=1), progress=False)
    path.save(tmp_path / "p.json")
    assert main(["render", str(run), "--path", str(tmp_path / "p.json"), "--frames", "4", "--resolution", "16",
                 "--format", "gif"]) == 0
    frames = iio.imread(run / "p.gif", index=None)
    assert frames.shape[:3] == (4, 16, 32)  # RGB | depth side by side
    path.save(tmp_path / "ns.json", "nerfstudio")  # nerfstudio's format, told apart by its keys
    assert main(["render", str(run), "--path", str(tmp_path / "ns.json"), "--frames", "2", "--resolution", "16",
                 "--format", "gif"]) == 0
    assert iio.imread(run / "ns.gif", index=None).shape[:3] == (2, 16, 32)
    (tmp_path / "bad.json").write_text(json.dumps({"keyframes": "x"}))
    capsys.readouterr()
    assert main(["render", str(run), "--path", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("fields render: error:") and "bad.json" in err


def test_camera_path_dataclass_to_json_has_format(path):
    data = CameraPath.to_json(path)
    assert data["format"] == "nfields-camera-path-1" and len(data["keyframes"]) == 3


# ----- nerfstudio's camera path format (nerfstudio/viewer/render_panel.py writes it, nerfstudio/cameras/
# camera_paths.py get_path_from_json and nerfstudio/scripts/render.py read it) -----

def test_nerfstudio_format_round_trip(path, tmp_path):
    """Saved as nerfstudio's: every frame in camera_path (row-major 4x4 flattened, vertical fov, aspect), render
    size, fps and seconds; read back, the video's cameras are the same."""
    data = json.loads(path.save(tmp_path / "ns.json", "nerfstudio").read_text())
    assert (data["render_width"], data["render_height"], data["camera_type"]) == (32, 32, "perspective")
    assert len(data["camera_path"]) == 9 and data["seconds"] == pytest.approx(9 / 12) and data["fps"] == 12
    assert len(data["keyframes"]) == 3 and len(data["keyframes"][1]["matrix"]) == 16
    np.testing.assert_allclose(np.reshape(data["keyframes"][1]["matrix"], (4, 4)), path.keyframes[1].camera_to_world)
    first = data["camera_path"][0]
    assert len(first["camera_to_world"]) == 16 and first["aspect"] == 1.0
    loaded = load_camera_path(tmp_path / "ns.json")
    assert (loaded.width, loaded.height, loaded.frames) == (32, 32, 9) and loaded.fps == pytest.approx(12)
    a, b = path.cameras(), loaded.cameras()
    torch.testing.assert_close(b.camera_to_world, a.camera_to_world, atol=1e-6, rtol=0)
    torch.testing.assert_close(b.focal, a.focal, atol=1e-4, rtol=0)
    # ... and saved again in this toolkit's format, the same cameras.
    again = load_camera_path(loaded.save(tmp_path / "fields.json"))
    torch.testing.assert_close(again.cameras().camera_to_world, a.camera_to_world, atol=1e-6, rtol=0)


def test_nerfstudio_path_as_nerfstudio_renders_it(tmp_path):
    """A file as nerfstudio's viewer writes it: frame i's camera is camera_to_world viewed as 4x4 (row-major), its
    focal (render_height / 2) / tan(fov / 2) with the principal point at the centre; fps = frames / seconds."""
    poses = make_procedural_scene(3, 16).cameras.camera_to_world.double().numpy()
    data = {"camera_type": "perspective", "render_height": 30, "render_width": 40, "fps": 24, "seconds": 1.5,
            "keyframes": [], "crop": None,
            "camera_path": [{"camera_to_world": p.reshape(-1).tolist(), "fov": fov, "aspect": 4 / 3}
                            for p, fov in zip(poses, (50.0, 60.0, 70.0))]}
    (tmp_path / "ns.json").write_text(json.dumps(data))
    loaded = load_camera_path(tmp_path / "ns.json")
    assert loaded.fps == pytest.approx(2.0) and loaded.frames == 3
    cameras = loaded.cameras()
    torch.testing.assert_close(cameras.camera_to_world, torch.from_numpy(poses).float(), atol=1e-6, rtol=0)
    focal = 15.0 / np.tan(np.radians([50.0, 60.0, 70.0]) / 2)
    torch.testing.assert_close(cameras.focal, torch.from_numpy(np.stack([focal, focal], 1)).float())
    assert (cameras.width, cameras.height) == (40, 30) and cameras.principal[0].tolist() == [20.0, 15.0]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(camera_type="equirectangular"), "field 'camera_type' is 'equirectangular'"),
    (lambda d: d.update(camera_path=d["camera_path"][:1]), "field 'camera_path' must be a list of at least 2"),
    (lambda d: d.pop("render_width"), "'render_width' and 'render_height' are missing"),
    (lambda d: d["camera_path"][1].update(camera_to_world=[1.0] * 12), r"camera_path\[1\]: .*4x4"),
    (lambda d: d["camera_path"][0].update(fov=None), r"camera_path\[0\]: field 'fov'"),
    (lambda d: d.update(seconds=-1), "field 'seconds' must be a positive number"),
])
def test_malformed_nerfstudio_paths_name_file_and_field(path, tmp_path, edit, message):
    data = path.to_json("nerfstudio")
    edit(data)
    (tmp_path / "ns.json").write_text(json.dumps(data))
    with pytest.raises(FieldsError, match=message) as info:
        load_camera_path(tmp_path / "ns.json")
    assert str(tmp_path / "ns.json") in str(info.value)


def test_nerfstudio_dataparser_transform_maps_a_path_back(path, tmp_path):
    """A path in a nerfstudio run's world (p_ns = scale * (R p + t)) comes back into the scene with that run's
    dataparser_transforms.json."""
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    transform = np.c_[rot, [0.3, -0.2, 0.5]]
    path.transformed(transform, 0.4).save(tmp_path / "ns.json", "nerfstudio")
    (tmp_path / "dataparser_transforms.json").write_text(json.dumps({"transform": transform.tolist(), "scale": 0.4}))
    back = load_camera_path(tmp_path / "ns.json", tmp_path / "dataparser_transforms.json")
    torch.testing.assert_close(back.cameras().camera_to_world, path.cameras().camera_to_world, atol=1e-5, rtol=0)
    (tmp_path / "bad.json").write_text(json.dumps({"transform": (2 * transform).tolist(), "scale": 0.4}))
    with pytest.raises(FieldsError, match="bad.json: 'transform' must be a rotation"):
        load_camera_path(tmp_path / "ns.json", tmp_path / "bad.json")
