"""One browser tab: its render thread, adaptive resolution and the frames it was sent."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..datasets import Cameras, NDCFrame
from ..fields import Field
from ..renderers import VolumeRenderer
from .rendering import camera_to_world, frame_size, moving_frame_size, pinhole, render_frame
from .share import ComputeShare


@dataclass
class Frame:
    """A frame sent to the browser: the camera it was rendered for, its pixels, kind and render time."""

    camera: Cameras
    image: np.ndarray  # (H, W, 3) uint8
    kind: str  # "moving" (reduced resolution) or "still" (full resolution)
    output: str
    seconds: float
    sent_at: float


class ClientSession:
    """Renders for one client on its own thread, starting with a quick frame of the current camera.

    While the camera moves, frames are rendered at a resolution chosen to take `moving_seconds`: the time
    per pixel is measured on full frames, the fixed cost per frame on quick ones. Once the camera has been
    still for `still_after` seconds, a full-resolution frame is rendered in row chunks; a newer camera
    interrupts it between chunks.
    """

    def __init__(self, client, field: Field, renderer: VolumeRenderer, share: ComputeShare, max_height: int,
                 moving_seconds: float = 1 / 15, still_after: float = 0.15, ndc: NDCFrame | None = None):
        self.client, self.field, self.renderer, self.share = client, field, renderer, share
        self.ndc = ndc  # forward-facing scenes: browser cameras map their rays into the training NDC frame
        self.max_height, self.output = max_height, "RGB"
        self.crop: torch.Tensor | None = None  # a box (6,) outside which this tab's renders show nothing
        self.moving_seconds, self.still_after = moving_seconds, still_after
        self.seconds_per_pixel: float | None = None  # measured on full-resolution frames
        self.overhead = 0.0  # seconds per frame beyond the per-pixel cost, measured on quick frames
        self.frames_sent = 0
        self.last_frame: Frame | None = None
        self.on_frame = None  # optional callable(Frame), e.g. to show statistics
        self._cond = threading.Condition()
        self._version, self._field_version, self._last_change = 0, 0, time.monotonic()
        self._shown, self._full_done = -1, (-1, -1)
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name=f"viewer-client-{client.client_id}", daemon=True)
        self._thread.start()

    # ----- events -----
    def view_changed(self) -> None:
        """The camera or a setting changed: render a quick frame now, a full one when still."""
        with self._cond:
            self._version += 1
            self._last_change = time.monotonic()
            self._cond.notify_all()

    def field_changed(self) -> None:
        """The weights changed (training): render the still frame again."""
        with self._cond:
            self._field_version += 1
            self._cond.notify_all()

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ----- rendering -----
    def _next_job(self) -> tuple[str, int, int] | None:
        with self._cond:
            while not self._stopped:
                version, field_version = self._version, self._field_version
                if version != self._shown:
                    return "moving", version, field_version
                if (version, field_version) != self._full_done:
                    wait = self.still_after - (time.monotonic() - self._last_change)
                    if wait <= 0:
                        return "still", version, field_version
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _camera(self, kind: str) -> Cameras:
        cam = self.client.camera
        full_height = min(self.max_height, cam.image_height)
        width, height = frame_size(cam.aspect, full_height**2 * cam.aspect, full_height)
        if kind == "moving":
            width, height = moving_frame_size(cam.aspect, full_height, self.seconds_per_pixel, self.overhead,
                                              self.moving_seconds)
        return pinhole(camera_to_world(cam.wxyz, cam.position), cam.fov, width, height, self.ndc)

    def _update_costs(self, kind: str, seconds: float, pixels: int) -> None:
        if kind == "still" or self.seconds_per_pixel is None:
            spp = seconds / pixels
            self.seconds_per_pixel = spp if self.seconds_per_pixel is None else 0.5 * (self.seconds_per_pixel + spp)
        else:
            self.overhead = 0.5 * self.overhead + 0.5 * max(0.0, seconds - self.seconds_per_pixel * pixels)

    def _loop(self) -> None:
        while (job := self._next_job()) is not None:
            kind, version, field_version = job
            camera = self._camera(kind)
            output, crop = self.output, self.crop
            start = time.perf_counter()
            stale = (lambda: self._stopped) if kind == "moving" else (lambda: self._stopped or self._version != version)
            image = render_frame(self.field, self.renderer, camera, output, self.share, interrupted=stale,
                                 crop=crop)
            seconds = time.perf_counter() - start
            if image is None:
                continue
            self._update_costs(kind, seconds, camera.width * camera.height)
            if self._stopped:  # the tab closed while rendering
                return
            self.client.scene.set_background_image(image, format="jpeg", jpeg_quality=90)
            frame = Frame(camera, image, kind, output, seconds, time.time())
            with self._cond:
                self.last_frame = frame
                self.frames_sent += 1
                self._shown = version
                if kind == "still":
                    self._full_done = (version, field_version)
                self._cond.notify_all()
            if self.on_frame is not None:
                self.on_frame(frame)

    def wait_for_frame(self, predicate, timeout: float) -> Frame | None:
        """Block until the last frame satisfies `predicate(frame)`; None after `timeout` seconds."""
        with self._cond:
            ok = self._cond.wait_for(lambda: self.last_frame is not None and predicate(self.last_frame), timeout)
            return self.last_frame if ok else None
