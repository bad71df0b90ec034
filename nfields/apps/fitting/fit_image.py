"""Fit a 2-D image with a backbone's coordinate network: `fields fit-image IMAGE --field NAME`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F

from ...engine.metrics import psnr
from ...errors import FieldsError
from .coordinate_fit import build_coordinate_network, evaluate_chunked, fit_loop, make_optimizer


@dataclass
class ImageFit:
    network: torch.nn.Module
    reconstruction: torch.Tensor  # (H, W, C) in [0, 1]
    psnr: float  # dB against the original, all pixels
    steps: int
    seconds: float  # fitting time (evaluation excluded)
    parameters: int


def load_image(path: str | Path) -> torch.Tensor:
    """An image file as (H, W, C) float in [0, 1], C = 1 or 3 (alpha is dropped)."""
    path = Path(path)
    if not path.is_file():
        raise FieldsError(f"{path}: image file does not exist")
    try:
        array = np.asarray(iio.imread(path))
    except Exception as err:
        raise FieldsError(f"{path}: not a readable image ({err.__class__.__name__}: {str(err)[:80]})") from None
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4) or min(array.shape[:2]) < 2:
        raise FieldsError(f"{path}: expected an H x W grey, RGB or RGBA image, got shape {array.shape}")
    scale = float(np.iinfo(array.dtype).max) if np.issubdtype(array.dtype, np.integer) else 1.0
    return torch.from_numpy(array[..., :3].astype(np.float32) / scale).clamp(0, 1)


def pixel_coordinates(height: int, width: int) -> torch.Tensor:
    """Pixel centres (H*W, 2) as (x, y) in [-1, 1], row-major."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    return torch.stack([x, y], dim=-1).view(-1, 2)


def fit_image(image: torch.Tensor, field: str = "rbf", steps: int = 2000, time_budget: float | None = None,
              batch: int = 1 << 16, lr: float | None = None, decoder_lr: float | None = None, seed: int = 0,
              progress: bool = True) -> ImageFit:
    """Fit `image` (H, W, C) in [0, 1] with MSE on random pixel batches; `time_budget` in seconds."""
    torch.manual_seed(seed)
    height, width, channels = image.shape
    coords, target = pixel_coordinates(height, width), image.reshape(-1, channels)
    network = build_coordinate_network(field, 2, channels)
    optimizer = make_optimizer(network, lr, decoder_lr)
    n_pixels = coords.shape[0]

    def loss_fn(step: int) -> torch.Tensor:
        idx = torch.randint(0, n_pixels, (min(batch, n_pixels),))
        return F.mse_loss(network(coords[idx]), target[idx])

    def metric(loss: torch.Tensor) -> str:
        return f"batch PSNR {-10 * torch.log10(loss.detach().clamp(min=1e-10)).item():.2f} dB"

    done, seconds = fit_loop(network, loss_fn, optimizer, steps, time_budget, desc=f"fit-image {field}",
                             progress=progress, metric=metric)
    reconstruction = evaluate_chunked(network, coords).clamp(0, 1).view(height, width, channels)
    return ImageFit(network, reconstruction, psnr(reconstruction, image), done, seconds,
                    sum(p.numel() for p in network.parameters()))


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write (H, W, C) in [0, 1] as an 8-bit image (format from the extension)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = (image.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    iio.imwrite(path, array[..., 0] if array.shape[-1] == 1 else array)
    return path
