"""The scene type comes from the cameras, not the file format; the training resolution is chosen by size."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
from support import orbit_c2w, write_colmap_model, write_images, write_llff, write_transforms

from nfields.cli import main
from nfields.datasets import DatasetError, load_dataset, read_capture
from nfields.datasets.capture import MAX_LONG_SIDE, choose_downscale
from nfields.datasets.data_root import default_data_roots
from nfields.datasets.ingest.convert import convert
from nfields.datasets.scene_type import classify
from nfields.engine.config import TrainConfig
from nfields.engine.scenes import load_scene, resolve_downscale


def forward_grid(n_side: int = 4, step: float = 0.1) -> np.ndarray:
    """(n_side^2, 4, 4) cameras on a grid in the z = 0 plane, all looking down -z (LLFF-like)."""
    c2w = np.tile(np.eye(4), (n_side * n_side, 1, 1))
    xs, ys = np.meshgrid(np.arange(n_side) * step, np.arange(n_side) * step)
    c2w[:, 0, 3], c2w[:, 1, 3] = xs.ravel(), ys.ravel()
    return c2w


def outward_ring(n: int = 12, radius: float = 1.0) -> np.ndarray:
    """Cameras on a horizontal circle looking away from its centre (the orbit's cameras turned around)."""
    c2w = orbit_c2w(n, radius)
    c2w[:, :3, 0] *= -1  # look the other way: flip the view (z) and right (x) axes, keep up
    c2w[:, :3, 2] *= -1
    return c2w


def walk(n: int = 12) -> np.ndarray:
    """Cameras walking 3 units down -z, looking where they go."""
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, 2, 3] = -np.linspace(0.0, 3.0, n)
    c2w[:, 0, 3] = 0.05 * np.sin(np.arange(n))
    return c2w


def test_rigs_classify_by_geometry():
    grid = forward_grid()
    bounds = np.tile([2.0, 10.0], (len(grid), 1))
    ff = classify(grid, bounds)
    assert ff.kind == "forward-facing", ff.reason
    assert "spread 0 deg (p90)" in ff.reason and "LLFF bounds" in ff.reason
    ring = classify(orbit_c2w(12))
    assert ring.kind == "object", ring.reason
    assert "not forward-facing" in ring.reason and "object-centred" in ring.reason
    np.testing.assert_allclose(ring.geometry.focus, 0.0, atol=1e-6)  # the orbit looks at the origin
    out = classify(outward_ring())
    assert out.kind == "unbounded" and "behind 12 of 12 cameras" in out.reason, out.reason
    walking = classify(walk(), np.tile([0.5, 20.0], (12, 1)))  # looks forward-facing, walks into its scene
    assert walking.kind == "unbounded" and "travel" in walking.reason, walking.reason
    # Forward-facing cameras without any depth (no LLFF bounds, no points) cannot be NDC: trained unbounded.
    no_depth = classify(grid)
    assert no_depth.kind == "unbounded" and "neither LLFF bounds nor sparse points" in no_depth.reason


def test_sparse_points_give_forward_facing_depths():
    grid = forward_grid()
    rng = np.random.default_rng(0)
    points = np.c_[rng.uniform(-1, 1, (500, 2)), rng.uniform(-6, -3, 500)]  # a wall 3 to 6 units ahead
    intrinsics = np.tile([20.0, 20.0, 16.0, 12.0], (len(grid), 1))
    result = classify(grid, points=points, intrinsics=intrinsics, width=32, height=24)
    assert result.kind == "forward-facing" and "sparse points" in result.reason
    assert 2.9 < result.geometry.depths[:, 0].min() < 3.2 and result.geometry.depths[:, 1].max() <= 6.0


def _ring_llff(folder, n=10):
    c2w = orbit_c2w(n)
    write_llff(folder, c2w, np.tile([2.0, 6.0], (n, 1)), 16, 12, 15.0)
    return c2w


def test_llff_ring_is_not_trained_in_ndc(tmp_path):
    c2w = _ring_llff(tmp_path / "ring")
    capture = read_capture(tmp_path / "ring")
    assert capture.source == "llff" and capture.scene_type == "object", capture.scene_type_reason
    assert capture.ndc_near is None and not capture.bounded
    assert np.abs(capture.camera_to_world[:, :3, 3]).max() == pytest.approx(1.0)  # cameras fill the box
    np.testing.assert_allclose(capture.normalization.invert_poses(capture.camera_to_world), c2w, atol=1e-6)
    # Centred on the point the axes meet (the orbit's target), not on the camera mean (2 units above it).
    np.testing.assert_allclose(capture.normalization.center, 0.0, atol=1e-6)
    scene = load_dataset(tmp_path / "ring", "train")
    assert scene.cameras.ndc is None and not scene.bounded and scene.scene_type == "object"
    write_llff(tmp_path / "out", outward_ring(10), np.tile([2.0, 6.0], (10, 1)), 16, 12, 15.0)
    outward = read_capture(tmp_path / "out")
    assert outward.scene_type == "unbounded" and outward.ndc_near is None and not outward.bounded
    np.testing.assert_allclose(outward.normalization.center, outward_ring(10)[:, :3, 3].mean(0), atol=1e-6)


