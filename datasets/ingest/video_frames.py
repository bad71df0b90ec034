"""Frames from a video for reconstruction: evenly spread, the sharpest of each stretch, blurry ones dropped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
from skimage.filters import laplace
from tqdm import tqdm

from .. import DatasetError

DEFAULT_FRAME_COUNT = 100
MIN_SHARPNESS_RATIO = 0.2  # a chosen frame sharper than this fraction of the median chosen frame is kept


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image (H, W, 3) uint8; larger is sharper."""
    grey = rgb.astype(np.float32).mean(axis=-1) / 255.0
    step = max(1, min(grey.shape) // 540)  # measure on about 540 rows: fast, and blur shows at any scale
    return float(laplace(grey[::step, ::step]).var())


@dataclass
class ExtractedFrames:
    paths: list[Path]
    sharpness: list[float]
    dropped_blurry: int
    video_frames: int


def _probe(video: Path) -> tuple[int, float]:
    if not video.is_file():
        raise DatasetError(video, "video file does not exist")
    try:
        n_frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(video))
    except Exception as err:  # ffmpeg reports failures as RuntimeError or OSError with its log
        raise DatasetError(video, f"video cannot be decoded ({str(err).strip().splitlines()[-1][:200]})",
                           "Check that the file plays, or re-encode it: ffmpeg -i IN -c:v libx264 OUT.mp4") from None
    if n_frames <= 0:
        raise DatasetError(video, "video holds no frames")
    return n_frames, seconds


def extract_frames(video: str | Path, out_dir: str | Path, count: int | None = None, fps: float | None = None,
                   min_sharpness_ratio: float = MIN_SHARPNESS_RATIO, progress: bool = True) -> ExtractedFrames:
    """Split the video into `count` equal stretches (or seconds * fps of them) and keep each one's sharpest frame.

    Chosen frames less sharp than min_sharpness_ratio x the median are dropped as blurry.
    Frames are written to out_dir as frame_00000.png, ... (index in the video).
    """
    video, out_dir = Path(video), Path(out_dir)
    n_frames, seconds = _probe(video)
    wanted = count if count is not None else (max(1, round(seconds * fps)) if fps else DEFAULT_FRAME_COUNT)
    wanted = min(wanted, n_frames)
    edges = np.linspace(0, n_frames, wanted + 1).round().astype(int)
    best: list[tuple[float, int, np.ndarray | None]] = [(-1.0, -1, None)] * wanted
    out_dir.mkdir(parents=True, exist_ok=True)
    index = -1
    try:
        reader = imageio_ffmpeg.read_frames(str(video))
        meta = next(reader)
        w, h = meta["size"]
        bar = tqdm(total=n_frames, desc=f"frames of {video.name}", unit="frame", disable=not progress)
        for index, raw in enumerate(reader):
            frame = np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)
            window = min(int(np.searchsorted(edges, index, side="right")) - 1, wanted - 1)
            score = sharpness(frame)
            if score > best[window][0]:
                best[window] = (score, index, frame.copy())
            bar.update()
        bar.close()
    except DatasetError:
        raise
    except Exception as err:  # ffmpeg errors surface as RuntimeError / OSError / StopIteration
        raise DatasetError(video, f"video cannot be decoded at frame {index + 1} ({err.__class__.__name__}: "
                           f"{str(err).strip()[:200]})", "Re-encode it: ffmpeg -i IN -c:v libx264 OUT.mp4") from None
    chosen = [b for b in best if b[2] is not None]
    if not chosen:
        raise DatasetError(video, "no frame could be decoded")
    median = float(np.median([score for score, _, _ in chosen]))
    kept = [b for b in chosen if b[0] >= min_sharpness_ratio * median]
    paths = []
    for _, idx, frame in kept:
        paths.append(out_dir / f"frame_{idx:05d}.png")
        iio.imwrite(paths[-1], frame)
    return ExtractedFrames(paths, [score for score, _, _ in kept], len(chosen) - len(kept), n_frames)
