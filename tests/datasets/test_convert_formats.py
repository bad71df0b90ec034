"""Round trips through `fields convert`: every format lands in the canonical layout with its poses intact."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import trimesh
from support import orbit_c2w, write_colmap_model, write_images, write_llff, write_transforms

from nfields.cli import main
from nfields.datasets import (
    detect_format,
    load_blender_scene,
    load_dataset,
    make_procedural_scene,
    read_capture,
    write_blender_scene,
)
from nfields.datasets.distortion import distort, undistort
from nfields.datasets.ingest.convert import convert
from nfields.engine.config import TrainConfig
from nfields.engine.trainer import train


@pytest.fixture(scope="module")
def blender_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blender")
    write_blender_scene(make_procedural_scene(6, 16), folder, "train")
    write_blender_scene(make_procedural_scene(3, 16, seed_offset=17.0), folder, "val")
    return folder


def test_blender_converts_losslessly(blender_dir, tmp_path):
    out = tmp_path / "scene"
    assert main(["convert", str(blender_dir), "--out", str(out), "--downscales", "2"]) == 0
    meta = json.loads((out / "transforms.json").read_text())
    assert len(meta["train_filenames"]) == 6 and len(meta["val_filenames"]) == 3
    assert detect_format(out) == "canonical"
    for split, downscale in (("train", 1), ("val", 1), ("val", 2)):
        direct, converted = load_blender_scene(blender_dir, split, downscale), load_dataset(out, split, downscale)
        assert torch.equal(direct.images, converted.images)
        assert torch.equal(direct.aabb, converted.aabb) and direct.near == converted.near
        for i in range(len(direct.cameras)):
            a, b = direct.cameras.image_rays(i), converted.cameras.image_rays(i)
            assert torch.allclose(a.origins, b.origins, atol=1e-6)
            assert torch.allclose(a.directions, b.directions, atol=1e-6)
    assert not list(tmp_path.glob(".scene.partial-*"))


def _colmap_scene(folder, binary):
    c2w = orbit_c2w(8)
    names = [f"view_{i}.png" for i in range(8)]
    cameras = {1: ("OPENCV", 24, 16, [30.0, 31.0, 12.5, 7.5, -0.05, 0.01, 0.001, -0.002]),
               7: ("SIMPLE_RADIAL", 24, 16, [28.0, 12.0, 8.0, 0.02])}
    points = np.random.default_rng(0).normal(size=(50, 3))
    colors = np.random.default_rng(1).integers(0, 255, (50, 3)).astype(np.uint8)
    write_colmap_model(folder / "sparse" / "0", c2w, names, cameras, [1, 7] * 4, points, colors, binary)
    write_images(folder / "images", names, 24, 16)
    return c2w, points


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_colmap_model_converts_to_its_poses(tmp_path, binary):
    c2w, points = _colmap_scene(tmp_path / "capture", binary)
    assert detect_format(tmp_path / "capture") == "colmap"
    result = convert(tmp_path / "capture", tmp_path / "out", progress=False)
    meta = json.loads((tmp_path / "out" / "transforms.json").read_text())
    scene_c2w = np.array([f["transform_matrix"] for f in meta["frames"]])
    capture = read_capture(tmp_path / "out")
    back = capture.normalization.invert_poses(scene_c2w)
    np.testing.assert_allclose(back, c2w, atol=1e-6)
    # OpenGL axes: every camera looks down its -z axis at the orbit's centre, +y is up (towards +z world).
    forward = -back[:, :3, 2]
    to_centre = -back[:, :3, 3] / np.linalg.norm(back[:, :3, 3], axis=1, keepdims=True)
    np.testing.assert_allclose(forward, to_centre, atol=1e-6)
    assert (back[:, 2, 1] > 0).all()
    # Per-image intrinsics and distortion kept, in COLMAP's order mapped to k1, k2, p1, p2.
    f0, f1 = meta["frames"][0], meta["frames"][1]
    assert (f0["fl_x"], f0["fl_y"], f0["cx"], f0["k1"], f0["k2"], f0["p1"], f0["p2"]) == (
        30.0, 31.0, 12.5, -0.05, 0.01, 0.001, -0.002)
    assert (f1["fl_x"], f1["fl_y"], f1["cy"], f1["k1"], f1["p1"]) == (28.0, 28.0, 8.0, 0.02, 0.0)
    assert meta["camera_model"] == "OPENCV" and meta["fields"]["bounded"] is False
    # Sparse points in scene coordinates map back onto the model's.
    scene_points = np.asarray(trimesh.load(tmp_path / "out" / "sparse_pc.ply").vertices, dtype=np.float64)
    norm = capture.normalization
    np.testing.assert_allclose(scene_points @ norm.rotation / norm.scale + norm.center, points, atol=1e-4)
    assert result.capture.splits["val"] == [0]
    # The cameras fit in the scene box, and the loader gives each image its own intrinsics.
    assert np.abs(scene_c2w[:, :3, 3]).max() <= 1.0 + 1e-9
    train = load_dataset(tmp_path / "out", "train")
    assert len({tuple(f) for f in train.cameras.focal.tolist()}) == 2 and train.cameras.distortion is not None


def test_colmap_rays_are_undistorted(tmp_path):
    """A scene point projected with the OPENCV model lies on the ray the loader gives for that pixel."""
    c2w, points = _colmap_scene(tmp_path / "capture", binary=True)
    capture = read_capture(tmp_path / "capture")
    scene = load_dataset(tmp_path / "capture", "val")  # image 0: the OPENCV camera
    world = torch.tensor([[0.1, -0.2, 0.15]], dtype=torch.float64)
    w2c = torch.from_numpy(np.linalg.inv(capture.camera_to_world[0]))
    cam = (w2c[:3, :3] @ world.T).T + w2c[:3, 3]
    u, v = cam[:, 0] / -cam[:, 2], -cam[:, 1] / -cam[:, 2]  # OpenCV normalised coordinates
    ud, vd = distort(u, v, torch.from_numpy(capture.distortion[:1]))
    fx, fy, cx, cy = capture.intrinsics[0]
    rays = scene.cameras.rays(torch.tensor([0]), (ud * fx + cx).float(), (vd * fy + cy).float())
    to_point = (world.float() - rays.origins) / (world.float() - rays.origins).norm()
    assert torch.allclose(rays.directions, to_point, atol=1e-5)


def test_undistort_inverts_distort():
    gen = torch.Generator().manual_seed(0)
    x, y = (torch.rand(2, 1000, generator=gen, dtype=torch.float64) - 0.5) * 1.2
    params = torch.tensor([[-0.2, 0.05, -0.01, 0.002, 0.001, -0.003]], dtype=torch.float64).expand(1000, 6)
    xu, yu = undistort(*distort(x, y, params), params)
    assert torch.allclose(xu, x, atol=1e-9) and torch.allclose(yu, y, atol=1e-9)


def test_llff_bounds_and_ndc(tmp_path):
    c2w = np.tile(np.eye(4), (9, 1, 1))
    c2w[:, 0, 3] = np.linspace(-0.5, 0.5, 9)  # a sideways sweep, all looking down -z
    bounds = np.stack([np.linspace(2.0, 3.0, 9), np.linspace(10.0, 12.0, 9)], axis=1)
    write_llff(tmp_path / "llff", c2w, bounds, 20, 12, focal=18.0)
    assert detect_format(tmp_path / "llff") == "llff"
    convert(tmp_path / "llff", tmp_path / "out", progress=False)
    meta = json.loads((tmp_path / "out" / "transforms.json").read_text())
    scale = meta["fields"]["normalization"]["scale"]
    assert scale == pytest.approx(1 / (2.0 * 0.75))
    np.testing.assert_allclose([f["near_far"] for f in meta["frames"]], bounds * scale)
    train = load_dataset(tmp_path / "out", "train")
    np.testing.assert_allclose(train.bounds.numpy(), bounds[1:8] * scale, rtol=1e-6)  # images 0 and 8 are held out
    assert train.cameras.ndc.near == 1.0 and train.cameras.focal[0, 0].item() == 18.0
    rays = train.cameras.image_rays(0)
    assert torch.allclose(rays.origins[:, 2], torch.full((240,), -1.0), atol=1e-5)  # on the NDC near plane
    box = train.aabb
    far = rays.origins + rays.directions * (2.0 / rays.directions[:, 2:3])  # where rays reach z = 1 (infinity)
    for points in (rays.origins, far):  # the frustum lies in the scene box
        assert ((points >= box[:3] - 1e-5) & (points <= box[3:] + 1e-5)).all()
    assert box[0] < -1.2 and box[3] > 1.2  # the sideways sweep widens the box beyond the NDC square


def test_nerfstudio_per_frame_intrinsics(tmp_path):
    c2w = orbit_c2w(3)
    names = [f"images/f{i}.png" for i in range(3)]
    write_images(tmp_path / "ns" / "images", [n.split("/")[1] for n in names], 10, 8)
    frames = [{"file_path": n, "transform_matrix": p.tolist()} for n, p in zip(names, c2w)]
    frames[1].update(fl_x=12.0, fl_y=13.0, cx=4.0, cy=3.5, k1=0.1)
    write_transforms(tmp_path / "ns" / "transforms.json", {
        "camera_model": "OPENCV", "fl_x": 9.0, "fl_y": 9.5, "cx": 5.0, "cy": 4.0, "w": 10, "h": 8, "frames": frames,
        "applied_transform": np.eye(4)[:3].tolist(), "train_filenames": names[:2], "test_filenames": names[2:]})
    assert detect_format(tmp_path / "ns") == "nerfstudio"
    capture = read_capture(tmp_path / "ns")
    np.testing.assert_allclose(capture.intrinsics, [[9, 9.5, 5, 4], [12, 13, 4, 3.5], [9, 9.5, 5, 4]])
    assert capture.distortion[1, 0] == 0.1 and capture.splits["train"] == [0, 1] and capture.splits["val"] == []
    np.testing.assert_allclose(capture.normalization.invert_poses(capture.camera_to_world), c2w, atol=1e-9)


def test_instant_ngp_box(tmp_path):
    c2w = orbit_c2w(3)
    write_images(tmp_path / "ngp", [f"r_{i}.png" for i in range(3)], 10, 8)
    frames = [{"file_path": f"r_{i}", "transform_matrix": p.tolist()} for i, p in enumerate(c2w)]
    write_transforms(tmp_path / "ngp" / "transforms.json", {"camera_angle_x": 0.8, "aabb_scale": 1, "scale": 0.5,
                                                            "offset": [0.5, 0.5, 0.0], "frames": frames})
    assert detect_format(tmp_path / "ngp") == "instant-ngp"
    capture = read_capture(tmp_path / "ngp")
    # ngp box: centre (0.5 - offset) / scale = (0, 0, 1), half-size aabb_scale / 2 / scale = 1.
    np.testing.assert_allclose(capture.normalization.center, [0, 0, 1])
    assert capture.normalization.scale == pytest.approx(1.0) and capture.bounded
    assert capture.intrinsics[0, 0] == pytest.approx(5 / np.tan(0.4))


def test_train_on_converted_scene(blender_dir, tmp_path, monkeypatch):
    convert(blender_dir, tmp_path / "scene", progress=False)
    run = tmp_path / "run"
    result = train(TrainConfig(data=str(tmp_path / "scene"), field="mlp", steps=3, output=str(run),
                               grid_resolution=16, samples_per_step=1 << 12, initial_rays=64, eval_every=1e9,
                               eval_pixels=256, final_eval_views=1), progress=False)
    assert result.step == 3 and result.metrics["views"] == 1
    assert TrainConfig.load(run / "config.json").scene == "scene"  # runs are labelled by the data's folder
    assert main(["eval", str(run), "--views", "1"]) == 0  # eval finds the scene through the run's config
    width, height = map(int, json.loads((run / "eval_val.json").read_text())["resolution"].split("x"))
    assert main(["eval", str(run), "--views", "1", "--downscale", "2"]) == 0  # scored at half the resolution
    assert json.loads((run / "eval_val.json").read_text())["resolution"] == f"{width // 2}x{height // 2}"
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--steps", "3"]) == 2
    seen = []
    monkeypatch.setattr("nfields.engine.trainer.train",
                        lambda config, **_: seen.append(config) or SimpleNamespace(metrics=None))
    assert main(["train", "--data", str(tmp_path / "scene")]) == 130
    assert seen[0].data == str((tmp_path / "scene").resolve()) and seen[0].scene == "scene"
