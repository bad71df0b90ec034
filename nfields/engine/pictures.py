"""Pictures of renders: depth in colour, and a validation view beside its photo."""

from __future__ import annotations

import matplotlib
import numpy as np
import torch


def surface_depth(depth: torch.Tensor, opacity: torch.Tensor) -> torch.Tensor:
    """Expected depth (H, W) over opacity (H, W): the distance to the surface, NaN where opacity <= 0.5 (empty)."""
    return torch.where(opacity > 0.5, depth / opacity.clamp(min=1e-6), torch.nan)


def depth_limits(distances: list[torch.Tensor]) -> tuple[float, float]:
    """The nearest and farthest surface (see surface_depth) over images (H, W): one colour scale for a video."""
    ranges = [(v.min().item(), v.max().item()) for v in (d[d.isfinite()] for d in distances) if v.numel()]
    return (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else (0.0, 1.0)


def depth_image(distance: torch.Tensor, limits: tuple[float, float] | None = None) -> np.ndarray:
    """Distances (H, W; NaN: empty) to an RGB uint8 image (H, W, 3), turbo colours: near bright, far dark, empty
    the darkest; limits: the nearest and farthest distance (default: this image's)."""
    lo, hi = limits or depth_limits([distance])
    norm = ((hi - distance) / max(hi - lo, 1e-6)).clamp(0, 1).nan_to_num(0.0)
    return (matplotlib.colormaps["turbo"](norm.numpy())[..., :3] * 255).astype(np.uint8)


def colorize_depth(depth: torch.Tensor, opacity: torch.Tensor) -> np.ndarray:
    """Depth (H, W) to an RGB uint8 image (H, W, 3), scaled to this image's nearest and farthest surface (the
    viewer's and the logged pictures'; a video shares one scale over its frames)."""
    return depth_image(surface_depth(depth, opacity))


def to_uint8(values: torch.Tensor) -> np.ndarray:
    """Values in [0, 1] (any shape, e.g. colours (H, W, 3)) to uint8, rounded; a CPU tensor."""
    return (values.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def prediction_truth_depth(view: dict[str, torch.Tensor], truth: torch.Tensor) -> np.ndarray:
    """A render (`render_view`'s rgb, depth, opacity) | its photo (H, W, 3) | the depth: (H, 3W, 3) uint8."""
    return np.concatenate([to_uint8(view["rgb"]), to_uint8(truth),
                           colorize_depth(view["depth"], view["opacity"])], axis=1)