def test_llff_forward_facing_stays_ndc(tmp_path):
    write_llff(tmp_path / "ff", forward_grid(3), np.tile([2.0, 8.0], (9, 1)), 16, 12, 15.0)
    capture = read_capture(tmp_path / "ff")
    assert capture.scene_type == "forward-facing" and capture.ndc_near == 1.0 and capture.bounded
    assert capture.normalization.scale == pytest.approx(1 / (2.0 * 0.75))


def test_override(tmp_path):
    _ring_llff(tmp_path / "ring")
    forced = read_capture(tmp_path / "ring", scene_type="forward-facing")
    assert forced.scene_type == "forward-facing" and forced.ndc_near == 1.0
    assert forced.scene_type_reason.startswith("forward-facing as asked (--scene-type; measured: view directions")
    unbounded = read_capture(tmp_path / "ring", scene_type="unbounded")
    assert unbounded.scene_type == "unbounded" and unbounded.normalization.center[2] == pytest.approx(2.0)
    # A capture without bounds or points cannot be forced forward-facing: the error names its file.
    c2w = forward_grid(3)
    names = [f"images/f{i}.png" for i in range(len(c2w))]
    write_images(tmp_path / "ns" / "images", [n.split("/")[1] for n in names], 16, 12)
    write_transforms(tmp_path / "ns" / "transforms.json", {
        "camera_model": "PINHOLE", "fl_x": 15.0, "fl_y": 15.0, "w": 16, "h": 12,
        "frames": [{"file_path": n, "transform_matrix": p.tolist()} for n, p in zip(names, c2w)]})
    assert read_capture(tmp_path / "ns").scene_type == "unbounded"
    with pytest.raises(DatasetError, match=r"ns/transforms.json: cannot be trained forward-facing \(NDC\): .*"
                                           r"neither LLFF bounds \(poses_bounds.npy\) nor sparse points"):
        read_capture(tmp_path / "ns", scene_type="forward-facing")
    with pytest.raises(DatasetError, match="cannot be trained as an object: the cameras' optical axes"):
        read_capture(tmp_path / "ns", scene_type="object")
    with pytest.raises(DatasetError, match="unknown scene type 'sideways'"):
        read_capture(tmp_path / "ns", scene_type="sideways")


def test_convert_prints_and_records_the_scene_type(tmp_path, capsys):
    c2w = _ring_llff(tmp_path / "ring")
    assert main(["convert", str(tmp_path / "ring"), "--out", str(tmp_path / "auto")]) == 0
    printed = capsys.readouterr().out
    assert "scene type: object: view directions spread" in printed and "object-centred" in printed
    block = json.loads((tmp_path / "auto" / "transforms.json").read_text())["fields"]
    assert block["scene_type"]["kind"] == "object" and block["ndc_near"] is None
    assert read_capture(tmp_path / "auto").scene_type == "object"
    assert main(["convert", str(tmp_path / "ring"), "--out", str(tmp_path / "ff"),
                 "--scene-type", "forward-facing"]) == 0
    assert "scene type: forward-facing: forward-facing as asked" in capsys.readouterr().out
    # A converted scene read as another type is normalised again, and still maps back onto its capture.
    again = read_capture(tmp_path / "ff", scene_type="unbounded")
    assert again.scene_type == "unbounded" and again.ndc_near is None and not again.bounded
    np.testing.assert_allclose(again.normalization.invert_poses(again.camera_to_world), c2w, atol=1e-6)
    with pytest.raises(SystemExit) as stop:
        main(["convert", str(tmp_path / "ring"), "--out", str(tmp_path / "x"), "--scene-type", "flat"])
    assert stop.value.code == 2 and "argument --scene-type: invalid choice: 'flat'" in capsys.readouterr().err


def test_canonical_written_before_scene_types_still_reads(tmp_path):
    _ring_llff(tmp_path / "ring")
    convert(tmp_path / "ring", tmp_path / "out", progress=False, scene_type="forward-facing")
    path = tmp_path / "out" / "transforms.json"
    meta = json.loads(path.read_text())
    del meta["fields"]["scene_type"]
    path.write_text(json.dumps(meta))
    capture = read_capture(tmp_path / "out")
    assert capture.scene_type == "forward-facing" and "before scene types were recorded" in capture.scene_type_reason
    meta["fields"]["scene_type"] = {"kind": "sideways"}
    path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="fields.scene_type must be"):
        read_capture(tmp_path / "out")


def test_colmap_ring_is_an_object_and_points_allow_forward_facing(tmp_path):
    c2w = orbit_c2w(8)
    names = [f"v{i}.png" for i in range(8)]
    points = np.random.default_rng(0).normal(scale=0.5, size=(400, 3))
    write_colmap_model(tmp_path / "c" / "sparse" / "0", c2w, names, {1: ("PINHOLE", 24, 16, [20.0, 20.0, 12, 8])},
                       [1] * 8, points, np.zeros((400, 3), np.uint8), True)
    write_images(tmp_path / "c" / "images", names, 24, 16)
    assert read_capture(tmp_path / "c").scene_type == "object"
    forced = read_capture(tmp_path / "c", scene_type="forward-facing")  # near/far from the points' depths
    assert forced.ndc_near == 1.0 and forced.bounds is not None and (forced.bounds[:, 0] > 0).all()


