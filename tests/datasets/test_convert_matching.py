"""COLMAP for image folders and videos: which pairs are matched (by count and source, or --matcher), SIFT sized
to the images, and a progress bar on screen for every stage, with the `colmap` program (a stand-in printing
COLMAP's own log lines) and with pycolmap (a small real run on lego's photos)."""

import json
import re
import shutil
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from support import install_fake_colmap, write_colmap_model, write_images

from nfields.cli import main
from nfields.datasets import DatasetError, resolve_scene_dir
from nfields.datasets.data_root import default_data_roots
from nfields.datasets.ingest import colmap_plan, colmap_pycolmap, colmap_run, pose_repair
from nfields.datasets.ingest.colmap_plan import (
    EXHAUSTIVE_MAX_IMAGES,
    MATCHERS,
    NEIGHBOUR_OVERLAP,
    choose_matcher,
    sift_settings,
)
from nfields.datasets.ingest.colmap_run import pycolmap_available
from nfields.datasets.ingest.convert import convert
from nfields.datasets.pose_checks import pose_breaks


@pytest.mark.parametrize("count, video, matcher", [
    (3, False, "exhaustive"), (EXHAUSTIVE_MAX_IMAGES, False, "exhaustive"), (EXHAUSTIVE_MAX_IMAGES, True, "exhaustive"),
    (EXHAUSTIVE_MAX_IMAGES + 1, False, "vocab-tree"), (146, False, "vocab-tree"), (5000, False, "vocab-tree"),
    (EXHAUSTIVE_MAX_IMAGES + 1, True, "sequential"), (300, True, "sequential"),
])
def test_matcher_is_chosen_by_count_and_source(count, video, matcher):
    choice = choose_matcher(count, video)
    assert choice.matcher == matcher and str(count) in choice.reason


@pytest.mark.parametrize("requested", [m for m in MATCHERS if m != "auto"])
def test_a_requested_matcher_overrides_the_choice(requested):
    assert choose_matcher(10, False, requested).matcher == requested
    assert choose_matcher(500, True, requested).matcher == requested


def test_an_unknown_matcher_is_refused():
    with pytest.raises(DatasetError, match="unknown matcher 'flann'"):
        choose_matcher(10, False, "flann")


def test_sift_is_sized_to_the_images():
    small, bonsai, phone = sift_settings(400, 400), sift_settings(800, 533), sift_settings(4032, 3024)
    assert small.max_image_size == 400 and bonsai.max_image_size == 800 and phone.max_image_size == 1600
    assert small.max_num_features < bonsai.max_num_features < phone.max_num_features == 8192
    assert sift_settings(720, 1280).max_image_size == 1280  # beer: found at full size
    assert sift_settings(64, 48).max_num_features == 1024  # never fewer


def test_a_vocabulary_has_enough_descriptors_a_word():
    for images in (10, 51, 100, 146, 1000, 100_000):
        training = colmap_plan.vocabulary_training(images)
        words = colmap_plan.vocabulary_words(training)
        assert 50_000 <= training <= 200_000 and 256 <= words <= 4096 and training >= 64 * words
        assert words & (words - 1) == 0  # a power of two


def test_tiled_pairs_are_the_same_pairs():
    ids = list(range(1, 101))
    pairs = [(a, b) for a in ids for b in ids if a < b]
    tiled = colmap_pycolmap._tiled(pairs, ids)
    assert sorted(tiled) == pairs
    batch = colmap_pycolmap._pair_batch(len(pairs))
    touched = [len({i for p in tiled[s] for i in p}) for s in colmap_pycolmap._batches(len(tiled), batch)]
    assert max(touched) < 70  # a batch reads the features of a third of the images or fewer, not of all 100
    assert colmap_pycolmap._unique_pairs([(1, 2), (2, 1), (3, 3), (2, 3)]) == [(1, 2), (2, 3)]


