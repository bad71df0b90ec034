"""The viewer's 'Save path' button, clicked as the panel clicks it: paths go into RUN/camera_paths/ under plain
names, never through a symlink nor over a file that is not a camera path, written atomically; refusals show
in the panel."""

import hashlib
import json
import os
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest
from support import sdf_model

from nfields.cli import main
from nfields.datasets import make_procedural_scene
from nfields.outputs.camera_path import load_camera_path
from nfields.viewer.rendering import viser_pose


class _Widget(SimpleNamespace):
    def on_click(self, handler):
        self.handler = handler
        return handler

    on_update = on_click


class _PanelGui:
    """The viser gui calls the path editor makes; widgets by label (markdown: 'info')."""

    def __init__(self):
        self.widgets = {}

    def add_folder(self, label, **_):
        return nullcontext()

    def _add(self, label, **kw):
        self.widgets[label] = _Widget(value=kw.get("initial_value"), content=kw.get("content"))
        return self.widgets[label]

    def add_button(self, label, **kw):
        return self._add(label, **kw)

    add_number = add_text = add_button

    def add_dropdown(self, label, options, **kw):
        return self._add(label, **kw)

    def add_markdown(self, content, **_):
        return self._add("info", content=content)


class _Panel:
    """The camera path panel of one browser tab."""

    def __init__(self, viewer):
        poses = make_procedural_scene(3, 16).cameras.camera_to_world.double().numpy()
        self.poses, self.gui = poses, _PanelGui()
        wxyz, position = viser_pose(poses[0])
        self.client = SimpleNamespace(gui=self.gui, camera=SimpleNamespace(wxyz=wxyz, position=position, fov=0.7))
        viewer._add_path_editor(self.client)
        for pose in poses[:2]:
            self.client.camera.wxyz, self.client.camera.position = viser_pose(pose)
            self.click("Add keyframe (current view)")

    def click(self, label):
        self.gui.widgets[label].handler(None)

    def save(self, name) -> str:
        self.gui.widgets["File"].value = name
        self.click("Save path")
        return self.gui.widgets["info"].content


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): ("-> " + os.readlink(p)) if p.is_symlink() else
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir" for p in root.rglob("*")}


@pytest.fixture(scope="module")
def viewer():
    from nfields.viewer import ViewerServer

    server = ViewerServer(*sdf_model(grid_resolution=32), make_procedural_scene(3, 16).cameras, "sdf", verbose=False)
    yield server
    server.stop()


