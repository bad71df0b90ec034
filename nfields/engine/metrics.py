"""Image quality metrics on (H, W, 3) float images in [0, 1]: PSNR, SSIM, LPIPS (see docs/metrics.md)."""

from __future__ import annotations

import math

import numpy as np
import torch
from skimage.metrics import structural_similarity

LPIPS_MIN_SIDE = 31  # pixels: AlexNet's two max-pools before its third convolution need at least this


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    mse = torch.mean((prediction.float() - target.float()) ** 2).item()
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """SSIM as NeRF papers report it: Gaussian window (sigma 1.5, 11 pixels), data range 1, averaged over channels.
    Images under 11 pixels on a side use the largest odd window that fits."""
    side = min(prediction.shape[0], prediction.shape[1])
    window = min(11, side if side % 2 else side - 1)
    return float(
        structural_similarity(
            np.asarray(prediction.clamp(0, 1).cpu(), dtype=np.float64),
            np.asarray(target.clamp(0, 1).cpu(), dtype=np.float64),
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=-1,
            win_size=window,
        )
    )


def lpips(prediction: torch.Tensor, target: torch.Tensor, network: torch.nn.Module) -> float:
    """LPIPS (lower: more alike) of (H, W, 3) images in [0, 1], both sides at least LPIPS_MIN_SIDE, by an
    lpips.LPIPS network (nfields.engine.lpips_network): scaled to [-1, 1] as (1, 3, H, W), as the network expects."""
    device = next(network.parameters()).device
    a, b = (2 * x.float().clamp(0, 1).permute(2, 0, 1)[None].to(device) - 1 for x in (prediction, target))
    with torch.no_grad():
        return float(network(a, b).item())