# The `colmap` program: a stand-in printing the log lines of COLMAP 4 that mark progress.
FAKE_COLMAP = """#!{python}
import pathlib, sys
import imageio.v3 as iio
args = sys.argv[1:]
opts = dict(zip(args[1::2], args[2::2]))
log = lambda line: print("I20250101 00:00:00.000000 1 file.cc:1] " + line, file=sys.stderr, flush=True)
if args[0] == "feature_extractor" and "-h" in args:
    print("  --FeatureExtraction.use_gpu arg (=1)")
    sys.exit(0)
images = []
if "--image_path" in opts:
    images = sorted(pathlib.Path(opts["--image_path"]).iterdir())
    pathlib.Path(opts["--database_path"]).with_suffix(".count").write_text(str(len(images)))
n = int(pathlib.Path(opts["--database_path"]).with_suffix(".count").read_text())
if args[0] == "feature_extractor":
    pathlib.Path(opts["--database_path"]).write_bytes(b"db")
    for i in range(n):
        log(f"Processed file [{{i + 1}}/{{n}}]")
elif args[0] == "exhaustive_matcher":
    log("Generating exhaustive image pairs...")
    for a in range(2):
        for b in range(2):
            log(f"Processing block [{{a + 1}}/2, {{b + 1}}/2]")
elif args[0] in ("sequential_matcher", "vocab_tree_matcher"):
    for i in range(n):
        log(f"Processing image [{{i + 1}}/{{n}}]")
    # loop detection joins far frames wrongly (repeating texture): the mapper then breaks the walk into two pieces
    broken = opts.get("--SequentialMatching.loop_detection") == "1"
    pathlib.Path(opts["--database_path"]).with_suffix(".broken").write_text("1" if broken else "")
elif args[0] == "mapper":
    log("Registering initial image pair #1 and #2")
    for i in range(2, n):
        log(f"Registering image #{{i + 1}} (num_reg_frames={{i}})")
    h, w = iio.imread(images[0]).shape[:2]
    model = pathlib.Path(opts["--output_path"]) / "0"
    model.mkdir(parents=True)
    (model / "cameras.txt").write_text(f"1 PINHOLE {{w}} {{h}} 20 20 {{w / 2}} {{h / 2}}\\n")
    marker = pathlib.Path(opts["--database_path"]).with_suffix(".broken")
    broken = marker.exists() and marker.read_text() == "1"
    # a walk sideways, 0.1 a frame; broken: its second half turned 130 degrees and moved 3 away
    pose = lambda i: f"0.423 0 0.906 0 {{3 - 0.1 * i}}" if broken and i >= n // 2 else f"1 0 0 0 {{-0.1 * i}}"
    lines = [f"{{i + 1}} {{pose(i)}} 0 0 1 {{p.name}}\\n\\n" for i, p in enumerate(images)]
    (model / "images.txt").write_text("".join(lines))
    (model / "points3D.txt").write_text("1 0 0 5 255 0 0 0.1 1 0\\n")
"""


@pytest.fixture
def fake_colmap(tmp_path, monkeypatch):
    install_fake_colmap(FAKE_COLMAP.format(python=sys.executable), tmp_path / "bin", monkeypatch)


def _photos(folder, count):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        iio.imwrite(folder / f"p{i:03d}.png", (rng.random((48, 64, 3)) * 255).astype(np.uint8))
    return folder


def _bars(err: str) -> dict[str, str]:
    """The last state of each progress bar in captured stderr: {"COLMAP features": "5/5", ...}."""
    states = {}
    for line in re.split(r"[\r\n]", err):
        found = re.match(r"(COLMAP \w+).*?\| *(\d+/\d+) ", line)
        if found:
            states[found[1]] = found[2]
    return states


