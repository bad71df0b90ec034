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


CHANNELS = {1: "grey", 2: "grey and alpha", 3: "RGB", 4: "RGBA"}


def _read(path: Path, referenced_by: str, downscale: int) -> tuple[np.ndarray, int]:
    """read_image's (H, W, C) uint8 and the channel count of the file itself (1 for a grey image)."""
    if not path.is_file():
        raise DatasetError(path, f"image is missing (named by {referenced_by})")
    if path.stat().st_size == 0:
        raise DatasetError(path, f"image file is empty (0 bytes; named by {referenced_by})")
    try:
        img = iio.imread(path)
    except Exception as err:  # imageio raises many types for unreadable files
        raise DatasetError(path, f"image cannot be read ({_first_line(err)})") from None
    if img.ndim == 2:
        img = img[..., None]
    channels = img.shape[2] if img.ndim == 3 else 0
    if img.ndim != 3 or channels not in (1, 3, 4):
        what = f"{channels} channels ({CHANNELS[channels]})" if channels in CHANNELS else f"shape {img.shape}"
        raise DatasetError(path, f"expected a grey, RGB or RGBA image, got {what}")
    if img.dtype != np.uint8:
        raise DatasetError(path, f"expected an 8-bit image, got {img.dtype}")
    if channels == 1:
        img = np.repeat(img, 3, axis=-1)
    return downscale_image(img, downscale), channels


def _first_line(err: Exception) -> str:
    """The exception's type and the first line of its message (imageio appends install hints)."""
    lines = str(err).strip().splitlines()
    return f"{err.__class__.__name__}: {lines[0]}" if lines else err.__class__.__name__


def _describe(channels: int) -> str:
    return f"{channels} channel{'s' if channels > 1 else ''} ({CHANNELS[channels]})"


def read_image(path: Path, referenced_by: str, downscale: int = 1) -> np.ndarray:
    """(H, W, C) uint8 with C = 3 or 4 (grey images become RGB). referenced_by: the record naming the file,
    for messages."""
    return _read(path, referenced_by, downscale)[0]


def read_image_list(paths: list[Path], referenced_by: list[str], downscale: int = 1) -> list[np.ndarray]:
    """Read images in parallel: (H_i, W_i, C) uint8 each; all must share one channel count."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        read = list(pool.map(lambda a: _read(*a, downscale), zip(paths, referenced_by)))
    c = read[0][0].shape[2]
    for (img, channels), path, ref in zip(read, paths, referenced_by):
        if img.shape[2] != c:
            raise DatasetError(path, f"image has {_describe(channels)} but frames[0] ({paths[0].name}) has "
                                     f"{_describe(read[0][1])} ({ref})")
    return [img for img, _ in read]


def read_images(paths: list[Path], referenced_by: list[str], downscale: int = 1) -> np.ndarray:
    """Read images in parallel into (N, H, W, C) uint8; all must share one size and channel count."""
    images = read_image_list(paths, referenced_by, downscale)
    h, w = images[0].shape[:2]
    for img, path, ref in zip(images, paths, referenced_by):
        if img.shape[:2] != (h, w):
            raise DatasetError(
                path, f"image is {img.shape[1]}x{img.shape[0]} but frames[0] ({paths[0].name}) is {w}x{h}"
                f" ({ref})", "All images of a split must share one size: resize them or convert each size apart.",
            )
    return np.stack(images)


def stack_padded(arrays: list[np.ndarray]) -> np.ndarray:
    """Arrays (H_i, W_i, ...) of one dtype stacked into (N, max H, max W, ...), each in the top-left corner,
    zeros elsewhere."""
    h, w = max(a.shape[0] for a in arrays), max(a.shape[1] for a in arrays)
    out = np.zeros((len(arrays), h, w) + arrays[0].shape[2:], dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, :a.shape[0], :a.shape[1]] = a
    return out


def image_size(path: Path, referenced_by: str) -> tuple[int, int]:
    """(width, height) of an image file, read from its header."""
    if not path.is_file():
        raise DatasetError(path, f"image is missing (named by {referenced_by})")
    if path.stat().st_size == 0:
        raise DatasetError(path, f"image file is empty (0 bytes; named by {referenced_by})")
    try:
        shape = iio.improps(path).shape
    except Exception as err:  # imageio raises many types for unreadable files
        raise DatasetError(path, f"image cannot be read ({_first_line(err)})") from None
    return int(shape[1]), int(shape[0])
