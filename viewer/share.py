"""How training and viewer renders share one machine.

Policy: training steps and render chunks never run at the same time; one lock serialises them, so each
gets all of PyTorch's threads and a render never reads weights halfway through an optimiser step. The
lock is handed over fairly: a waiting render chunk goes before the trainer's next step. The viewer's share
of the time is capped: after a render chunk of t seconds, the trainer is owed t * (1 - share) / share
seconds of steps before the next chunk starts (with share = 0.5: one step's worth of training, then one
chunk of rendering, alternately). Without a trainer, renders only take turns with each other.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager


class ComputeShare:
    def __init__(self, viewer_share: float = 0.5):
        if not 0 < viewer_share <= 1:
            raise ValueError("viewer_share must be in (0, 1]")
        self.viewer_share = viewer_share
        self._cond = threading.Condition()
        self._busy = False
        self._renders_waiting = 0
        self._training = False
        self._owed_training = 0.0  # seconds of training due before the next render chunk
        self.render_seconds = 0.0
        self.train_seconds = 0.0

    def set_training(self, active: bool) -> None:
        """Whether a trainer is running (the cap applies only then)."""
        with self._cond:
            self._training = active
            if not active:
                self._owed_training = 0.0
            self._cond.notify_all()

    def _render_may_start(self) -> bool:
        return not self._busy and (not self._training or self._owed_training <= 0)

    @contextmanager
    def train_step(self):
        with self._cond:
            # Yield to a waiting render unless the viewer has used up its share.
            self._cond.wait_for(lambda: not self._busy and (self._renders_waiting == 0 or self._owed_training > 0))
            self._busy = True
        start = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - start
            with self._cond:
                self._busy = False
                self.train_seconds += spent
                self._owed_training = max(0.0, self._owed_training - spent)
                self._cond.notify_all()

    @contextmanager
    def render_chunk(self):
        with self._cond:
            self._renders_waiting += 1
            self._cond.wait_for(self._render_may_start)
            self._renders_waiting -= 1
            self._busy = True
        start = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - start
            with self._cond:
                self._busy = False
                self.render_seconds += spent
                if self._training:
                    self._owed_training += spent * (1 - self.viewer_share) / self.viewer_share
                self._cond.notify_all()
