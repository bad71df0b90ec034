"""Moving data between fields and nerfstudio both ways: a converted scene loads in nerfstudio with its sparse points
where its cameras see them, and nerfstudio captures (distorted and fisheye lenses, masks, depth maps) read in and
come back out without loss."""

import json
import shutil

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from support import orbit_c2w, write_colmap_model, write_images, write_transforms

from nfields.datasets import DatasetError, load_dataset, read_capture
from nfields.datasets.distortion import fisheye_distort_directions
from nfields.datasets.ingest.convert import convert
from nfields.datasets.pointcloud import read_ply_points

W, H = 32, 24


# ----- nerfstudio's dataparser, reduced to what it does to poses and to the ply's points -----
# nerfstudio/data/dataparsers/nerfstudio_dataparser.py, Nerfstudio._generate_dataparser_outputs and _load_3D_points,
# with the dataparser's defaults (orientation_method "up", center_method "poses", auto_scale_poses, scale_factor 1);
# nerfstudio/cameras/camera_utils.py, auto_orient_and_center_poses and rotation_matrix_between.

def _rotation_matrix_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """camera_utils.rotation_matrix_between: Rodrigues' rotation taking direction a to direction b."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v = np.cross(a, b)
    if np.abs(v).sum() < 1e-6:
        v = np.cross(a, [1.0, 0, 0] if abs(a[0]) < 1e-6 else [0, 1.0, 0])
    v = v / np.linalg.norm(v)
    skew = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    theta = np.arccos(np.clip(a @ b, -1, 1))
    return np.eye(3) + np.sin(theta) * skew + (1 - np.cos(theta)) * skew @ skew


def nerfstudio_load(meta: dict, ply_points: np.ndarray, points_take_applied_transform: bool = False):
    """(camera-to-world (N, 3, 4), points (P, 3)) as nerfstudio's dataparser outputs them.

    Poses: auto_orient_and_center_poses ("up": rotate the mean camera up to +z; "poses": about the mean camera
    position), then translations times 1 / max |t| (auto_scale_poses). applied_transform and applied_scale never
    touch the poses. Points: the same orientation transform, times the same scale, times applied_scale; since
    nerfstudio PR #2791 (Jan 2024) applied_transform only enters dataparser_transform, before it the points were
    also moved by applied_transform (points_take_applied_transform).
    """
    poses = np.array([f["transform_matrix"] for f in meta["frames"]], dtype=np.float64)
    translation = poses[:, :3, 3].mean(axis=0)
    up = poses[:, :3, 1].mean(axis=0)
    rotation = _rotation_matrix_between(up / np.linalg.norm(up), np.array([0.0, 0, 1]))
    transform = np.concatenate([rotation, rotation @ -translation[:, None]], axis=1)  # (3, 4)
    poses = transform @ poses
    scale_factor = 1.0 / np.abs(poses[:, :3, 3]).max()
    poses[:, :3, 3] *= scale_factor
    point_transform = np.vstack([transform, [0, 0, 0, 1]])
    if "applied_transform" in meta and points_take_applied_transform:
        point_transform = point_transform @ np.vstack([np.array(meta["applied_transform"]), [0, 0, 0, 1]])
    if "applied_scale" in meta:
        scale_factor *= float(meta["applied_scale"])
    points = (np.c_[ply_points, np.ones(len(ply_points))] @ point_transform.T)[:, :3] * scale_factor
    return poses, points


def _project(c2w_gl: np.ndarray, fx, fy, cx, cy, points: np.ndarray) -> np.ndarray:
    """Pixel coordinates (P, 2) of points seen by a pinhole OpenGL camera-to-world (3, 4) or (4, 4)."""
    rot, t = c2w_gl[:3, :3], c2w_gl[:3, 3]
    cam = (points - t) @ rot  # OpenGL camera axes: x right, y up, looking down -z
    return np.stack([fx * cam[:, 0] / -cam[:, 2] + cx, fy * -cam[:, 1] / -cam[:, 2] + cy], axis=-1)


def _radius_ratio(c2w: np.ndarray, points: np.ndarray) -> float:
    """Median distance of the points from the mean camera position over the cameras' mean distance from it."""
    centre = c2w[:, :3, 3].mean(axis=0)
    return float(np.median(np.linalg.norm(points - centre, axis=1)) /
                 np.linalg.norm(c2w[:, :3, 3] - centre, axis=1).mean())


