"""Mixed precision: when it is on by default, and a bfloat16 autocast run on the CPU through the native kernels
(float16 decoder outputs meet float32 kernels at the same casts on CUDA)."""

import torch

from nfields.engine.config import TrainConfig
from nfields.engine.precision import uses_mixed_precision
from nfields.engine.trainer import train


def test_on_by_default_only_for_cuda_runs_of_backbones_that_train_in_half_precision():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert uses_mixed_precision(None, cuda, True) and not uses_mixed_precision(None, cuda, False)
    assert not uses_mixed_precision(None, cpu, True)
    assert uses_mixed_precision(True, cpu, False) and not uses_mixed_precision(False, cuda, True)


def test_an_autocast_run_trains(procedural_dir, tmp_path, monkeypatch):
    dtypes = set()
    real_composite = torch.Tensor.float

    def recording_float(self, *args, **kwargs):  # what reaches the kernels' float32 casts
        dtypes.add(self.dtype)
        return real_composite(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "float", recording_float)
    # 40 steps after a 5-step warm-up: bfloat16 matrix products are about 10x slower than float32 ones on a CPU
    # without native bfloat16 (AVX2), so this run is kept short.
    config = TrainConfig(scene=str(procedural_dir), steps=40, warmup_steps=5, output=str(tmp_path / "run"),
                         samples_per_step=1 << 13, grid_resolution=64, occupancy_every=16, eval_every=1e9,
                         eval_pixels=1024, final_eval_views=2, logger="none", mixed_precision=True)
    result = train(config, progress=False)
    assert torch.bfloat16 in dtypes  # the decoders ran in bfloat16
    # an untrained field scores about 10 dB; measured 14.4 dB (AVX2 Zen 3)
    assert result.metrics["psnr"] > 12.5, result.metrics
