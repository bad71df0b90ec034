"""instant-ngp transforms.json read as instant-ngp reads it (src/nerf_loader.cu load_nerf and read_lens,
include/neural-graphics-primitives/nerf_loader.h): aabb_scale, scale, offset, aabb, is_fisheye, depth_path."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
from support import orbit_c2w, write_images, write_transforms

from nfields.datasets import DatasetError, detect_format, load_dataset, read_capture
from nfields.datasets.capture import normalise_captured
from nfields.datasets.transforms import read_transforms_capture

W, H = 16, 12


def _ngp(folder, **meta):
    c2w = orbit_c2w(4, radius=3.0)
    c2w[:, :3, 3] += [0.4, -0.2, 0.7]
    names = [f"r_{i}.png" for i in range(4)]
    write_images(folder, names, W, H)
    frames = [{"file_path": f"./{n[:-4]}", "transform_matrix": p.tolist()} for n, p in zip(names, c2w)]
    write_transforms(folder / "transforms.json", {"camera_angle_x": 0.9, "frames": frames, **meta})
    return folder


@pytest.mark.parametrize("aabb_scale", [16, 32])
def test_large_aabb_scale_takes_the_unbounded_path(tmp_path, aabb_scale):
    """colmap2nerf's aabb_scale 16 / 32: content beyond instant-ngp's unit cube, normalised like a COLMAP capture
    (cameras in [-1, 1]^3, cascades and contraction beyond), not squeezed into one bounded grid."""
    folder = _ngp(tmp_path / "ngp", aabb_scale=aabb_scale, scale=0.5, offset=[0.5, 0.5, 0.5])
    assert detect_format(folder) == "instant-ngp"
    capture = read_capture(folder)
    raw, _ = read_transforms_capture(folder / "transforms.json")
    expected = normalise_captured(raw)
    assert not capture.bounded and capture.source == "instant-ngp" and capture.near == expected.near
    np.testing.assert_allclose(capture.camera_to_world, expected.camera_to_world, atol=1e-12)
    np.testing.assert_allclose(capture.aabb, [-1, -1, -1, 1, 1, 1])
    assert np.abs(capture.camera_to_world[:, :3, 3]).max() == pytest.approx(1.0)
    assert load_dataset(folder, "train").bounded is False


def _scene_position(p, scale, offset, aabb_scale=1.0):
    """Where nerf_loader.h's nerf_position_to_ngp puts file point p (p * scale + offset; the axis cycle moves no
    box), in the scene's [-1, 1]^3 onto which the box (the unit cube inflated to aabb_scale about 0.5) is mapped."""
    return (p * scale + np.asarray(offset) - 0.5) / (0.5 * aabb_scale)


@pytest.mark.parametrize("meta, scale, offset", [
    ({}, 0.33, [0.5] * 3),  # instant-ngp's defaults: NERF_SCALE and offset 0.5
    ({"scale": 0.25, "offset": [0.5, 0.3, 0.0]}, 0.25, [0.5, 0.3, 0.0]),
    ({"scale": 0.25, "offset": 0.4}, 0.25, [0.4] * 3),  # a number: the same offset on every axis
    ({"aabb_scale": 1, "scale": 9.0, "offset": 7.0, "aabb": [[-1.0, -2.0, 0.0], [3.0, 2.0, 1.0]]},  # aabb wins
     0.25, [0.5 - 1.0 * 0.25, 0.5, 0.5 - 0.5 * 0.25]),
], ids=["defaults", "list", "number", "aabb"])
def test_scale_and_offset_place_the_bounded_box(tmp_path, meta, scale, offset):
    folder = _ngp(tmp_path / "ngp", **({"aabb_scale": 1} if "aabb_scale" not in meta else {}), **meta)
    capture = read_capture(folder)
    raw, _ = read_transforms_capture(folder / "transforms.json")
    assert capture.bounded and capture.near == 0.0
    points = np.random.default_rng(0).normal(size=(20, 3))
    norm = capture.normalization
    scene = (points - norm.center) @ norm.rotation.T * norm.scale
    np.testing.assert_allclose(scene, _scene_position(points, scale, offset), atol=1e-12)
    np.testing.assert_allclose(capture.camera_to_world[:, :3, 3],
                               _scene_position(raw.camera_to_world[:, :3, 3], scale, offset), atol=1e-12)


def test_fisheye_lens(tmp_path):
    """is_fisheye: OpenCV's equidistant fisheye with k1..k4 (read_lens: ELensMode::OpenCVFisheye), not OpenCV."""
    lens = {"fl_x": 9.0, "fl_y": 9.0, "cx": 8.0, "cy": 6.0, "k1": 0.05, "k2": -0.01, "k3": 0.002, "k4": -0.0004}
    folder = _ngp(tmp_path / "ngp", aabb_scale=16, is_fisheye=True, p1=0.0, p2=0.0, **lens)
    capture = read_capture(folder)
    assert capture.fisheye
    np.testing.assert_allclose(capture.distortion[0], [0.05, -0.01, 0.002, -0.0004, 0, 0])
    assert load_dataset(folder, "train").cameras.fisheye
    folder = _ngp(tmp_path / "opencv", aabb_scale=16, is_fisheye=False, **lens)
    assert not read_capture(folder).fisheye and not load_dataset(folder, "train").cameras.fisheye
    _ngp(tmp_path / "bad", aabb_scale=16, is_fisheye=True, p1=0.01, **lens)
    with pytest.raises(DatasetError, match="fisheye model .* k1..k4 only, but p1, p2 = \\[0.01, 0.0\\]"):
        read_capture(tmp_path / "bad")
    meta = json.loads((tmp_path / "opencv" / "transforms.json").read_text())
    meta["frames"][2]["is_fisheye"] = True
    write_transforms(tmp_path / "opencv" / "transforms.json", meta)
    with pytest.raises(DatasetError, match=r"frames\[2\]: field 'is_fisheye' differs from the file's"):
        read_capture(tmp_path / "opencv")
    _ngp(tmp_path / "ftheta", aabb_scale=16, ftheta_p0=1.0)
    with pytest.raises(DatasetError, match="field 'ftheta_p0': instant-ngp's ftheta lens is not supported"):
        read_capture(tmp_path / "ftheta")


def test_depth_path_with_integer_depth_scale(tmp_path):
    """depth_path is read only with a positive integer_depth_scale (depth = value * integer_depth_scale)."""
    folder = _ngp(tmp_path / "ngp", aabb_scale=1, integer_depth_scale=0.002)
    meta = json.loads((folder / "transforms.json").read_text())
    for i, frame in enumerate(meta["frames"]):
        iio.imwrite(folder / f"d_{i}.png", np.full((H, W), 1000, np.uint16))
        frame["depth_path"] = f"d_{i}.png"
    write_transforms(folder / "transforms.json", meta)
    capture = read_capture(folder)
    depths = load_dataset(folder, "train").depths
    np.testing.assert_allclose(depths.numpy(), 2.0 * capture.normalization.scale, rtol=1e-6)
    del meta["integer_depth_scale"]
    write_transforms(folder / "transforms.json", meta)
    assert load_dataset(folder, "train").depths is None