# ---------- real data ----------
def _beer():
    for root in default_data_roots():
        if (root / "real" / "beer" / "poses_bounds.npy").is_file():
            return root / "real" / "beer"
    return None


@pytest.mark.skipif(_beer() is None, reason="real/beer not found under $FIELDS_DATA_ROOT or ../shared/data")
@pytest.mark.parametrize("fmt", ["llff", "colmap"])
def test_beer_is_not_forward_facing(fmt):
    capture = read_capture(_beer(), fmt)
    assert capture.scene_type == "object", capture.scene_type_reason
    assert "spread 62 deg (p90)" in capture.scene_type_reason and capture.ndc_near is None and not capture.bounded


# ---------- resolution ----------
def test_downscale_chosen_by_size():
    assert choose_downscale(720, 1280, "cpu") == 2  # beer
    assert choose_downscale(800, 800, "cpu") == 1  # lego at full size
    assert choose_downscale(1001, 10, "cpu") == 2 and choose_downscale(3000, 2000, "cpu") == 3
    assert choose_downscale(720, 1280, "cuda") == 1 and choose_downscale(4032, 3024, "cuda") == 3


def _nerfstudio_with_copies(folder, copy_size=(8, 6)):
    c2w = orbit_c2w(4)
    names = [f"f{i}.png" for i in range(4)]
    write_images(folder / "images", names, 16, 12)
    folder.joinpath("images_2").mkdir()
    for name in names:
        iio.imwrite(folder / "images_2" / name, np.full((copy_size[1], copy_size[0], 3), 7, np.uint8))
    write_transforms(folder / "transforms.json", {
        "camera_model": "PINHOLE", "fl_x": 15.0, "fl_y": 15.0, "w": 16, "h": 12,
        "frames": [{"file_path": f"images/{n}", "transform_matrix": p.tolist()} for n, p in zip(names, c2w)]})


def test_nerfstudio_images_k_are_read_instead_of_resizing(tmp_path):
    _nerfstudio_with_copies(tmp_path / "ns")
    scene = load_dataset(tmp_path / "ns", "train", downscale=2)
    assert scene.images.shape[1:3] == (6, 8) and (scene.images == 7).all()  # images_2/, not images/ resized
    assert scene.cameras.focal[0, 0].item() == 7.5
    assert load_dataset(tmp_path / "ns", "train", downscale=4).images.shape[1:3] == (3, 4)  # no images_4/: resized
    _nerfstudio_with_copies(tmp_path / "bad", copy_size=(5, 5))
    with pytest.raises(DatasetError, match=r"images_2/f1.png: image is 5x5, but as a copy of 16x12 downscaled 2"):
        load_dataset(tmp_path / "bad", "train", downscale=2)


def test_run_config_records_the_chosen_factor(tmp_path, monkeypatch):
    _nerfstudio_with_copies(tmp_path / "ns")
    config = TrainConfig(data=str(tmp_path / "ns"), device="cpu")
    assert config.downscale is None
    assert resolve_downscale(config) and config.downscale == 1  # 16 px: no need to shrink
    monkeypatch.setitem(MAX_LONG_SIDE, "cpu", 10)
    config = TrainConfig(data=str(tmp_path / "ns"), device="cpu")
    assert resolve_downscale(config) and config.downscale == 2
    assert load_scene(config, "train").cameras.width == 8
    config.save(tmp_path / "config.json")
    assert TrainConfig.load(tmp_path / "config.json").downscale == 2  # evaluation reads the run's factor
    given = TrainConfig(data=str(tmp_path / "ns"), downscale=1)
    assert not resolve_downscale(given) and given.downscale == 1


def test_training_says_and_records_its_resolution_and_scene_type(tmp_path, capsys):
    from nfields.engine.trainer import train

    _ring_llff(tmp_path / "ring")
    run = tmp_path / "run"
    train(TrainConfig(data=str(tmp_path / "ring"), field="mlp", steps=2, output=str(run), grid_resolution=16,
                      samples_per_step=1 << 10, initial_rays=32, eval_every=1e9, eval_pixels=64, final_eval_views=1,
                      device="cpu"), progress=True)
    out = capsys.readouterr().out
    assert "training at 16x12 (downscale 1, chosen by size; --downscale to override)" in out
    assert "scene type: object: view directions spread" in out
    saved = json.loads((run / "config.json").read_text())
    assert saved["downscale"] == 1 and saved["scene_type"] == "object"  # evaluation reads the data the same way
    # A run from before scene types read raw LLFF data in NDC: loading its config keeps it so.
    del saved["scene_type"]
    (run / "config.json").write_text(json.dumps(saved))
    assert TrainConfig.load(run / "config.json").scene_type == "forward-facing"