@pytest.fixture(scope="module")
def colmap_capture(tmp_path_factory):
    """A COLMAP model (pinhole, 8 views on an orbit of radius 4, 200 points near the origin) and its conversion."""
    root = tmp_path_factory.mktemp("colmap")
    c2w = orbit_c2w(8)
    c2w[:, :3, 3] += [3.0, -2.0, 5.0]  # off the origin, so centring matters
    names = [f"v{i}.png" for i in range(8)]
    points = np.random.default_rng(0).normal(scale=0.6, size=(200, 3)) + [3.0, -2.0, 5.0]
    colors = np.random.default_rng(1).integers(0, 255, (200, 3)).astype(np.uint8)
    write_colmap_model(root / "cap" / "sparse" / "0", c2w, names, {1: ("PINHOLE", W, H, [30.0, 31.0, 16.5, 11.5])},
                       [1] * 8, points, colors, binary=True)
    write_images(root / "cap" / "images", names, W, H)
    convert(root / "cap", root / "out", progress=False)
    return c2w, points, root / "out"


def test_nerfstudio_loads_points_where_the_cameras_see_them(colmap_capture):
    c2w, points, out = colmap_capture
    meta = json.loads((out / "transforms.json").read_text())
    ply, _ = read_ply_points(out / meta["ply_file_path"])
    seen = [_project(p, 30.0, 31.0, 16.5, 11.5, points) for p in c2w]  # where the capture's own cameras see them
    for old_release in (False, True):
        ns_poses, ns_points = nerfstudio_load(meta, ply, points_take_applied_transform=old_release)
        for i, pose in enumerate(ns_poses):
            f = meta["frames"][i]
            np.testing.assert_allclose(_project(pose, f["fl_x"], f["fl_y"], f["cx"], f["cy"], ns_points), seen[i],
                                       atol=1e-3)  # the ply holds float32
        assert _radius_ratio(ns_poses, ns_points) == pytest.approx(_radius_ratio(c2w, points), rel=1e-5)
    # These cameras circle an object, so the scene is centred where their axes meet, not on the cameras as
    # nerfstudio centres it: nerfstudio's world is shifted from ours (camera paths need its dataparser transform).


def test_an_unbounded_scene_is_already_where_nerfstudio_puts_it(colmap_capture, tmp_path):
    """Centred on the cameras, upright and scaled as nerfstudio orients and scales it: its world is the fields
    scene, so camera paths move between the two unchanged."""
    _, _, out = colmap_capture
    convert(out, tmp_path / "unbounded", scene_type="unbounded", progress=False)
    meta = json.loads((tmp_path / "unbounded" / "transforms.json").read_text())
    ns_poses, _ = nerfstudio_load(meta, read_ply_points(tmp_path / "unbounded" / meta["ply_file_path"])[0])
    np.testing.assert_allclose(ns_poses, np.array([f["transform_matrix"] for f in meta["frames"]])[:, :3], atol=1e-9)


def test_the_applied_keys_fields_used_to_write_misplace_nerfstudio_points(colmap_capture):
    """The check above fails on the file fields wrote before: applied_scale shrank the points nerfstudio loads."""
    c2w, points, out = colmap_capture
    meta = json.loads((out / "transforms.json").read_text())
    assert "applied_scale" not in meta and "applied_transform" not in meta
    norm = read_capture(out).normalization
    meta.update(applied_transform=(norm.matrix()[:3] / norm.scale).tolist(), applied_scale=norm.scale)
    ns_poses, ns_points = nerfstudio_load(meta, read_ply_points(out / "sparse_pc.ply")[0])
    assert _radius_ratio(ns_poses, ns_points) == pytest.approx(_radius_ratio(c2w, points) * norm.scale, rel=1e-5)


def _as_nerfstudio(folder, out):
    """A copy of a converted folder with its `fields` block dropped: what a nerfstudio user hands back."""
    shutil.copytree(folder, out)
    meta = json.loads((out / "transforms.json").read_text())
    del meta["fields"]
    (out / "transforms.json").write_text(json.dumps(meta))
    return out


