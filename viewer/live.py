"""The viewer live during training (`fields train --view`): a TrainingMonitor over the trainer's own field."""

from __future__ import annotations

import time

from .scene_layers import load_layers
from .server import ViewerServer
from .share import ComputeShare


class LiveViewer:
    """Serves the field being trained; steps and renders alternate through a ComputeShare (see share.py).

    Tabs re-render the current weights at most every `refresh_seconds`; the status line shows the step
    and the latest validation PSNR.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, viewer_share: float = 0.5,
                 refresh_seconds: float = 3.0, verbose: bool = True):
        self.host, self.port, self.verbose = host, port, verbose
        self.share = ComputeShare(viewer_share)
        self.refresh_seconds = refresh_seconds
        self.server: ViewerServer | None = None
        self._last_refresh = 0.0

    def start(self, trainer) -> None:
        self.server = ViewerServer(trainer.field, trainer.renderer, trainer.cameras, trainer.config.field,
                                   self.host, self.port, share=self.share, run_folder=trainer.run_dir,
                                   step=trainer.step, verbose=self.verbose,
                                   layers=lambda: load_layers(trainer.config, trainer.images))
        self.share.set_training(True)

    def step_guard(self):
        return self.share.train_step()

    def after_step(self, trainer, val_psnr: float | None) -> None:
        now = time.monotonic()
        if now - self._last_refresh >= self.refresh_seconds:
            self._last_refresh = now
            self.server.set_training_status(trainer.step, val_psnr)

    def finish(self, trainer) -> None:
        self.share.set_training(False)
        if self.server is not None:
            self.server.set_training_status(trainer.step, None)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
