"""Hostile captures: files named outside the capture (`..`, absolute paths, symlinks) are refused before anything
is written, with one line naming the file and the field; a folder the user names with --images is allowed."""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from support import orbit_c2w, write_colmap_model, write_images, write_llff, write_transforms

from nfields.cli import main
from nfields.datasets import DatasetError, load_dataset, read_capture
from nfields.datasets.ingest.convert import convert
from nfields.datasets.pointcloud import write_ply_points

W, H = 16, 12
NAMES = ["a.png", "b.png", "c.png"]


def _snapshot(root: Path) -> dict:
    """Every entry under root: symlinks by target, files by checksum, folders by name."""
    listing = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                listing[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                listing[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                listing[rel] = "dir"
    return listing


@pytest.fixture
def outside(tmp_path):
    """A folder beside the capture holding what a hostile capture points at."""
    folder = tmp_path / "outside"
    write_images(folder, ["secret.png"], W, H, seed=7)
    write_ply_points(folder / "secret.ply", np.ones((2, 3)), np.zeros((2, 3), np.uint8))
    (folder / "secret.txt").write_text("not yours")
    return folder


def _frames(names):
    return [{"file_path": n, "transform_matrix": p.tolist()} for n, p in zip(names, orbit_c2w(len(names)))]


def _transforms_capture(folder: Path, ngp: bool = False) -> Path:
    write_images(folder, NAMES, W, H)
    meta = {"camera_model": "PINHOLE", "fl_x": 20.0, "w": W, "h": H, "frames": _frames(NAMES)}
    if ngp:
        meta["aabb_scale"] = 2
    write_transforms(folder / "transforms.json", meta)
    return folder


def _edit(json_path: Path, edit) -> None:
    meta = json.loads(json_path.read_text())
    edit(meta)
    json_path.write_text(json.dumps(meta))


def _link(path: Path, target: Path) -> None:
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


# Each case builds a hostile capture under tmp_path and returns (capture, file named in the message, field).
def _nerfstudio(tmp, out, key, how, ngp=False):
    cap = _transforms_capture(tmp / "ns", ngp)
    target = out / ("secret.ply" if key == "ply_file_path" else "secret.png")
    value = {"traversal": f"../outside/{target.name}", "absolute": str(target), "symlink": f"link_{target.name}"}[how]
    if how == "symlink":
        _link(cap / value, target)
    if key == "ply_file_path":
        _edit(cap / "transforms.json", lambda m: m.update(ply_file_path=value))
        return cap, "transforms.json", "ply_file_path"
    _edit(cap / "transforms.json", lambda m: m["frames"][1].update({key: value}))
    return cap, "transforms.json", f"frames[1].{key}"


def _blender(tmp, out, how):
    cap = tmp / "blender"
    write_images(cap / "train", NAMES, W, H)
    frames = _frames([f"./train/{n[:-4]}" for n in NAMES])
    frames[1]["file_path"] = {"traversal": "../outside/secret", "absolute": str(out / "secret.png"),
                              "symlink": "./train/b"}[how]
    if how == "symlink":
        _link(cap / "train" / "b.png", out / "secret.png")
    write_transforms(cap / "transforms_train.json", {"camera_angle_x": 0.7, "frames": frames})
    return cap, "transforms_train.json", "frames[1].file_path"


def _colmap(tmp, out, how, binary=True):
    cap = tmp / "colmap"
    names = ["im0.png", "im1.png", "im2.png", "im3.png"]
    write_images(cap / "images", names, W, H)
    if how == "symlink":
        _link(cap / "images" / "im1.png", out / "secret.png")
    else:
        names[1] = {"traversal": "../../outside/secret.png", "absolute": str(out / "secret.png")}[how]
    write_colmap_model(cap / "sparse" / "0", orbit_c2w(4), names, {1: ("PINHOLE", W, H, [20.0, 20.0, 8.0, 6.0])},
                       [1] * 4, np.zeros((3, 3)), np.zeros((3, 3), np.uint8), binary)
    return cap, "images.bin" if binary else "images.txt", "image_id 2 name"


def _llff(tmp, out, how):
    cap = tmp / "llff"
    c2w = np.tile(np.eye(4), (3, 1, 1))
    c2w[:, 0, 3] = [0.0, 0.1, 0.2]
    write_llff(cap, c2w, np.array([[1.0, 5.0]] * 3), W, H, 15.0)
    _link(cap / "images" / "img_001.png", out / "secret.png")  # LLFF names no paths: only symlinks lead out
    return cap, "llff/images", "image 'img_001.png'"


def _canonical(tmp, out, how):
    cap = tmp / "canonical"
    convert(_transforms_capture(tmp / "src"), cap, downscales=(2,), progress=False)
    if how == "symlink":
        _link(cap / "images_2" / "b.png", out / "secret.png")  # read in place of images/b.png at --downscale 2
        return cap, "transforms.json", "frames[1] downscaled by 2"
    value = {"traversal": "../outside/secret.png", "absolute": str(out / "secret.png")}[how]
    _edit(cap / "transforms.json", lambda m: m["frames"][1].update(file_path=value))
    return cap, "transforms.json", "frames[1].file_path"


HOW = ["traversal", "absolute", "symlink"]
CASES = ([(f"nerfstudio-{k}", lambda t, o, h, k=k: _nerfstudio(t, o, k, h), h)
          for k in ("file_path", "mask_path", "depth_file_path", "ply_file_path") for h in HOW]
         + [("instant-ngp", lambda t, o, h: _nerfstudio(t, o, "file_path", h, ngp=True), h) for h in HOW]
         + [("blender", _blender, h) for h in HOW]
         + [("colmap-bin", _colmap, h) for h in HOW]
         + [("colmap-txt", lambda t, o, h: _colmap(t, o, h, binary=False), h) for h in HOW]
         + [("llff", _llff, "symlink"), ("canonical", _canonical, "symlink")]
         + [("canonical", _canonical, h) for h in ("traversal", "absolute")])


@pytest.mark.parametrize("build,how", [c[1:] for c in CASES], ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_convert_refuses_files_outside_the_capture(tmp_path, outside, capsys, build, how):
    capture, named_in, field = build(tmp_path, outside, how)
    capsys.readouterr()
    before = _snapshot(tmp_path)
    assert main(["convert", str(capture), "--out", str(tmp_path / "out" / "scene")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert named_in in err and field in err and "outside the capture folder" in err and "--images DIR" in err, err
    assert _snapshot(tmp_path) == before  # nothing written: no output, no partial folder, the outside untouched


def test_training_reads_through_the_same_check(tmp_path, outside):
    capture, _, _ = _nerfstudio(tmp_path, outside, "file_path", "symlink")
    with pytest.raises(DatasetError, match=r"transforms.json: frames\[1\].file_path 'link_secret.png', which "
                                           r"resolves to .*secret.png, lies outside the capture folder"):
        load_dataset(capture, "train")


def test_images_folder_refuses_symlinks_before_colmap_runs(tmp_path, outside, monkeypatch):
    import nfields.datasets.ingest.convert as convert_module

    write_images(tmp_path / "photos", NAMES, W, H)
    _link(tmp_path / "photos" / "d.png", outside / "secret.png")
    monkeypatch.setattr(convert_module, "run_colmap", lambda *a, **k: pytest.fail("COLMAP ran on a hostile folder"))
    monkeypatch.setattr(convert_module, "colmap_backend", lambda: "colmap")
    before = _snapshot(tmp_path)
    with pytest.raises(DatasetError, match=r"photos: image 'd.png', which resolves to .*secret.png, lies outside"):
        convert(tmp_path / "photos", tmp_path / "out", fmt="images", progress=False)
    assert _snapshot(tmp_path) == before


def test_a_folder_named_with_images_is_allowed(tmp_path, outside, capsys):
    capture, _, _ = _nerfstudio(tmp_path, outside, "file_path", "absolute")
    assert main(["convert", str(capture), "--out", str(tmp_path / "out"), "--images", str(outside)]) == 0
    copied = tmp_path / "out" / "images" / "secret.png"
    assert copied.read_bytes() == (outside / "secret.png").read_bytes()


def test_symlinks_that_stay_inside_the_capture_are_read(tmp_path):
    capture = _transforms_capture(tmp_path / "ns")
    (capture / "raw").mkdir()
    (capture / "b.png").rename(capture / "raw" / "b.png")
    _link(capture / "b.png", Path("raw") / "b.png")
    assert read_capture(capture).image_paths[1] == capture / "b.png"