@pytest.fixture
def run(tmp_path, viewer):
    """A run folder someone sent: a checkpoint and config beside it, a secret file outside it."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "checkpoint.pt").write_bytes(b"weights")
    (folder / "config.json").write_text('{"field": "mlp"}')
    (tmp_path / "secret.txt").write_text("not yours")
    viewer.run_folder = folder
    return folder


@pytest.mark.parametrize("name,message", [
    ("checkpoint.pt", "'checkpoint.pt': not saved: a camera path name is letters, digits"),
    ("../config.json", "'../config.json': not saved: a camera path name"),
    ("../../secret.txt", "'../../secret.txt': not saved"),
    ("/tmp/x.json", "'/tmp/x.json': not saved"),
    (".hidden.json", "'.hidden.json': not saved"),
])
def test_refused_names_show_in_the_panel_and_change_nothing(tmp_path, viewer, run, name, message):
    before = _snapshot(tmp_path)
    assert _Panel(viewer).save(name).startswith(message)
    assert _snapshot(tmp_path) == before


def test_reserved_run_file_names_stay_inside_camera_paths(tmp_path, viewer, run):
    before = _snapshot(tmp_path)
    assert "saved to" in _Panel(viewer).save("config.json")
    after = _snapshot(tmp_path)
    assert set(after) - set(before) == {"run/camera_paths", "run/camera_paths/config.json"}
    assert all(after[k] == v for k, v in before.items())  # the run's own config.json is untouched
    assert len(load_camera_path(run / "camera_paths" / "config.json").keyframes) == 2


def test_symlinked_file_is_refused(tmp_path, viewer, run):
    (run / "camera_paths").mkdir()
    (run / "camera_paths" / "camera_path.json").symlink_to(tmp_path / "secret.txt")
    before = _snapshot(tmp_path)
    info = _Panel(viewer).save("camera_path.json")
    assert info == f"{run / 'camera_paths' / 'camera_path.json'}: not saved: the file is a symlink; choose another name"
    assert _snapshot(tmp_path) == before


def test_symlinked_camera_paths_folder_is_refused(tmp_path, viewer, run):
    (tmp_path / "elsewhere").mkdir()
    (run / "camera_paths").symlink_to(tmp_path / "elsewhere")
    before = _snapshot(tmp_path)
    info = _Panel(viewer).save("camera_path.json")
    assert info == f"{run / 'camera_paths'}: not saved: cannot use it as the camera path folder (a symlink)"
    assert _snapshot(tmp_path) == before


def test_an_existing_file_that_is_not_a_camera_path_is_kept(tmp_path, viewer, run):
    (run / "camera_paths").mkdir()
    (run / "camera_paths" / "notes.json").write_text('{"mine": true}')
    before = _snapshot(tmp_path)
    assert _Panel(viewer).save("notes.json").endswith("not saved: the file exists and is not a camera path; "
                                                      "choose another name")
    assert _snapshot(tmp_path) == before


def test_save_is_atomic_and_overwrites_only_a_camera_path(tmp_path, viewer, run, monkeypatch):
    panel = _Panel(viewer)
    assert "saved to" in panel.save("orbit.json")
    saved = run / "camera_paths" / "orbit.json"
    first = saved.read_bytes()
    panel.click("Add keyframe (current view)")

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    assert panel.save("orbit.json") == f"{saved}: not saved: No space left on device"
    assert saved.read_bytes() == first and os.listdir(run / "camera_paths") == ["orbit.json"]  # no temp file left
    monkeypatch.undo()
    assert "saved to" in panel.save("orbit.json")  # a camera path may be replaced by a newer one
    assert len(json.loads(saved.read_text())["keyframes"]) == 3



def test_save_in_nerfstudio_format(viewer, run):
    """The panel's Format: nerfstudio's camera path (every frame, for ns-render), read back by fields render."""
    panel = _Panel(viewer)
    panel.gui.widgets["Format"].value = "nerfstudio"
    saved = run / "camera_paths" / "ns_path.json"
    assert panel.save("ns_path.json").startswith(f"2 keyframes saved to {saved}")
    data = json.loads(saved.read_text())
    assert "format" not in data and len(data["camera_path"]) == 120
    assert (data["render_width"], data["render_height"], data["camera_type"]) == (16, 16, "perspective")
    loaded = load_camera_path(saved)
    np.testing.assert_allclose(loaded.keyframes[0].camera_to_world, panel.poses[0], atol=1e-5)
    np.testing.assert_allclose(loaded.keyframes[-1].camera_to_world, panel.poses[1], atol=1e-5)
    panel.gui.widgets["Format"].value = "fields"  # a nerfstudio path is a camera path: a later save may replace it
    assert "saved to" in panel.save("ns_path.json")
    assert json.loads(saved.read_text())["format"] == "nfields-camera-path-1"

@pytest.mark.slow  # trains 5 steps, then `fields render` from the saved path
def test_saved_path_renders_with_fields_render(procedural_dir, tmp_path, viewer, capsys):
    from nfields.engine.config import TrainConfig
    from nfields.engine.trainer import train

    run = tmp_path / "trained"
    train(TrainConfig(scene=str(procedural_dir), field="hashgrid", steps=5, output=str(run), grid_resolution=32,
                      eval_every=1e9, eval_pixels=256, final_eval_views=1), progress=False)
    viewer.run_folder = run
    info = _Panel(viewer).save("fly.json")
    saved = run / "camera_paths" / "fly.json"
    assert info == f"2 keyframes saved to {saved}; render: `fields render {run} --path {saved}`"
    assert main(["render", str(run), "--path", str(saved), "--frames", "3", "--resolution", "16",
                 "--format", "gif"]) == 0
    assert iio.imread(run / "fly.gif", index=None).shape[:3] == (3, 16, 32)  # RGB | depth side by side
