"""Where a rendered video goes: which streams (RGB, depth), side by side in one file or one file each, and
optionally every frame as a PNG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np

from ..errors import FieldsError

STREAMS = ("rgb", "depth")
LAYOUTS = ("side-by-side", "separate")
DEFAULT_FPS = 24


@dataclass
class VideoOutput:
    """The files of a video: mp4 (imageio-ffmpeg) or gif, by the path's extension.

    side-by-side: one video, the streams left to right; separate: one video per stream, PATH_STEM_<stream>.<ext>.
    frames_dir: every frame also as DIR/frame_00000.png, ... (separate: DIR/<stream>/frame_00000.png, ...)."""

    path: Path
    streams: tuple[str, ...] = STREAMS
    layout: str = "side-by-side"
    fps: float | None = None  # None: DEFAULT_FPS
    frames_dir: Path | None = None

    def videos(self) -> dict[Path, tuple[str, ...]]:
        """Each video file and the streams it shows, left to right."""
        if self.layout == "side-by-side":
            return {self.path: self.streams}
        return {self.path.with_name(f"{self.path.stem}_{s}{self.path.suffix}"): (s,) for s in self.streams}

    def frame_folders(self) -> dict[Path, tuple[str, ...]]:
        """Each folder of PNG frames and the streams its frames show (none without frames_dir)."""
        if self.frames_dir is None:
            return {}
        if self.layout == "side-by-side":
            return {self.frames_dir: self.streams}
        return {self.frames_dir / s: (s,) for s in self.streams}

    def check(self) -> None:
        """FieldsError, before anything is rendered, for unknown streams or layout, or a frames folder that is a
        file or holds anything (stale frames would mix with the new ones)."""
        unknown = [s for s in self.streams if s not in STREAMS]
        if not self.streams or unknown:
            raise FieldsError(f"--outputs: {'unknown ' + ', '.join(unknown) if unknown else 'none given'}; choose "
                              f"from {', '.join(STREAMS)}")
        if self.layout not in LAYOUTS:
            raise FieldsError(f"--layout: unknown {self.layout!r}; choose from {', '.join(LAYOUTS)}")
        folder = self.frames_dir
        if folder is not None and (folder.is_file() or (folder.is_dir() and any(folder.iterdir()))):
            raise FieldsError(f"--frames-dir {folder}: {'is a file' if folder.is_file() else 'is not empty'}; "
                              "give a new or empty folder")

    def write(self, frames: dict[str, list[np.ndarray]]) -> list[Path]:
        """Write the videos, then the PNGs, of frames: stream -> one (H, W, 3) uint8 image per frame.
        Returns the videos written."""
        fps = self.fps or DEFAULT_FPS
        for path, streams in self.videos().items():
            path.parent.mkdir(parents=True, exist_ok=True)
            images = [np.concatenate(row, axis=1) for row in zip(*(frames[s] for s in streams))]
            if path.suffix == ".gif":
                imageio.mimsave(path, images, duration=1000 / fps, loop=0)
            else:
                imageio.mimsave(path, images, fps=fps, macro_block_size=1)
        for folder, streams in self.frame_folders().items():
            folder.mkdir(parents=True, exist_ok=True)
            for i, row in enumerate(zip(*(frames[s] for s in streams))):
                iio.imwrite(folder / f"frame_{i:05d}.png", np.concatenate(row, axis=1))
        return list(self.videos())