def test_round_trip_fields_nerfstudio_fields_keeps_cameras(tmp_path):
    """fields -> nerfstudio layout -> fields: poses (in the first conversion's scene) and intrinsics to 1e-6, lens
    model, masks and depth maps kept."""
    c2w = orbit_c2w(6)
    names = [f"f{i}.png" for i in range(6)]
    write_images(tmp_path / "ns" / "images", names, W, H)
    (tmp_path / "ns" / "masks").mkdir()
    (tmp_path / "ns" / "depth").mkdir()
    rng = np.random.default_rng(3)
    frames = []
    for i, (name, pose) in enumerate(zip(names, c2w)):
        iio.imwrite(tmp_path / "ns" / "masks" / name, (rng.random((H, W)) > 0.3).astype(np.uint8) * 255)
        iio.imwrite(tmp_path / "ns" / "depth" / name, rng.integers(0, 9000, (H, W)).astype(np.uint16))
        frames.append({"file_path": f"images/{name}", "transform_matrix": pose.tolist(), "fl_x": 20.0 + i,
                       "fl_y": 21.0 + i, "cx": 16.0 - 0.1 * i, "cy": 12.0, "k1": 0.01 * i, "k2": -0.002,
                       "k3": 0.0003, "k4": -1e-5, "mask_path": f"masks/{name}", "depth_file_path": f"depth/{name}"})
    write_transforms(tmp_path / "ns" / "transforms.json", {"camera_model": "OPENCV_FISHEYE", "w": W, "h": H,
                                                          "frames": frames})
    first = convert(tmp_path / "ns", tmp_path / "one", progress=False).capture
    again = convert(_as_nerfstudio(tmp_path / "one", tmp_path / "one_ns"), tmp_path / "two", fmt="nerfstudio",
                    progress=False).capture
    back = again.normalization.invert_poses(again.camera_to_world)
    np.testing.assert_allclose(back, first.camera_to_world, atol=1e-6)
    np.testing.assert_allclose(again.intrinsics, first.intrinsics, atol=1e-6)
    np.testing.assert_allclose(again.distortion, first.distortion, atol=1e-6)
    np.testing.assert_allclose(first.normalization.invert_poses(first.camera_to_world), c2w, atol=1e-6)
    assert first.fisheye and again.fisheye
    meta = json.loads((tmp_path / "two" / "transforms.json").read_text())
    assert meta["camera_model"] == "OPENCV_FISHEYE" and meta["frames"][0]["mask_path"] == "masks/f0.png"
    a, b = load_dataset(tmp_path / "one", "train"), load_dataset(tmp_path / "two", "train")
    assert torch.equal(a.masks, b.masks) and a.cameras.fisheye and b.cameras.fisheye
    # Depth follows the scene's scale: in the second scene's units, the first's times its normalisation scale.
    torch.testing.assert_close(b.depths, a.depths * again.normalization.scale, rtol=1e-5, atol=1e-6)


def test_nerfstudio_lens_models(tmp_path):
    c2w = orbit_c2w(3)
    write_images(tmp_path / "ns" / "images", ["a.png", "b.png", "c.png"], W, H)
    frames = [{"file_path": f"images/{n}.png", "transform_matrix": p.tolist()} for n, p in zip("abc", c2w)]
    for model, keys, fisheye in [("SIMPLE_RADIAL", {"k1": 0.05}, False), ("RADIAL", {"k1": 0.05, "k2": -0.01}, False),
                                 ("OPENCV_FISHEYE", {"k1": 0.05, "k4": 0.001}, True)]:
        write_transforms(tmp_path / "ns" / "transforms.json", {"camera_model": model, "fl_x": 20.0, "fl_y": 20.0,
                                                              "cx": 16.0, "cy": 12.0, **keys, "frames": frames})
        capture = read_capture(tmp_path / "ns")
        assert capture.fisheye == fisheye, model
        params = dict(zip(("k1", "k2", "k3", "k4", "p1", "p2"), capture.distortion[0]))
        assert all(params[k] == v for k, v in keys.items()), model
    write_transforms(tmp_path / "ns" / "transforms.json", {"camera_model": "OPENCV_FISHEYE", "fl_x": 20.0,
                                                          "p1": 0.01, "frames": frames})
    with pytest.raises(DatasetError, match=r"frames\[0\]: the fisheye model .* has k1..k4 only, but p1, p2"):
        read_capture(tmp_path / "ns")
    write_transforms(tmp_path / "ns" / "transforms.json", {"camera_model": "EQUIRECTANGULAR", "fl_x": 20.0,
                                                          "frames": frames})
    with pytest.raises(DatasetError, match="'EQUIRECTANGULAR' is not supported .*OPENCV_FISHEYE"):
        read_capture(tmp_path / "ns")


