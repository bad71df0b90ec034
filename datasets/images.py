"""Reading and downscaling the 8-bit images of a scene, with errors that name the file and its record."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from .dataset_error import DatasetError


def downscale_image(img: np.ndarray, factor: int) -> np.ndarray:
    """Area-average (H, W, C) uint8 by an integer factor (the edge that does not divide is cropped)."""
    if factor <= 1:
        return img
    h, w = img.shape[0] // factor * factor, img.shape[1] // factor * factor
    img = img[:h, :w].reshape(h // factor, factor, w // factor, factor, -1)
    return (img.astype(np.float32).mean(axis=(1, 3)) + 0.5).astype(np.uint8)


def read_image(path: Path, referenced_by: str, downscale: int = 1) -> np.ndarray:
    """(H, W, C) uint8 with C = 3 or 4. referenced_by: the record naming the file, for messages."""
    if not path.is_file():
        raise DatasetError(path, f"image is missing (named by {referenced_by})")
    try:
        img = iio.imread(path)
    except Exception as err:  # imageio raises many types for unreadable files
        raise DatasetError(path, f"image cannot be read ({err.__class__.__name__}: {err})") from None
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise DatasetError(path, f"expected an RGB or RGBA image, got shape {img.shape}")
    if img.dtype != np.uint8:
        raise DatasetError(path, f"expected an 8-bit image, got {img.dtype}")
    return downscale_image(img, downscale)


def read_images(paths: list[Path], referenced_by: list[str], downscale: int = 1) -> np.ndarray:
    """Read images in parallel into (N, H, W, C) uint8; all must share one size and channel count."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        images = list(pool.map(lambda a: read_image(*a, downscale), zip(paths, referenced_by)))
    h, w, c = images[0].shape
    for img, path, ref in zip(images, paths, referenced_by):
        if img.shape[:2] != (h, w):
            raise DatasetError(
                path, f"image is {img.shape[1]}x{img.shape[0]} but frames[0] ({paths[0].name}) is {w}x{h}"
                f" ({ref})", "All images of a split must share one size: resize them or convert each size apart.",
            )
        if img.shape[2] != c:
            raise DatasetError(path, f"image has {img.shape[2]} channels but frames[0] has {c} ({ref})")
    return np.stack(images)


def image_size(path: Path, referenced_by: str) -> tuple[int, int]:
    """(width, height) of an image file, read from its header."""
    if not path.is_file():
        raise DatasetError(path, f"image is missing (named by {referenced_by})")
    try:
        shape = iio.improps(path).shape
    except Exception as err:  # imageio raises many types for unreadable files
        raise DatasetError(path, f"image cannot be read ({err.__class__.__name__}: {err})") from None
    return int(shape[1]), int(shape[0])
