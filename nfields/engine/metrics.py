"""Image quality metrics on (H, W, 3) float images in [0, 1]."""

from __future__ import annotations

import math

import numpy as np
import torch
from skimage.metrics import structural_similarity


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    mse = torch.mean((prediction.float() - target.float()) ** 2).item()
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """SSIM as NeRF papers report it: Gaussian window (sigma 1.5), data range 1, averaged over channels."""
    return float(
        structural_similarity(
            np.asarray(prediction.clamp(0, 1).cpu(), dtype=np.float64),
            np.asarray(target.clamp(0, 1).cpu(), dtype=np.float64),
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=-1,
        )
    )
