"""Stopping cleanly: SIGTERM is handled like Ctrl-C, killed checkpoint writes leave no temp files behind,
and a run never writes into a folder of other files unless told to."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from nfields.cli import main
from nfields.datasets import DatasetError, make_procedural_scene, write_blender_scene
from nfields.engine.checkpoint import atomic_torch_save, load_checkpoint, save_checkpoint
from nfields.engine.config import TrainConfig
from nfields.engine.trainer import train
from nfields.errors import FieldsError
from nfields.interrupts import sigterm_as_interrupt


def test_sigterm_raises_keyboard_interrupt_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
    assert signal.getsignal(signal.SIGTERM) is before


def test_stale_temporaries_are_removed_on_save_and_load(tmp_path):
    path = tmp_path / "checkpoint.pt"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = [tmp_path / f"checkpoint.pt.{dead.stdout.strip()}.abc.tmp", tmp_path / "checkpoint.ptq1w2e3.tmp"]
    live = tmp_path / f"checkpoint.pt.{os.getppid()}.xyz.tmp"  # a writer still running: kept
    other = tmp_path / "checkpoint_5min.pt.123.abc.tmp"  # another file's temporary: not this one's to remove
    for p in [*stale, live, other]:
        p.write_bytes(b"half a checkpoint")
    atomic_torch_save(path, {"x": torch.ones(2)})
    assert not any(p.exists() for p in stale) and live.exists() and other.exists()
    assert torch.load(path)["x"].sum() == 2
    stale[0].write_bytes(b"half a checkpoint")
    with pytest.raises(FieldsError, match="field 'format'"):
        load_checkpoint(path)
    assert not stale[0].exists() and live.exists()
    save_checkpoint(path, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["checkpoint.pt", live.name, other.name])


def test_output_folder_of_other_files_is_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code = main(["train", "--scene", "x", "--steps", "1", "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"--output {out}: folder is not empty (1 entries, e.g. 'notes.txt') and holds no run" in err
    assert "--overwrite" in err and sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    with pytest.raises(FieldsError, match="'overwrite' must be true or false"):
        TrainConfig(overwrite="yes").validate()
    with pytest.raises(DatasetError, match="scene .x. not found"):  # past the folder check: trains into it
        train(TrainConfig(scene="x", data_root=str(tmp_path), steps=1, output=str(out), overwrite=True),
              progress=False)


@pytest.mark.slow
def test_sigterm_stops_training_with_a_checkpoint_that_resumes(tmp_path):
    scene, run = tmp_path / "scene", tmp_path / "run"
    write_blender_scene(make_procedural_scene(8, 32), scene, "train")
    write_blender_scene(make_procedural_scene(2, 32, seed_offset=17.0), scene, "val")
    log = tmp_path / "stderr.txt"
    cmd = [sys.executable, "-m", "nfields.cli", "train", "--scene", str(scene), "--steps", "100000",
           "--output", str(run), "--samples-per-step", "4096", "--threads", "1", "--eval-every", "1e9",
           "--grid-resolution", "32", "--eval-pixels", "256", "--final-eval-views", "1"]
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        deadline = time.time() + 120
        while not re.search(r"step ([3-9]|\d\d+) \|", log.read_text()) and proc.poll() is None \
                and time.time() < deadline:
            time.sleep(0.2)  # until the progress bar shows a few training steps
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, log.read_text()[-2000:]
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("training at ")  # the resolution line, then one line on stopping
    assert lines[1].startswith("Interrupted at step ") and "checkpoint saved" in lines[1]
    assert "Traceback" not in log.read_text()
    step = load_checkpoint(run / "checkpoint.pt")["step"]
    assert step >= 3 and not list(run.glob("*.tmp")), lines
    # resumed here, not in a second process: what the signal left is the checkpoint, read the same either way
    assert main(["train", "--resume", str(run), "--steps", str(step + 2)]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["step"] == step + 2