def test_fisheye_rays_reach_the_points_the_lens_images(tmp_path):
    """A scene point imaged through the OPENCV_FISHEYE model, even 100 degrees off the axis, lies on the ray the
    loader gives for that pixel."""
    c2w = orbit_c2w(2)
    write_images(tmp_path / "ns" / "images", ["a.png", "b.png"], W, H)
    k = [0.08, -0.02, 0.004, -0.0003]
    write_transforms(tmp_path / "ns" / "transforms.json", {
        "camera_model": "OPENCV_FISHEYE", "fl_x": 6.0, "fl_y": 6.5, "cx": 16.0, "cy": 12.0,
        **dict(zip(("k1", "k2", "k3", "k4"), k)),
        "frames": [{"file_path": f"images/{n}.png", "transform_matrix": p.tolist()} for n, p in zip("ab", c2w)]})
    capture = read_capture(tmp_path / "ns")
    scene = load_dataset(tmp_path / "ns", "val")  # image 0
    pose = torch.from_numpy(capture.camera_to_world[0])
    angles = torch.deg2rad(torch.tensor([5.0, 40.0, 80.0, 100.0], dtype=torch.float64))
    azimuth = torch.deg2rad(torch.tensor([30.0, 160.0, 250.0, 300.0], dtype=torch.float64))
    d_cv = torch.stack([angles.sin() * azimuth.cos(), angles.sin() * azimuth.sin(), angles.cos()], dim=-1)
    world = pose[:3, 3] + 2.0 * (d_cv * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)) @ pose[:3, :3].T
    xd, yd = fisheye_distort_directions(d_cv, torch.tensor([k + [0.0, 0.0]], dtype=torch.float64).expand(4, 6))
    fx, fy, cx, cy = capture.intrinsics[0]
    rays = scene.cameras.rays(torch.zeros(4, dtype=torch.long), (xd * fx + cx).float(), (yd * fy + cy).float())
    to_point = (world.float() - rays.origins) / (world.float() - rays.origins).norm(dim=-1, keepdim=True)
    torch.testing.assert_close(rays.directions, to_point, atol=1e-5, rtol=0)


