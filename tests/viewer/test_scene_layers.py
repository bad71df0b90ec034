"""The viewer's layers on real captures: sparse points in the scene frame, thumbnails on the frustums."""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import torch
from support import orbit_c2w, sdf_model, write_colmap_model, write_images

from nfields.datasets import load_dataset
from nfields.datasets.ingest.convert import convert
from nfields.engine.config import TrainConfig
from nfields.viewer.ports import free_port
from nfields.viewer.scene_layers import load_layers, make_thumbnails, sparse_points, subsample_points
from nfields.viewer.serve import open_run_viewer
from nfields.viewer.server import ViewerServer


def colmap_capture(folder, n_points=300):
    """A COLMAP model of 8 orbiting cameras and `n_points` random points: (points (P, 3), colours (P, 3))."""
    names = [f"view_{i}.png" for i in range(8)]
    rng = np.random.default_rng(3)
    points = rng.normal(size=(n_points, 3)) + [5.0, -2.0, 1.0]  # off the origin: the normalisation moves them
    colors = rng.integers(0, 255, (n_points, 3)).astype(np.uint8)
    write_colmap_model(folder / "sparse" / "0", orbit_c2w(8, radius=6.0), names,
                       {1: ("PINHOLE", 40, 30, [30.0, 30.0, 20.0, 15.0])}, [1] * 8, points, colors, binary=True)
    write_images(folder / "images", names, 40, 30)
    return points, colors


def test_sparse_points_are_the_capture_points_in_the_scene_frame(tmp_path):
    points, colors = colmap_capture(tmp_path / "capture")
    convert(tmp_path / "capture", tmp_path / "scene", progress=False)
    meta = json.loads((tmp_path / "scene" / "transforms.json").read_text())
    capture_to_scene = np.array(meta["fields"]["normalization"]["capture_to_scene"])
    expected = points @ capture_to_scene[:3, :3].T + capture_to_scene[:3, 3]
    assert np.abs(expected - points).max() > 0.5  # the normalisation moves them: the test can fail
    for data in ("scene", "capture"):  # a converted scene, and the COLMAP model read directly
        got, got_colors = sparse_points(TrainConfig(data=str(tmp_path / data)))
        assert got.dtype == np.float32 and got.shape == points.shape
        np.testing.assert_allclose(got, expected, atol=1e-4)
        assert np.array_equal(got_colors, colors)
    # The frame the training cameras live in: the scene's cameras sit where the normalisation puts them.
    cameras = load_dataset(tmp_path / "scene", "train").cameras
    c2w = orbit_c2w(8, radius=6.0)[1:]  # image 0 is held out
    np.testing.assert_allclose(cameras.camera_to_world[:, :3, 3].numpy(),
                               c2w[:, :3, 3] @ capture_to_scene[:3, :3].T + capture_to_scene[:3, 3], atol=1e-4)
    # Subsampled: a fixed subset of the same points with their own colours.
    few, few_colors = sparse_points(TrainConfig(data=str(tmp_path / "scene")), max_points=40)
    assert len(few) == 40
    rows = [int(np.abs(expected - p).sum(1).argmin()) for p in few]
    assert len(set(rows)) == 40 and rows == sorted(rows)
    np.testing.assert_allclose(few, expected[rows], atol=1e-4)
    assert np.array_equal(few_colors, colors[rows])
    assert np.array_equal(subsample_points(points, colors, 40)[0], subsample_points(points, colors, 40)[0])


def test_thumbnails_have_the_stated_size_and_area_averages():
    images = torch.randint(0, 256, (3, 300, 500, 4), dtype=torch.uint8)
    images[..., 3] = 255
    images[2, :, :, 3] = 0  # transparent: white
    thumbs = make_thumbnails(images, long_side=100)
    assert len(thumbs) == 3 and all(t.shape == (60, 100, 3) and t.dtype == np.uint8 for t in thumbs)
    block = images[0, :5, :5, :3].float().mean((0, 1))  # 5x5 pixels make one thumbnail pixel
    assert np.abs(thumbs[0][0, 0] - block.numpy()).max() <= 1
    assert (thumbs[2] == 255).all()
    tall = make_thumbnails(torch.zeros(1, 128, 64, 3, dtype=torch.uint8), long_side=96)[0]
    assert tall.shape == (96, 48, 3)
    small = make_thumbnails(torch.zeros(1, 30, 40, 3, dtype=torch.uint8), long_side=96)[0]
    assert small.shape == (30, 40, 3)  # never enlarged


class RecordingScene:
    """Stands in for a viser client's scene: records the frustums added."""

    def __init__(self):
        self.frustums = []

    def add_camera_frustum(self, name, **kwargs):
        self.frustums.append((name, kwargs))
        return SimpleNamespace(on_click=lambda callback: None, visible=True, image=kwargs.get("image"))


def test_one_thumbnail_per_training_camera_on_its_frustum(tmp_path):
    colmap_capture(tmp_path / "capture")
    config = TrainConfig(data=str(tmp_path / "capture"))
    scene = load_dataset(tmp_path / "capture", "train")
    layers = load_layers(config, scene.images)
    assert len(layers.thumbnails) == len(scene.cameras) == 7 and not layers.notes
    assert all(t.shape == (30, 40, 3) for t in layers.thumbnails)
    field, renderer = sdf_model(grid_resolution=16)
    viewer = ViewerServer(field, renderer, scene.cameras, "sdf", port=8700, verbose=False, layers=lambda: layers)
    try:
        client = SimpleNamespace(scene=RecordingScene())
        handles = viewer._add_frustums(client, viewer.layers().thumbnails)
        assert len(handles) == len(client.scene.frustums) == 7
        for i, (name, kwargs) in enumerate(client.scene.frustums):
            assert name == f"/training_cameras/{i}" and kwargs["format"] == "jpeg"
            assert kwargs["image"] is layers.thumbnails[i]
            assert np.array_equal(kwargs["image"], make_thumbnails(scene.images[i:i + 1])[0])
    finally:
        viewer.stop()


def test_missing_points_leave_a_note_not_an_error(tmp_path):
    colmap_capture(tmp_path / "capture")
    config = TrainConfig(data=str(tmp_path / "gone"))
    layers = load_layers(config, None)
    assert layers.points is None and layers.thumbnails is None
    assert len(layers.notes) == 1 and "no sparse points" in layers.notes[0] and "gone" in layers.notes[0]


def test_a_run_whose_data_is_gone_opens_with_one_line(short_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(short_run, run)
    config = json.loads((run / "config.json").read_text())
    config["scene"] = str(tmp_path / "moved-away")
    (run / "config.json").write_text(json.dumps(config))
    viewer = open_run_viewer(run, port=free_port("127.0.0.1", 8720), verbose=False)
    try:
        lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("viewer:")]
        assert len(lines) == 1 and "moved-away" in lines[0] and "cannot be read" in lines[0]
        assert not viewer.draw_cameras and len(viewer.cameras) == 1 and viewer.layers().points is None
        # The fallback view looks at the box's centre from outside it.
        c2w = viewer.cameras.camera_to_world[0]
        box = viewer.renderer.aabb.cpu()
        assert ((c2w[:3, 3] < box[:3]) | (c2w[:3, 3] > box[3:])).any()
        to_centre = 0.5 * (box[:3] + box[3:]) - c2w[:3, 3]
        assert torch.allclose(-c2w[:3, 2], to_centre / to_centre.norm(), atol=1e-5)
    finally:
        viewer.stop()
