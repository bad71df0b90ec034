"""Run logs: tensorboard event files from training and distillation (read back with tensorboard's own reader),
`--logger none`, the optional wandb logger, the time-budget progress bar, and the kernels built before the clock."""

import re
import sys
import time
import types

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nfields.engine.config import TrainConfig
from nfields.engine.trainer import train
from nfields.errors import FieldsError

TRAINING_SCALARS = {"train/loss", "train/batch_psnr", "speed/rays_per_second", "speed/step_seconds",
                    "samples/per_step", "samples/per_ray", "occupancy/fraction", "lr/field", "lr/decoder weights",
                    "val/psnr", "final/psnr", "final/ssim"}


def _config(procedural_dir, out, **kw):
    return TrainConfig(**{"scene": str(procedural_dir), "steps": 30, "output": str(out), "samples_per_step": 1 << 12,
                          "grid_resolution": 32, "occupancy_every": 8, "eval_every": 0.0, "eval_pixels": 256,
                          "final_eval_views": 1, "log_every": 5, "log_images_every": 0.0, **kw})


def _events(folder) -> EventAccumulator:
    files = list(folder.glob("events.out.tfevents.*"))
    assert files, f"no event file in {folder}"
    return EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0}).Reload()


def test_training_writes_every_scalar_and_the_validation_pictures(procedural_dir, tmp_path):
    run = tmp_path / "run"
    train(_config(procedural_dir, run, steps=12, log_every=4), progress=False)
    events = _events(run)
    tags = events.Tags()
    assert TRAINING_SCALARS <= set(tags["scalars"]), TRAINING_SCALARS - set(tags["scalars"])
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [4, 8, 12]  # every log_every steps
    assert all(0 < e.value < 1 for e in losses)
    assert all(0 < e.value <= 1 for e in events.Scalars("occupancy/fraction"))
    assert events.Scalars("lr/field")[-1].value > 0
    assert events.Scalars("final/psnr")[0].value > 10
    pictures = events.Images("val/prediction_truth_depth")
    assert pictures and pictures[0].width == 3 * pictures[0].height  # render | photo | depth, side by side


def test_logger_none_writes_no_event_file_and_renders_no_picture(procedural_dir, tmp_path, monkeypatch):
    from nfields.engine import training_log

    def no_picture(*args):
        raise AssertionError("a validation picture was rendered for a logger that keeps none")

    monkeypatch.setattr(training_log, "validation_picture", no_picture)
    run = tmp_path / "run"
    train(_config(procedural_dir, run, steps=5, logger="none"), progress=False)
    assert not list(run.glob("events.out.tfevents.*"))
    assert (run / "history.json").exists()  # history.json keeps what it had


def test_distillation_logs_its_stages_and_pools(trained_procedural_run, tmp_path):
    from nfields.apps.distillation import DistillConfig, distill

    settings = DistillConfig(teacher=str(trained_procedural_run), student="triplane", epoch_poses=32,
                             ray_pool_size=1024, stages=(0.2, 0.5))
    distill(settings, steps=30, output=str(tmp_path / "student"), progress=False)
    scalars = set(_events(tmp_path / "student").Tags()["scalars"])
    expected = {"train/loss", "distill/stage", "distill/pixel_rgb", "distill/point_rgb", "distill/point_log_density",
                "pool/hard_rays_filled", "pool/hard_poses", "pool/epoch", "final/psnr"}
    assert expected <= scalars, expected - scalars


def test_wandb_is_used_only_when_asked_and_installed(procedural_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    with pytest.raises(FieldsError, match="pip install wandb"):
        train(_config(procedural_dir, tmp_path / "missing", steps=5, logger="wandb"), progress=False)

    logged: list[dict] = []
    run = types.SimpleNamespace(log=lambda values, step: logged.append(values), finish=lambda: None)
    fake = types.ModuleType("wandb")
    fake.__spec__ = types.SimpleNamespace(name="wandb")
    fake.init = lambda **kw: run
    fake.Image = lambda image: ("image", image.shape)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object() if name == "wandb" else None)
    train(_config(procedural_dir, tmp_path / "wandb", steps=5, logger="wandb"), progress=False)
    assert any("train/loss" in values for values in logged)
    assert any("val/prediction_truth_depth" in values for values in logged)


def test_time_budget_bar_shows_training_time_elapsed_and_left(procedural_dir, tmp_path, capsys):
    from nfields.cli import main

    assert main(["train", "--scene", str(procedural_dir), "--time-budget", "0.1", "--output", str(tmp_path / "run"),
                 "--samples-per-step", "4096", "--grid-resolution", "32", "--final-eval-views", "1"]) == 0
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    shown = [re.search(r"(\d+)/6 s trained.* 0:0(\d) left", line) for line in bar]
    shown = [(int(m[1]), int(m[2])) for m in shown if m]
    assert len(shown) >= 2 and all(5 <= trained + left <= 6 for trained, left in shown), shown  # elapsed + left
    assert shown[-1] == (6, 0) and "100%" in [line for line in bar if " s trained" in line][-1]


def test_kernels_are_built_before_the_training_clock(procedural_dir, tmp_path, monkeypatch):
    """A first run builds the kernels before its first step, so that step takes about as long as the first step of
    a run whose kernels are loaded already. The build stands in as a load that takes 5 s on its first call (a real
    build takes 30-90 s on 2 cores; tests/cuda/test_kernel_build.py runs one)."""
    from nfields.cuda import dispatch

    load, loads = dispatch._BUILDS["cpu"], []

    def slow_first_load():
        if not loads:
            time.sleep(5.0)
        loads.append(1)
        return load()

    monkeypatch.setitem(dispatch._BUILDS, "cpu", slow_first_load)
    first_steps = []

    class FirstStep:
        def start(self, trainer): ...

        def step_guard(self):
            from contextlib import nullcontext
            return nullcontext()

        def after_step(self, trainer, val_psnr):
            if trainer.step == 1:
                first_steps.append(trainer.train_seconds)

        def finish(self, trainer): ...

    for name in ("cold", "warm"):
        train(_config(procedural_dir, tmp_path / name, steps=3, logger="none"), progress=False, monitor=FirstStep())
    assert loads, "the runs never loaded the kernels"
    cold, warm = first_steps
    assert cold < warm + 2.5, (cold, warm)  # the 5 s load on the clock would show here