def _masked_capture(folder, mask_value=None, depth=None, **extra):
    c2w = orbit_c2w(3)
    names = ["a.png", "b.png", "c.png"]
    write_images(folder / "images", names, W, H)
    (folder / "masks").mkdir(exist_ok=True)
    frames = []
    for i, (name, pose) in enumerate(zip(names, c2w)):
        mask = np.zeros((H, W), np.uint8)
        mask[:, : W // 2 + i] = 255 if mask_value is None else mask_value
        iio.imwrite(folder / "masks" / name, mask)
        frames.append({"file_path": f"images/{name}", "transform_matrix": pose.tolist(), "mask_path": f"masks/{name}"})
        if depth is not None:
            (folder / "depth").mkdir(exist_ok=True)
            np.save(folder / "depth" / f"{i}.npy", np.full((H, W), depth, np.float32))
            frames[-1]["depth_file_path"] = f"depth/{i}.npy"
    write_transforms(folder / "transforms.json", {"camera_model": "PINHOLE", "fl_x": 20.0, "frames": frames,
                                                 **extra})
    return c2w


def test_masks_and_depth_reach_the_scene_data(tmp_path):
    _masked_capture(tmp_path / "ns", depth=2500.0)  # 2.5 units away, in millimetres
    capture = read_capture(tmp_path / "ns")
    train = load_dataset(tmp_path / "ns", "train")  # images 1 and 2
    assert train.masks.shape == (2, H, W) and train.masks.dtype == torch.bool
    assert train.masks[0, :, : W // 2 + 1].all() and not train.masks[0, :, W // 2 + 1:].any()
    torch.testing.assert_close(train.depths, torch.full((2, H, W), 2.5 * capture.normalization.scale))
    half = load_dataset(tmp_path / "ns", "train", downscale=2)  # a pixel is kept when all 4 it averages are
    assert half.masks.shape == (2, H // 2, W // 2) and half.depths.shape == (2, H // 2, W // 2)
    assert half.masks[1, :, : (W // 2 + 2) // 2].all() and not half.masks[1, :, (W // 2 + 2) // 2:].any()
    # An explicit unit (metres) for the depth files.
    meta = json.loads((tmp_path / "ns" / "transforms.json").read_text())
    write_transforms(tmp_path / "ns" / "transforms.json", {**meta, "depth_unit_scale_factor": 1.0})
    assert load_dataset(tmp_path / "ns", "val").depths.max().item() == pytest.approx(
        2500.0 * capture.normalization.scale)


def test_converted_masks_and_depth_load_in_nerfstudio_units(tmp_path):
    """`fields convert` writes single-channel masks (and downscaled copies, where nerfstudio looks for them) and
    depth in thousandths of scene units, which nerfstudio's default depth_unit_scale_factor reads."""
    _masked_capture(tmp_path / "ns", mask_value=1, depth=2500.0)
    result = convert(tmp_path / "ns", tmp_path / "out", downscales=(2,), progress=False)
    meta = json.loads((tmp_path / "out" / "transforms.json").read_text())
    assert meta["depth_unit_scale_factor"] == 1e-3
    frame = meta["frames"][0]
    mask = iio.imread(tmp_path / "out" / frame["mask_path"])
    assert mask.ndim == 2 and set(np.unique(mask)) == {0, 255}
    assert (tmp_path / "out" / "masks_2" / "a.png").is_file() and (tmp_path / "out" / "depths_2" / "a.npy").is_file()
    depth = np.load(tmp_path / "out" / frame["depth_file_path"]) * 1e-3  # nerfstudio: value * depth_unit_scale_factor
    np.testing.assert_allclose(depth, 2.5 * result.capture.normalization.scale, rtol=1e-6)
    direct, converted = load_dataset(tmp_path / "ns", "val"), load_dataset(tmp_path / "out", "val")
    assert torch.equal(direct.masks, converted.masks)
    torch.testing.assert_close(direct.depths, converted.depths)


def test_masks_and_depth_errors_name_the_frame(tmp_path):
    _masked_capture(tmp_path / "ns")
    meta = json.loads((tmp_path / "ns" / "transforms.json").read_text())
    del meta["frames"][1]["mask_path"]
    write_transforms(tmp_path / "ns" / "transforms.json", meta)
    with pytest.raises(DatasetError, match=r"frames\[1\] has no 'mask_path' but frames\[0\] has one"):
        read_capture(tmp_path / "ns")
    _masked_capture(tmp_path / "ns2")
    iio.imwrite(tmp_path / "ns2" / "masks" / "b.png", (np.zeros((H, W, 3)) + [0, 9, 0]).astype(np.uint8))
    with pytest.raises(DatasetError, match=r"b.png: mask must be a single-channel image .*frames\[1\]"):
        load_dataset(tmp_path / "ns2", "train")
    iio.imwrite(tmp_path / "ns2" / "masks" / "b.png", np.zeros((H, W * 2), np.uint8))
    with pytest.raises(DatasetError, match=r"b.png: mask is 64x24 but its image is 32x24"):
        load_dataset(tmp_path / "ns2", "train")


def test_images_of_another_size_than_stated_name_the_frame(tmp_path):
    c2w = orbit_c2w(3)
    write_images(tmp_path / "ns", ["a.png", "b.png"], W, H)
    write_images(tmp_path / "ns", ["c.png"], W * 2, H)
    frames = [{"file_path": n, "transform_matrix": p.tolist()} for n, p in zip(["a.png", "b.png", "c.png"], c2w)]
    write_transforms(tmp_path / "ns" / "transforms.json", {"fl_x": 20.0, "frames": frames})
    with pytest.raises(DatasetError, match=r"c.png: image is 64x24 but .* is 32x24 \(transforms.json frames\[2\]"):
        load_dataset(tmp_path / "ns", "train")
    for f, size in zip(frames, [(W, H), (W * 2, H), (W, H)]):  # stated sizes that are not the images' own
        f["w"], f["h"] = size
    write_transforms(tmp_path / "ns" / "transforms.json", {"fl_x": 20.0, "frames": frames})
    with pytest.raises(DatasetError, match=r"b.png: image is 32x24 but transforms.json frames\[1\] .* states 64x24"):
        load_dataset(tmp_path / "ns", "train")
