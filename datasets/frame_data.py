"""Per-image masks and depth maps a capture may carry beside its images (nerfstudio's `mask_path` and
`depth_file_path`, instant-ngp's `depth_path`), read into tensors of the image's (downscaled) size.

Masks: single-channel images (an RGB image whose channels agree is taken as grey); nonzero = a pixel to train on,
zero = a pixel to leave out of the loss (nerfstudio's rule). Downscaled by k, a pixel is kept only when all k x k
pixels it averages are kept.

Depth maps: z-depth (distance along the camera's viewing axis, nerfstudio's default), 16-bit PNG or .npy, times a
unit (nerfstudio's depth_unit_scale_factor, 1e-3: millimetres) into capture units; 0 = no depth. Downscaled by k,
a pixel takes the value at the centre of its k x k block (nearest, as nerfstudio resizes depth).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from .dataset_error import DatasetError
from .images import stack_padded


def _load(path: Path, what: str, referenced_by: str) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(path, f"{what} is missing (named by {referenced_by})")
    try:
        return np.load(path, allow_pickle=False) if path.suffix.lower() == ".npy" else iio.imread(path)
    except Exception as err:  # imageio and numpy raise many types for unreadable files
        lines = str(err).strip().splitlines()
        raise DatasetError(path, f"{what} cannot be read ({err.__class__.__name__}: "
                                 f"{lines[0] if lines else ''})") from None


def _check_size(path: Path, array: np.ndarray, size: tuple[int, int], what: str, referenced_by: str) -> None:
    w, h = size
    if array.shape[:2] != (h, w):
        raise DatasetError(path, f"{what} is {array.shape[1]}x{array.shape[0]} but its image is {w}x{h} "
                                 f"({referenced_by})", f"A {what} has the full size of the image it belongs to.")


def read_mask(path: Path, referenced_by: str, size: tuple[int, int], downscale: int = 1) -> np.ndarray:
    """(H // downscale, W // downscale) bool: True where the pixel is trained on. size: the image's full (W, H)."""
    mask = _load(path, "mask", referenced_by)
    if mask.ndim == 3 and mask.shape[2] in (3, 4) and (mask[..., :3] == mask[..., :1]).all():
        mask = mask[..., 0]  # saved as RGB(A) grey
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise DatasetError(path, f"mask must be a single-channel image (nonzero: train on the pixel), got shape "
                                 f"{mask.shape} ({referenced_by})")
    _check_size(path, mask, size, "mask", referenced_by)
    return downscale_mask(mask != 0, downscale)


def downscale_mask(mask: np.ndarray, factor: int) -> np.ndarray:
    """A pixel of the downscaled mask is kept when every pixel it covers is (edges that do not divide: cropped)."""
    if factor <= 1:
        return mask
    h, w = mask.shape[0] // factor * factor, mask.shape[1] // factor * factor
    return mask[:h, :w].reshape(h // factor, factor, w // factor, factor).all(axis=(1, 3))


def read_depth(path: Path, referenced_by: str, size: tuple[int, int], scale: float,
               downscale: int = 1) -> np.ndarray:
    """(H // downscale, W // downscale) float32 z-depth: the file's values times `scale` (0 stays 0: no depth)."""
    depth = _load(path, "depth map", referenced_by)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2 or not (np.issubdtype(depth.dtype, np.integer) or np.issubdtype(depth.dtype, np.floating)):
        raise DatasetError(path, f"depth map must be one channel of numbers (16-bit PNG or .npy), got shape "
                                 f"{depth.shape} of {depth.dtype} ({referenced_by})")
    _check_size(path, depth, size, "depth map", referenced_by)
    depth = downscale_depth(depth, downscale).astype(np.float64) * scale
    if not np.isfinite(depth).all() or (depth < 0).any():
        raise DatasetError(path, f"depth map holds negative or non-finite values ({referenced_by})")
    return depth.astype(np.float32)


def downscale_depth(depth: np.ndarray, factor: int) -> np.ndarray:
    """Every factor-th value from the centre of each block (nearest; edges that do not divide: cropped)."""
    if factor <= 1:
        return depth
    h, w = depth.shape[0] // factor, depth.shape[1] // factor
    return depth[factor // 2::factor, factor // 2::factor][:h, :w]


def read_masks(paths: list[Path], referenced_by: list[str], sizes: list[tuple[int, int]],
               downscale: int = 1) -> list[np.ndarray]:
    """(H_i, W_i) bool each, in parallel; sizes: each image's full (W, H)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda a: read_mask(*a, downscale), zip(paths, referenced_by, sizes)))


def read_depths(paths: list[Path], referenced_by: list[str], sizes: list[tuple[int, int]], scale: float,
                downscale: int = 1) -> list[np.ndarray]:
    """(H_i, W_i) float32 each, in parallel; sizes: each image's full (W, H)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda a: read_depth(*a, scale, downscale), zip(paths, referenced_by, sizes)))


def read_frame_data(capture, indices: list[int], downscale: int = 1):
    """A Capture's masks (N, H, W) bool and depth maps (N, H, W) float32 in units of its poses, of images
    `indices` downscaled by `downscale`; each None where the capture has none. Images of several sizes: each map in
    the top-left corner of the largest (False / 0 elsewhere), as the images."""
    records = [capture.records[i] for i in indices]
    sizes = [capture.size(i) for i in indices]
    masks = depths = None
    if capture.mask_paths is not None:
        masks = _stacked(read_masks([capture.mask_paths[i] for i in indices], records, sizes, downscale))
    if capture.depth_paths is not None:
        depths = _stacked(read_depths([capture.depth_paths[i] for i in indices], records, sizes, capture.depth_unit,
                                      downscale))
    return masks, depths


def _stacked(arrays: list[np.ndarray]) -> torch.Tensor:
    """(N, H, W): stacked, or padded where the arrays differ in size."""
    same = all(a.shape == arrays[0].shape for a in arrays)
    return torch.from_numpy(np.stack(arrays) if same else stack_padded(arrays))
