"""COLMAP's stages on screen: a bar per stage (images featured, pairs matched, images registered)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

from tqdm import tqdm


class Progress:
    """COLMAP's stages on screen (stderr): a line per plan or notice, a tqdm bar per stage."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.timings: list[str] = []  # "COLMAP features: 100/100 images in 34.1 s", for colmap.log

    def say(self, line: str) -> None:
        if self.enabled:
            tqdm.write(line, file=sys.stderr)

    @contextlib.contextmanager
    def bar(self, desc: str, total: int | None, unit: str) -> Iterator[tqdm]:
        start = time.perf_counter()
        with tqdm(total=total, desc=desc, unit=unit, disable=not self.enabled, file=sys.stderr, dynamic_ncols=True,
                  mininterval=0.5) as bar:
            yield bar
            count = f"{bar.n}/{bar.total}" if bar.total else f"{bar.n}"
            self.timings.append(f"{desc}: {count} {unit}s in {time.perf_counter() - start:.1f} s")


def advance(bar: tqdm, count: int) -> None:
    """bar.update, counting even when the bar is not shown (tqdm then leaves n alone): for the timings."""
    if bar.disable:
        bar.n += count
    else:
        bar.update(count)


class MappingBar:
    """Images registered in the model being built: 2 at its initial pair, one more per image registered."""

    def __init__(self, bar: tqdm):
        self.bar, self.current = bar, 0

    def initial_pair(self) -> None:
        self.set(2)

    def next_image(self) -> None:
        self.set(self.current + 1)

    def set(self, count: int) -> None:
        self.current = count
        self.bar.n = min(count, self.bar.total)
        self.bar.set_postfix_str("registered", refresh=False)
        self.bar.refresh()

    def done(self, registered: int) -> None:
        self.set(registered)
        self.bar.set_postfix_str("registered in the largest model")
