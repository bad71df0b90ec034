"""Bad captures: one clear DatasetError naming the file and the record; fuzzed files never crash or hang."""

import json
import os
import shutil
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support import orbit_c2w, write_colmap_model, write_images, write_llff, write_transforms

from nfields.cli import main
from nfields.datasets import DatasetError, load_dataset, read_capture
from nfields.datasets.ingest.convert import convert

PINHOLE = {1: ("PINHOLE", 16, 12, [20.0, 20.0, 8.0, 6.0])}


def _colmap(folder: Path, binary=True, n=4, cameras=None, image_cameras=None, sizes=(16, 12)):
    names = [f"im{i}.png" for i in range(n)]
    write_colmap_model(folder / "sparse" / "0", orbit_c2w(n), names, cameras or PINHOLE, image_cameras or [1] * n,
                       np.zeros((3, 3)), np.zeros((3, 3), np.uint8), binary)
    write_images(folder / "images", names, *sizes)
    return folder


def test_missing_image_names_the_record(tmp_path):
    (_colmap(tmp_path / "c") / "images" / "im2.png").unlink()
    with pytest.raises(DatasetError, match=r"im2.png: image is missing \(named by images.bin image_id 3 \(im2.png\)\)"
                                           r"\n  Point --images"):
        read_capture(tmp_path / "c")


def test_unknown_camera_id(tmp_path):
    _colmap(tmp_path / "c", binary=False, image_cameras=[1, 1, 5, 1])
    with pytest.raises(DatasetError, match=r"images.txt: image_id 3 \(im2.png\) references camera_id 5, which "
                                           r"cameras.txt does not define"):
        read_capture(tmp_path / "c")


def test_too_few_registered_images(tmp_path):
    _colmap(tmp_path / "c", n=2)
    with pytest.raises(DatasetError, match=r"images.bin: only 2 images are registered \(at least 3 needed\)"):
        read_capture(tmp_path / "c")


def test_mismatched_image_sizes(tmp_path):
    cameras = {1: PINHOLE[1], 2: ("PINHOLE", 20, 12, [20.0, 20.0, 10.0, 6.0])}
    _colmap(tmp_path / "a", cameras=cameras, image_cameras=[1, 2, 1, 1])
    with pytest.raises(DatasetError, match=r"cameras.bin: cameras have different image sizes \[\(16, 12\), \(20, 12"):
        read_capture(tmp_path / "a")
    _colmap(tmp_path / "b", sizes=(32, 24))  # images resized after COLMAP ran
    with pytest.raises(DatasetError, match=r"im1.png: image is 32x24 but images.bin image_id 2 \(im1.png\) states"):
        load_dataset(tmp_path / "b", "train")
    c2w = orbit_c2w(2)
    write_images(tmp_path / "ns", ["a.png", "b.png"], 8, 8)
    write_transforms(tmp_path / "ns" / "transforms.json", {"fl_x": 9.0, "frames": [
        {"file_path": "a.png", "transform_matrix": c2w[0].tolist(), "w": 8, "h": 8},
        {"file_path": "b.png", "transform_matrix": c2w[1].tolist(), "w": 10, "h": 8}]})
    assert read_capture(tmp_path / "ns").size(1) == (10, 8)  # frames may differ in size, but not from their image
    with pytest.raises(DatasetError, match=r"b.png: image is 8x8 but transforms.json frames\[1\] \(b.png\) "
                                           r"states 10x8"):
        load_dataset(tmp_path / "ns", "train")


def test_malformed_json_via_cli(tmp_path, capsys):
    (tmp_path / "ns").mkdir()
    (tmp_path / "ns" / "transforms.json").write_text('{"frames": [\n {"file_path": "a.png",}\n]}')
    assert main(["convert", str(tmp_path / "ns"), "--out", str(tmp_path / "out"), "--from", "nerfstudio"]) == 2
    err = capsys.readouterr().err
    assert "transforms.json: malformed JSON at line 2" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


def test_failure_midway_leaves_no_output(tmp_path, monkeypatch):
    _colmap(tmp_path / "c")
    import nfields.datasets.canonical as canonical

    def broken_copy(src, dst):
        raise DatasetError(src, "disk full (simulated)")

    monkeypatch.setattr(canonical.shutil, "copyfile", broken_copy)
    with pytest.raises(DatasetError, match="simulated"):
        convert(tmp_path / "c", tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


# ---------- fuzzing: truncated and corrupted files ----------
@pytest.fixture(scope="module")
def valid_scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("valid")
    _colmap(root / "colmap_bin", binary=True)
    _colmap(root / "colmap_txt", binary=False, cameras={1: ("OPENCV", 16, 12, [20, 21, 8, 6, 0.1, 0.01, 0, 0])})
    c2w = np.tile(np.eye(4), (3, 1, 1))
    c2w[:, 0, 3] = [0.0, 0.1, 0.2]
    write_llff(root / "llff", c2w, np.array([[1.0, 5.0]] * 3), 16, 12, 15.0)
    write_images(root / "ns", ["a.png", "b.png", "c.png"], 8, 6)
    write_transforms(root / "ns" / "transforms.json", {"camera_model": "OPENCV", "fl_x": 9.0, "k1": 0.1, "frames": [
        {"file_path": n, "transform_matrix": p.tolist()} for n, p in zip(["a.png", "b.png", "c.png"], orbit_c2w(3))]})
    convert(root / "colmap_bin", root / "canonical", progress=False)
    return root


def _mutate(data: bytes, cut: int | None, edits: list[tuple[int, int]]) -> bytes:
    if cut is not None:
        return data[: cut % (len(data) + 1)]
    out = bytearray(data)
    for pos, value in edits:
        out[pos % len(out)] = value
    return bytes(out)


CASES = [("colmap_bin", "sparse/0/cameras.bin"), ("colmap_bin", "sparse/0/images.bin"),
         ("colmap_bin", "sparse/0/points3D.bin"), ("colmap_txt", "sparse/0/cameras.txt"),
         ("colmap_txt", "sparse/0/images.txt"), ("colmap_txt", "sparse/0/points3D.txt"),
         ("llff", "poses_bounds.npy"), ("ns", "transforms.json"), ("canonical", "transforms.json"),
         ("canonical", "sparse_pc.ply"), ("colmap_bin", "images/im1.png")]


@pytest.mark.parametrize("scene,name", CASES, ids=[f"{s}:{n.split('/')[-1]}" for s, n in CASES])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.one_of(st.none(), st.integers(0, 1 << 16)),
       edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=6))