def test_program_stages_show_their_progress(tmp_path, fake_colmap, capsys):
    assert main(["convert", str(_photos(tmp_path / "photos", 6)), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "COLMAP (the colmap program): 6 images 64x48" in err and "exhaustive matching" in err
    assert _bars(err) == {"COLMAP features": "6/6", "COLMAP matching": "4/4", "COLMAP mapping": "6/6"}
    log = (tmp_path / "out" / "colmap" / "colmap.log").read_text()
    assert "--SiftExtraction.max_num_features 1024" in log and "--FeatureExtraction.max_image_size 64" in log
    assert "COLMAP features: 6/6 images in" in log and "COLMAP mapping: 6/6 images in" in log


def test_program_matches_many_photos_with_their_most_similar(tmp_path, fake_colmap, capsys):
    count = EXHAUSTIVE_MAX_IMAGES + 5
    assert main(["convert", str(_photos(tmp_path / "photos", count)), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "vocab-tree matching" in err and "no vocabulary tree file given (--vocab-tree)" in err
    assert _bars(err)["COLMAP matching"] == f"{count}/{count}"
    log = (tmp_path / "out" / "colmap" / "colmap.log").read_text()
    assert "$ colmap vocab_tree_builder" in log and "$ colmap vocab_tree_matcher" in log
    assert "--VocabTreeMatching.num_images 21" in log


def test_program_uses_a_given_vocabulary_tree_and_the_requested_matcher(tmp_path, fake_colmap, capsys):
    tree = tmp_path / "tree.bin"
    tree.write_bytes(b"tree")
    photos = _photos(tmp_path / "photos", EXHAUSTIVE_MAX_IMAGES + 5)
    assert main(["convert", str(photos), "--out", str(tmp_path / "out"), "--matcher", "sequential",
                 "--vocab-tree", str(tree)]) == 0
    err = capsys.readouterr().err
    assert "sequential matching (--matcher)" in err and "no vocabulary tree" not in err
    log = (tmp_path / "out" / "colmap" / "colmap.log").read_text()
    assert "vocab_tree_builder" not in log
    assert f"--SequentialMatching.loop_detection 1 --SequentialMatching.vocab_tree_path {tree}" in log


def _breaks(scene) -> list[str]:
    frames = json.loads((scene / "transforms.json").read_text())["frames"]
    return pose_breaks(np.array([f["transform_matrix"] for f in frames]), [f["file_path"] for f in frames])


@pytest.mark.parametrize("keep_poses", [False, True])
def test_a_walk_broken_into_pieces_is_posed_again_matching_neighbours_only(tmp_path, fake_colmap, recwarn,
                                                                            keep_poses):
    tree = tmp_path / "tree.bin"
    tree.write_bytes(b"tree")
    photos = _photos(tmp_path / "photos", 24)  # the fake's loop detection breaks the walk between 11 and 12
    args = ["convert", str(photos), "--out", str(tmp_path / "out"), "--matcher", "sequential", "--vocab-tree",
            str(tree)]
    assert main(args + (["--keep-poses"] if keep_poses else [])) == 0
    err = " ".join(str(w.message) for w in recwarn)
    assert "p011.png -> p012.png" in err
    log = (tmp_path / "out" / "colmap" / "colmap.log").read_text()
    if keep_poses:
        assert "Not posed again: --keep-poses" in err and len(_breaks(tmp_path / "out")) == 1
        assert "quadratic_overlap 0" not in log
    else:
        assert "posed the images again with each frame matched to its next few only: 24 of 24 images" in err
        assert _breaks(tmp_path / "out") == []
        assert f"--SequentialMatching.overlap {NEIGHBOUR_OVERLAP} --SequentialMatching.quadratic_overlap 0" in log
        assert log.index("--SequentialMatching.loop_detection 1") < log.index("quadratic_overlap 0")  # both runs


def _broken_colmap_capture(folder):
    """A COLMAP model of 16 frames walking sideways whose second half is turned 130 degrees and moved away."""
    names = [f"{i:04d}.png" for i in range(16)]
    c2w = np.tile(np.eye(4), (16, 1, 1))
    c2w[:, 0, 3] = 0.1 * np.arange(16)
    c2w[8:, :3, :3] = [[-0.64, 0, 0.77], [0, 1, 0], [-0.77, 0, -0.64]]  # the second half turned 130 degrees
    c2w[8:, 2, 3] += 3.0
    write_colmap_model(folder / "sparse" / "0", c2w, names, {1: ("PINHOLE", 64, 48, [20.0, 20.0, 32, 24])},
                       [1] * 16, np.random.default_rng(0).normal(size=(50, 3)), np.zeros((50, 3), np.uint8), False)
    write_images(folder / "images", names, 64, 48)
    return folder


def test_a_broken_colmap_model_is_replaced_by_one_posed_again(tmp_path, fake_colmap, recwarn):
    assert main(["convert", str(_broken_colmap_capture(tmp_path / "cap")), "--out", str(tmp_path / "out")]) == 0
    assert "0007.png -> 0008.png" in " ".join(str(w.message) for w in recwarn)
    assert _breaks(tmp_path / "out") == [] and (tmp_path / "out" / "colmap" / "sparse" / "0").is_dir()


def test_posing_again_reads_no_image_from_outside_the_capture(tmp_path, fake_colmap, capsys, monkeypatch):
    capture = _broken_colmap_capture(tmp_path / "cap")
    write_images(tmp_path / "elsewhere", ["secret.png"], 64, 48)
    (capture / "images" / "0099.png").symlink_to(tmp_path / "elsewhere" / "secret.png")  # not in the model
    runs = []
    monkeypatch.setattr(pose_repair, "run_colmap", lambda *args, **kwargs: runs.append(args))
    assert main(["convert", str(capture), "--out", str(tmp_path / "out")]) == 2
    assert "0099.png" in capsys.readouterr().err and runs == []  # refused before COLMAP reads the folder
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


def test_bad_matcher_options_stop_before_any_work(tmp_path, fake_colmap, capsys):
    photos = _photos(tmp_path / "photos", 3)
    with pytest.raises(SystemExit):
        main(["convert", str(photos), "--out", str(tmp_path / "a"), "--matcher", "flann"])
    assert "invalid choice: 'flann'" in capsys.readouterr().err
    assert main(["convert", str(photos), "--out", str(tmp_path / "b"), "--vocab-tree", str(tmp_path / "no.bin")]) == 2
    err = capsys.readouterr().err
    assert "no.bin: vocabulary tree file not found (--vocab-tree)" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "photos"]


# pycolmap: a small real run on 16 of lego's photos, the views nearest r_5 (random views of all 100 overlap too
# little: 24 of them pose 9, and COLMAP keeps no model under 10 images).
NEAR_VIEWS = ["r_5", "r_58", "r_16", "r_97", "r_83", "r_90", "r_54", "r_14", "r_23", "r_9", "r_94", "r_45", "r_96",
              "r_35", "r_87", "r_93"]


def _lego_dir():
    try:
        return resolve_scene_dir("lego")
    except DatasetError:
        return None


@pytest.mark.skipif(_lego_dir() is None,
                    reason="lego not found: run `fields download nerf-synthetic` or set FIELDS_DATA_ROOT")
@pytest.mark.skipif(not pycolmap_available(), reason="needs pycolmap")
# 9 s and 13 s on 2 shared cores (load 4): the vocabulary and batches of pairs are the slow test's
@pytest.mark.parametrize("matcher", ["auto", pytest.param("vocab-tree", marks=pytest.mark.slow)])
def test_pycolmap_stages_show_their_progress(tmp_path, monkeypatch, capfd, matcher):
    monkeypatch.setattr(colmap_run.shutil, "which", lambda name: None)  # pycolmap even where the program is
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in NEAR_VIEWS:
        shutil.copy(_lego_dir() / "train" / f"{name}.png", photos)
    result = convert(photos, tmp_path / "scene", fmt="images", matcher=matcher)
    err = capfd.readouterr().err
    count = len(NEAR_VIEWS)
    pairs = count * (count - 1) // 2  # 16 images: each has fewer than 20 others to retrieve
    assert "COLMAP (pycolmap " in err and f"{'exhaustive' if matcher == 'auto' else matcher} matching" in err
    bars = _bars(err)
    assert bars["COLMAP features"] == f"{count}/{count}" and bars["COLMAP matching"] == f"{pairs}/{pairs}"
    assert bars["COLMAP mapping"] == f"{len(result.capture)}/{count}" and len(result.capture) >= 14
    assert ("no vocabulary tree file given" in err) == (matcher == "vocab-tree")
    assert "WARNING clustering" not in err  # FAISS's k-means chatter goes to colmap.log
    log = (tmp_path / "scene" / "colmap" / "colmap.log").read_text()
    assert re.search(r"COLMAP matching: \d+/\d+ pairs in [\d.]+ s", log)
    frames = json.loads((tmp_path / "scene" / "transforms.json").read_text())["frames"]
    assert len(frames) == len(result.capture)


def test_a_pycolmap_older_than_4_is_named_with_the_upgrade(tmp_path, monkeypatch):
    import importlib.metadata

    monkeypatch.setattr(colmap_run.shutil, "which", lambda name: None)
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "3.13.0" if name == "pycolmap" else real(name))
    with pytest.raises(DatasetError, match=r"version 3.13.0 is too old .*pip install --upgrade 'pycolmap>=4'"):
        convert(_photos(tmp_path / "photos", 3), tmp_path / "out", fmt="images", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def _beer_dir():
    for root in default_data_roots():
        if (root / "real" / "beer" / "sparse" / "0").is_dir():
            return root / "real" / "beer"
    return None


@pytest.mark.slow  # about 40 s on 2 cores: SIFT on 71 photos of 720x1280, 345 pairs, mapping
@pytest.mark.skipif(_beer_dir() is None, reason="real/beer not found under $FIELDS_DATA_ROOT or ../shared/data")
@pytest.mark.skipif(not pycolmap_available(), reason="needs pycolmap")
def test_beers_broken_model_is_posed_again_in_one_piece(tmp_path, monkeypatch, recwarn):
    monkeypatch.setattr(colmap_run.shutil, "which", lambda name: None)  # pycolmap even where the program is
    result = convert(_beer_dir(), tmp_path / "scene", progress=False)
    said = " ".join(str(w.message) for w in recwarn)
    assert "0013.jpg -> 0014.jpg" in said and "posed the images again" in said  # the author's model breaks there
    assert len(result.capture) == 71 and _breaks(tmp_path / "scene") == []
