"""Images and videos: frame extraction, blur rejection, the COLMAP step (a stand-in program) and its absence."""

import os
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from support import install_fake_colmap

from nfields.cli import main
from nfields.datasets import DatasetError, detect_format, load_dataset
from nfields.datasets.ingest.video_frames import extract_frames, sharpness

FAKE_COLMAP = """#!{python}
import pathlib, sys
import imageio.v3 as iio
args = sys.argv[1:]
opts = dict(zip(args[1::2], args[2::2]))
if args[0] == "feature_extractor" and "-h" in args:
    print("  --SiftExtraction.use_gpu arg (=1)")
elif args[0] == "feature_extractor":
    pathlib.Path(opts["--database_path"]).write_bytes(b"db")
elif args[0] == "mapper":
    images = [p for p in sorted(pathlib.Path(opts["--image_path"]).iterdir()) if "lost" not in p.name]
    calls = pathlib.Path(opts["--database_path"]).with_suffix(".mapper-calls")
    if not calls.exists() and any("flaky" in p.name for p in images):  # a first mapping that poses 3 images only
        images = images[:3]
    calls.write_text("called")
    h, w = iio.imread(images[0]).shape[:2]
    model = pathlib.Path(opts["--output_path"]) / "0"
    model.mkdir(parents=True)
    (model / "cameras.txt").write_text(f"1 PINHOLE {{w}} {{h}} 20 20 {{w / 2}} {{h / 2}}\\n")
    lines = [f"{{i + 1}} 1 0 0 0 {{-0.1 * i}} 0 0 1 {{p.name}}\\n\\n" for i, p in enumerate(images)]
    (model / "images.txt").write_text("".join(lines))
    (model / "points3D.txt").write_text("1 0 0 5 255 0 0 0.1 1 0\\n")
"""


def _texture(seed, blurred=False):
    img = np.random.default_rng(seed).random((48, 64, 3))
    if blurred:
        img = gaussian_filter(img, sigma=(3, 3, 0))
    return (img * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """40 frames at 10 fps: frames 3, 7, 11, ... are sharp, the rest blurred."""
    path = tmp_path_factory.mktemp("video") / "walk.mp4"
    frames = [_texture(i, blurred=i % 4 != 3) for i in range(40)]
    iio.imwrite(path, np.stack(frames), fps=10, codec="libx264", quality=10)
    return path


@pytest.fixture
def fake_colmap(tmp_path, monkeypatch):
    install_fake_colmap(FAKE_COLMAP.format(python=sys.executable), tmp_path / "bin", monkeypatch)


def test_sharpness_prefers_sharp_frames():
    assert sharpness(_texture(0)) > 10 * sharpness(_texture(0, blurred=True))


def test_extract_frames_keeps_the_sharpest_of_each_stretch(video, tmp_path):
    result = extract_frames(video, tmp_path / "frames", count=10, progress=False)
    assert result.video_frames == 40 and len(result.paths) == 10
    indices = sorted(int(p.stem.split("_")[1]) for p in result.paths)
    assert indices == list(range(3, 40, 4))  # the one sharp frame of each 4-frame stretch


def test_extract_frames_drops_blurry_stretches_and_follows_fps(video, tmp_path):
    shaky = tmp_path / "shaky.mp4"  # sharp but for a blurred stretch, frames 10 to 14
    iio.imwrite(shaky, np.stack([_texture(i, blurred=10 <= i < 15) for i in range(30)]), fps=10, codec="libx264",
                quality=10)
    result = extract_frames(shaky, tmp_path / "a", count=30, progress=False)
    assert result.dropped_blurry == 5
    assert sorted(int(p.stem.split("_")[1]) for p in result.paths) == list(range(10)) + list(range(15, 30))
    assert len(extract_frames(video, tmp_path / "b", fps=2, progress=False).paths) == 8  # 4 s x 2 fps


def test_video_converts_to_the_requested_frame_count(video, tmp_path, fake_colmap, capsys):
    out = tmp_path / "scene"
    assert main(["convert", str(video), "--out", str(out), "--frames", "8", "--downscales", "2"]) == 0
    assert len(list((out / "images").glob("*.png"))) == 8 and len(list((out / "images_2").glob("*.png"))) == 8
    assert (out / "colmap" / "sparse" / "0" / "images.txt").is_file() and not (out / ".work").exists()
    assert "colmap mapper --database_path" in (out / "colmap" / "colmap.log").read_text()
    assert detect_format(out) == "canonical"
    scene = load_dataset(out, "train", downscale=2)
    assert scene.images.shape == (7, 24, 32, 3) and not scene.bounded
    assert "8 images 64x48" in capsys.readouterr().out


def test_image_folder_goes_through_colmap(tmp_path, fake_colmap):
    (tmp_path / "photos").mkdir()
    for i in range(5):
        iio.imwrite(tmp_path / "photos" / f"p{i}.png", _texture(i))
    assert detect_format(tmp_path / "photos") == "images"
    assert main(["convert", str(tmp_path / "photos"), "--out", str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out" / "images").iterdir())) == 5
    assert "--ImageReader.camera_model SIMPLE_RADIAL" in (tmp_path / "out" / "colmap" / "colmap.log").read_text()


def test_images_colmap_cannot_pose_are_reported(tmp_path, fake_colmap):
    (tmp_path / "photos").mkdir()
    for i in range(6):
        iio.imwrite(tmp_path / "photos" / f"{'lost' if i in (2, 4) else 'p'}{i}.png", _texture(i))
    with pytest.warns(UserWarning, match="COLMAP could not pose 2 of 6 images"):
        assert main(["convert", str(tmp_path / "photos"), "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == ["p0.png", "p1.png", "p3.png", "p5.png"]


def test_mapping_runs_again_when_it_poses_under_half_the_images(tmp_path, fake_colmap):
    (tmp_path / "photos").mkdir()
    for i in range(8):
        iio.imwrite(tmp_path / "photos" / f"flaky{i}.png", _texture(i))
    assert main(["convert", str(tmp_path / "photos"), "--out", str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out" / "images").iterdir())) == 8
    assert (tmp_path / "out" / "colmap" / "colmap.log").read_text().count("$ colmap mapper") == 2


def test_missing_colmap_stops_cleanly(video, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr("nfields.datasets.ingest.colmap_run.pycolmap_available", lambda: False)
    assert main(["convert", str(video), "--out", str(tmp_path / "scene")]) == 2
    err = capsys.readouterr().err
    assert "`colmap` program is not installed" in err and "pip install pycolmap" in err
    assert "apt-get install colmap" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no output, no temporary folder


def test_undecodable_video_names_the_file(tmp_path, fake_colmap, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    with pytest.raises(DatasetError, match=r"broken.mp4: video cannot be decoded"):
        extract_frames(bad, tmp_path / "frames", count=3, progress=False)
    assert main(["convert", str(bad), "--out", str(tmp_path / "scene")]) == 2
    assert "broken.mp4: video cannot be decoded" in capsys.readouterr().err
    assert not (tmp_path / "scene").exists() and not list(tmp_path.glob(".scene.partial-*"))
