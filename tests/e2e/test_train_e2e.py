"""End to end on the procedural scene (seconds), and a short lego run (minutes, marked slow)."""

import json
import os

import imageio.v3 as iio
import pytest

from nfields.cli import main
from nfields.datasets import DatasetError, resolve_scene_dir
from nfields.engine.config import TrainConfig
from nfields.engine.trainer import resume, train


def _small_config(procedural_dir, out, **kw):
    return TrainConfig(scene=str(procedural_dir), steps=kw.pop("steps", 250), output=str(out), samples_per_step=1 << 13,
                       grid_resolution=64, occupancy_every=16, eval_every=1e9, eval_pixels=1024, **kw)


def test_training_on_procedural_scene_raises_psnr(procedural_dir, tmp_path):
    result = train(_small_config(procedural_dir, tmp_path / "run"), progress=False)
    assert result.metrics["psnr"] > 19.0, result.metrics  # an untrained field scores about 10 dB
    assert result.metrics["ssim"] > 0.7
    for name in ("checkpoint.pt", "config.json", "metrics.json", "history.json", "psnr_vs_time.png"):
        assert (tmp_path / "run" / name).exists(), name
    assert len(list((tmp_path / "run" / "renders_val").glob("*.png"))) == 4


def test_resume_continues_from_the_checkpoint(procedural_dir, tmp_path):
    first = train(_small_config(procedural_dir, tmp_path / "run", steps=20), progress=False)
    assert first.step == 20
    second = resume(tmp_path / "run", {"steps": 35}, progress=False)
    assert second.step == 35
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["steps"] == 35


def test_ctrl_c_saves_a_checkpoint_that_resumes(procedural_dir, tmp_path, monkeypatch):
    from nfields.engine.trainer import Trainer

    real_step = Trainer.train_step

    def interrupted_step(self):
        if self.step == 12:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    stopped = train(_small_config(procedural_dir, tmp_path / "run", steps=40), progress=False)
    assert stopped.metrics is None and stopped.step == 12
    monkeypatch.setattr(Trainer, "train_step", real_step)
    finished = resume(tmp_path / "run", progress=False)
    assert finished.step == 40 and finished.metrics is not None


@pytest.mark.slow
def test_cli_eval_and_render(procedural_dir, tmp_path, capsys):
    run = tmp_path / "run"
    # hashgrid: eval and render are the same for every backbone; with a young mlp this test took 36 s, not 13
    assert main(["train", "--scene", str(procedural_dir), "--field", "hashgrid", "--steps", "30",
                 "--final-eval-views", "1", "--output", str(run)]) == 0
    assert main(["eval", str(run), "--split", "val"]) == 0
    metrics = json.loads((run / "eval_val.json").read_text())
    assert metrics["views"] == 4 and metrics["psnr"] > 5
    assert main(["render", str(run), "--frames", "5", "--format", "gif", "--resolution", "32"]) == 0
    frames = iio.imread(run / "orbit.gif", index=None)
    assert frames.shape[0] == 5 and frames.shape[1:3] == (32, 64)  # RGB | depth side by side
    assert main(["render", str(run), "--frames", "4", "--resolution", "32", "--out", str(run / "o.mp4")]) == 0
    mp4 = [frame for frame in iio.imiter(run / "o.mp4")]
    assert len(mp4) == 4 and mp4[0].shape == (32, 64, 3)


def _lego_available():
    try:
        resolve_scene_dir("lego")
        return True
    except DatasetError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _lego_available(),
                    reason="lego not found: run `fields download nerf-synthetic` or set FIELDS_DATA_ROOT")
def test_short_lego_run_beats_stated_psnr(tmp_path):
    """300 steps on lego, 3 val views. A step-limited run depends on no clock: it repeats to the last digit on one
    machine (seed 0: 20.504 dB twice). Another instruction set rounds differently (ATen's AVX2 kernels instead of
    AVX-512: 20.562), which moves the run like another seed: seeds 0-4 scored 20.04-20.50 here (30 Nov 2026), a
    2-core AVX2 EPYC 20.49. The bar lies 0.5 dB under the lowest of them; an untrained field scores about 9 dB."""
    config = TrainConfig(scene="lego", steps=int(os.environ.get("FIELDS_LEGO_STEPS", 300)),
                         output=str(tmp_path / "run"), threads=2, eval_every=1e9, final_eval_views=3, logger="none")
    result = train(config, progress=False)
    assert result.metrics["psnr"] > 19.5, result.metrics
