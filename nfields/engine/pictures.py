"""Pictures of renders: depth in colour, and a validation view beside its photo."""

from __future__ import annotations

import matplotlib
import numpy as np
import torch


def colorize_depth(depth: torch.Tensor, opacity: torch.Tensor) -> np.ndarray:
    """Depth (H, W) to an RGB uint8 image (H, W, 3): near bright, far dark, empty black."""
    d = depth / opacity.clamp(min=1e-6)
    valid = opacity > 0.5
    lo, hi = (d[valid].min().item(), d[valid].max().item()) if valid.any() else (0.0, 1.0)
    norm = ((hi - d) / max(hi - lo, 1e-6)).clamp(0, 1) * valid
    return (matplotlib.colormaps["turbo"](norm.numpy())[..., :3] * 255).astype(np.uint8)


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """Colours in [0, 1] (H, W, 3) to uint8 (H, W, 3)."""
    return (rgb.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def prediction_truth_depth(view: dict[str, torch.Tensor], truth: torch.Tensor) -> np.ndarray:
    """A render (`render_view`'s rgb, depth, opacity) | its photo (H, W, 3) | the depth: (H, 3W, 3) uint8."""
    return np.concatenate([to_uint8(view["rgb"]), to_uint8(truth),
                           colorize_depth(view["depth"], view["opacity"])], axis=1)