def test_fuzzed_files_raise_only_dataset_errors(valid_scenes, scene, name, cut, edits):
    work = Path(tempfile.mkdtemp())
    try:
        shutil.copytree(valid_scenes / scene, work / scene)
        target = work / scene / name
        target.write_bytes(_mutate(target.read_bytes(), cut, edits))
        try:
            load_dataset(work / scene, "train")
        except DatasetError as err:
            assert str(err).strip()
    finally:
        shutil.rmtree(work)


def test_fuzz_harness_loads_the_unmodified_scenes(valid_scenes):
    for scene in ("colmap_bin", "colmap_txt", "llff", "ns", "canonical"):
        assert len(load_dataset(valid_scenes / scene, "train").images) >= 2
    assert json.loads((valid_scenes / "canonical" / "transforms.json").read_text())["fields"]["source"] == "colmap"
    assert iio.imread(valid_scenes / "colmap_bin" / "images" / "im1.png").shape == (12, 16, 3)


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=3), inner,
                                                                                        max_size=3), max_leaves=20)
TOP_KEYS = ["frames", "fl_x", "fl_y", "cx", "w", "h", "k1", "camera_model", "camera_angle_x", "train_filenames",
            "fields", "aabb_scale", "offset", "ply_file_path"]
FRAME_KEYS = ["file_path", "transform_matrix", "fl_x", "w", "p2", "near_far"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scene=st.sampled_from(["ns", "canonical"]), where=st.sampled_from(["top", "frame"]),
       key=st.sampled_from(TOP_KEYS + FRAME_KEYS), value=JSON_VALUES)
@example(scene="ns", where="top", key="cx", value=None)  # found by fuzzing: null intrinsics
def test_wrongly_typed_json_fields_raise_dataset_errors(valid_scenes, scene, where, key, value):
    meta = json.loads((valid_scenes / scene / "transforms.json").read_text())
    (meta if where == "top" else meta["frames"][1])[key] = value
    work = Path(tempfile.mkdtemp())
    try:
        shutil.copytree(valid_scenes / scene, work / scene)
        (work / scene / "transforms.json").write_text(json.dumps(meta))
        try:
            load_dataset(work / scene, "train")
        except DatasetError as err:
            assert str(err).strip()
    finally:
        shutil.rmtree(work)


# ---------- fuzzing: path fields with `..`, absolute and symlink components ----------
PATH_PARTS = st.sampled_from(["..", ".", "", "a.png", "images", "secret.png", "link", "loop", "a.png\0"])
PATH_KEYS = [("frame", "file_path"), ("frame", "mask_path"), ("frame", "depth_file_path"), ("top", "ply_file_path")]


def _inside(path: str, root: Path) -> bool:
    real = Path(os.path.realpath(path))
    return real == root or root in real.parents


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scene=st.sampled_from(["ns", "canonical"]), key=st.sampled_from(PATH_KEYS),
       start=st.sampled_from(["", "scene", "outside"]), parts=st.lists(PATH_PARTS, min_size=1, max_size=5))
@example(scene="ns", key=("frame", "file_path"), start="", parts=["link", "secret.png"])
@example(scene="canonical", key=("top", "ply_file_path"), start="scene", parts=["..", "outside", "secret.png"])
def test_fuzzed_path_fields_never_lead_outside_the_capture(valid_scenes, scene, key, start, parts):
    work = Path(tempfile.mkdtemp())
    try:
        shutil.copytree(valid_scenes / scene, work / scene)
        write_images(work / "outside", ["secret.png", "a.png"], 8, 6)
        (work / scene / "link").symlink_to(work / "outside")  # a symlink component leading out
        (work / scene / "loop").symlink_to("loop")
        root = (work / scene).resolve()
        value = "/".join(parts)
        if start:
            value = str(work / (scene if start == "scene" else "outside")) + "/" + value
        meta = json.loads((work / scene / "transforms.json").read_text())
        (meta if key[0] == "top" else meta["frames"][1])[key[1]] = value
        (work / scene / "transforms.json").write_text(json.dumps(meta))
        before = sorted(p.name for p in (work / "outside").iterdir())
        name = value if Path(value).suffix or key[1] != "file_path" else value + ".png"  # as the readers name it
        leaves = "\0" not in value and not _inside(str(work / scene / name), root)
        try:
            capture = read_capture(work / scene)
        except DatasetError as err:
            assert not leaves or (key[1] in str(err) and "lies outside the capture folder" in str(err)), err
        else:
            assert not leaves, f"{key[1]} = {value!r} was accepted"
            assert all(_inside(str(p), root) for p in capture.image_paths)
        assert sorted(p.name for p in (work / "outside").iterdir()) == before
    finally:
        shutil.rmtree(work)
