"""Every bad input gets a one-paragraph error naming the file and the field, and a non-zero exit."""

import json
import shutil

import pytest

from nfields.cli import main
from nfields.datasets import DatasetError, load_blender_scene


@pytest.fixture
def scene(tmp_path, procedural_dir):
    dst = tmp_path / "scene"
    shutil.copytree(procedural_dir, dst)
    return dst


def _cli_error(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


def test_missing_scene_folder(capsys, tmp_path):
    err = _cli_error(capsys, "train", "--scene", "nowhere", "--data-root", str(tmp_path), "--steps", "1")
    assert "nowhere" in err and "fields download nerf-synthetic" in err


def test_malformed_json(scene):
    (scene / "transforms_train.json").write_text('{"camera_angle_x": 0.7, "frames": [')
    with pytest.raises(DatasetError, match=r"transforms_train.json: malformed JSON at line 1"):
        load_blender_scene(scene, "train")


@pytest.mark.parametrize("drop, message", [("camera_angle_x", "'camera_angle_x' is missing"),
                                           ("frames", "'frames' is missing")])
def test_incomplete_json(scene, drop, message):
    path = scene / "transforms_train.json"
    meta = json.loads(path.read_text())
    del meta[drop]
    path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=message):
        load_blender_scene(scene, "train")


def test_frame_without_matrix_names_the_frame(scene):
    path = scene / "transforms_train.json"
    meta = json.loads(path.read_text())
    del meta["frames"][3]["transform_matrix"]
    path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"frames\[3\]: field 'transform_matrix' is missing"):
        load_blender_scene(scene, "train")


def test_missing_image(scene):
    (scene / "train" / "r_5.png").unlink()
    with pytest.raises(DatasetError, match=r"r_5.png: image is missing .*frames\[5\]"):
        load_blender_scene(scene, "train")


def test_image_of_another_size(scene):
    import imageio.v3 as iio
    import numpy as np

    iio.imwrite(scene / "train" / "r_2.png", np.zeros((10, 12, 4), dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"r_2.png: image is 12x10 but frames\[0\]"):
        load_blender_scene(scene, "train")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, procedural_dir):
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", "--scene", str(procedural_dir), "--steps", "3", "--output", str(out)]) == 0
    return out


def test_corrupt_checkpoint_is_reported_and_previous_files_kept(capsys, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    err = _cli_error(capsys, "eval", str(run))
    assert "checkpoint.pt: checkpoint is corrupt" in err
    assert (run / "config.json").exists()


def test_checkpoint_from_another_backbone(capsys, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    config = json.loads((run / "config.json").read_text())
    config["field"] = "mlp"
    (run / "config.json").write_text(json.dumps(config))
    err = _cli_error(capsys, "train", "--resume", str(run), "--steps", "5")
    assert "holds a 'hashgrid' field, not 'mlp'" in err


def test_existing_run_folder_is_not_overwritten(capsys, trained_run):
    before = (trained_run / "checkpoint.pt").read_bytes()
    err = _cli_error(capsys, "train", "--scene", "x", "--steps", "1", "--output", str(trained_run))
    assert "already holds a run" in err
    assert (trained_run / "checkpoint.pt").read_bytes() == before


def test_nan_in_training_stops_with_a_clear_error_and_keeps_checkpoint(capsys, trained_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = (run / "checkpoint.pt").read_bytes()
    from nfields.engine import trainer as train_module

    monkeypatch.setattr(train_module, "photometric_loss", lambda pred, target, kind: (pred * float("nan")).sum())
    err = _cli_error(capsys, "train", "--resume", str(run), "--steps", "6")
    assert "training diverged at step 3" in err and "NaN" in err
    assert (run / "checkpoint.pt").read_bytes() == before


def test_unknown_backbone(capsys, procedural_dir, tmp_path):
    err = _cli_error(capsys, "train", "--scene", str(procedural_dir), "--field", "nerfzilla", "--steps", "1",
                     "--output", str(tmp_path / "r"))
    assert "nerfzilla" in err and "hashgrid" in err and "mlp" in err
