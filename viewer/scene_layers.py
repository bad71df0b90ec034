"""What the viewer draws beside the render: the capture's sparse points and the training photos' thumbnails."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..datasets import DatasetError, composite_over
from ..engine.config import TrainConfig
from ..engine.pictures import to_uint8
from ..engine.scenes import run_capture
from ..errors import FieldsError

MAX_POINTS = 200_000
THUMBNAIL_SIDE = 96  # long side in pixels: 300 JPEG thumbnails stay under a megabyte or so


@dataclass
class SceneLayers:
    """Sparse points (P, 3) float32 in the scene frame with colours (P, 3) uint8 (None: the capture has none),
    one thumbnail (h, w, 3) uint8 per training camera (None: no images), and notes: one line per layer
    that could not be loaded, saying why."""

    points: np.ndarray | None = None
    colors: np.ndarray | None = None
    thumbnails: list[np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)


def subsample_points(points: np.ndarray, colors: np.ndarray, max_points: int = MAX_POINTS,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_points` of points (P, 3) and colours (P, 3), a fixed random subset in their original order."""
    if len(points) <= max_points:
        return points, colors
    keep = np.sort(np.random.default_rng(seed).choice(len(points), max_points, replace=False))
    return points[keep], colors[keep]


def thumbnail_size(width: int, height: int, long_side: int = THUMBNAIL_SIDE) -> tuple[int, int]:
    """(width, height) with the long side `long_side` (never enlarged) and the aspect kept."""
    scale = min(1.0, long_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def make_thumbnails(images: torch.Tensor, long_side: int = THUMBNAIL_SIDE) -> list[np.ndarray]:
    """Images (N, H, W, C) uint8, C = 3 or 4 (RGBA over white), to (h, w, 3) uint8 thumbnails (area average)."""
    n, h, w, _ = images.shape
    tw, th = thumbnail_size(w, h, long_side)
    out = []
    for image in images:  # one at a time: a float copy of 300 full-size photos would not be small
        rgb = image.float().cpu() / 255
        if rgb.shape[-1] == 4:
            rgb = composite_over(rgb, torch.ones(3))
        small = torch.nn.functional.interpolate(rgb.permute(2, 0, 1)[None], size=(th, tw), mode="area")
        out.append(to_uint8(small[0].permute(1, 2, 0)))
    return out


def sparse_points(config: TrainConfig, data_root: str | None = None, max_points: int = MAX_POINTS,
                  ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The run's capture's sparse points (P, 3) float32 in the scene frame (the frame the run trained in,
    e.g. a converted scene's sparse_pc.ply, or a COLMAP model's points3D mapped by its normalisation) and their
    colours (P, 3) uint8, subsampled to `max_points`; (None, None) where the capture has none."""
    capture = run_capture(config, data_root)
    if capture.points is None or len(capture.points) == 0:
        return None, None
    points, colors = subsample_points(capture.points, capture.colors, max_points)
    return points.astype(np.float32), colors.astype(np.uint8)


def load_layers(config: TrainConfig, images: torch.Tensor | None, data_root: str | None = None) -> SceneLayers:
    """The layers of a run: sparse points read from its recorded data path, thumbnails of `images` (the
    training images (N, H, W, C) uint8, None where they could not be read). Missing data leaves a layer empty
    with a note."""
    layers = SceneLayers()
    if images is not None:
        layers.thumbnails = make_thumbnails(images)
    try:
        layers.points, layers.colors = sparse_points(config, data_root)
    except (DatasetError, FieldsError, OSError) as err:
        layers.notes.append(f"viewer: no sparse points ({err})")
    return layers
