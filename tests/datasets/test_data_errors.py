"""Errors about images, poses and scene names say what is wrong in one line."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from nfields.datasets import DatasetError, read_capture, resolve_scene_dir
from nfields.datasets.capture import matrix_problem
from nfields.datasets.images import image_size, read_image, read_images


def _rgba(path, value=0):
    iio.imwrite(path, np.full((8, 8, 4), value, np.uint8))
    return path


def test_empty_image_file_says_empty(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    for read in (read_image, image_size):
        with pytest.raises(DatasetError) as err:
            read(tmp_path / "a.png", "frames[3]")
        assert str(err.value) == f"{tmp_path / 'a.png'}: image file is empty (0 bytes; named by frames[3])"


def test_unreadable_image_gives_one_line(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not an image at all")
    with pytest.raises(DatasetError, match="image cannot be read") as err:
        read_image(tmp_path / "a.png", "frames[0]")
    assert "\n" not in str(err.value) and "pip install" not in str(err.value)


def test_grey_image_among_rgba_images_says_one_channel(tmp_path):
    first = _rgba(tmp_path / "a.png")
    iio.imwrite(tmp_path / "b.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DatasetError) as err:
        read_images([first, tmp_path / "b.png"], ["frames[0]", "frames[1]"])
    assert "image has 1 channel (grey) but frames[0] (a.png) has 4 channels (RGBA) (frames[1])" in str(err.value)
    assert read_images([tmp_path / "b.png"], ["frames[0]"]).shape == (1, 8, 8, 3)  # grey alone reads as RGB


def test_grey_and_alpha_image_is_named(tmp_path):
    iio.imwrite(tmp_path / "a.png", np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(DatasetError, match="got 2 channels \\(grey and alpha\\)"):
        read_image(tmp_path / "a.png", "frames[0]")


def test_matrix_problem_names_shape_or_entry():
    assert matrix_problem(np.eye(4), (4, 4)) == ""
    assert matrix_problem(np.eye(3), (4, 4)) == "has shape (3, 3), expected 4x4"
    m = np.eye(4)
    m[1, 3] = np.nan
    assert matrix_problem(m, (4, 4)) == "entry [1][3] is nan, not a finite number"


def _transforms_scene(tmp_path, pose):
    _rgba(tmp_path / "a.png")
    _rgba(tmp_path / "b.png")
    frames = [{"file_path": "a.png", "transform_matrix": np.eye(4).tolist()},
              {"file_path": "b.png", "transform_matrix": pose}]
    (tmp_path / "transforms.json").write_text(json.dumps({"fl_x": 8, "fl_y": 8, "cx": 4, "cy": 4, "w": 8, "h": 8,
                                                          "frames": frames}))
    return tmp_path / "transforms.json"


def test_sheared_pose_is_named(tmp_path):
    pose = np.eye(4)
    pose[0, 0] = 2.0
    with pytest.raises(DatasetError, match="camera pose rotation part is not orthonormal"):
        read_capture(_transforms_scene(tmp_path, pose.tolist()), "nerfstudio")


def test_missing_scene_given_as_a_path_is_named_once(tmp_path):
    missing = tmp_path / "no" / "scene"
    with pytest.raises(DatasetError) as err:
        resolve_scene_dir(str(missing))
    assert str(err.value) == f"{missing}: scene folder does not exist"


def test_missing_scene_name_lists_each_place_once(tmp_path):
    with pytest.raises(DatasetError) as err:
        resolve_scene_dir("nowhere", tmp_path)
    first_line = str(err.value).splitlines()[0]
    assert first_line.endswith(f"Looked in: {tmp_path / 'nerf_synthetic' / 'nowhere'}, {tmp_path / 'nowhere'}")
    assert "nerf_synthetic/nowhere/transforms_train.json" in str(err.value)
