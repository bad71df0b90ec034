"""Lego converted into the canonical layout trains like lego loaded directly (minutes, marked slow)."""

import os

import pytest

from nfields.datasets import DatasetError, resolve_scene_dir
from nfields.datasets.ingest.convert import convert
from nfields.engine.config import TrainConfig
from nfields.engine.trainer import train


def _lego_dir():
    try:
        return resolve_scene_dir("lego")
    except DatasetError:
        return None


@pytest.mark.slow
@pytest.mark.skipif(_lego_dir() is None,
                    reason="lego not found: run `fields download nerf-synthetic` or set FIELDS_DATA_ROOT")
def test_converted_lego_trains_to_the_same_psnr(tmp_path):
    result = convert(_lego_dir(), tmp_path / "lego", downscales=(2,), progress=False)
    assert len(result.capture.splits["train"]) == 100 and len(result.capture.splits["val"]) == 100
    steps = int(os.environ.get("FIELDS_CONVERT_LEGO_STEPS", 200))
    # 200x200: the converted run reads images_2/, the direct one downscales on load.
    common = dict(steps=steps, threads=2, eval_every=1e9, final_eval_views=3, downscale=2)
    direct = train(TrainConfig(scene="lego", output=str(tmp_path / "direct"), **common), progress=False)
    converted = train(TrainConfig(scene="lego", data=str(tmp_path / "lego"), output=str(tmp_path / "converted"),
                                  **common), progress=False)
    assert converted.metrics["psnr"] > 18.0, converted.metrics  # an untrained field scores about 9 dB
    assert abs(converted.metrics["psnr"] - direct.metrics["psnr"]) < 0.3, (converted.metrics, direct.metrics)
