"""Splitting work over processes: torchrun's RANK / WORLD_SIZE pick a shard; rank 0 makes shared files."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ...errors import FieldsError


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) without it."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if not 0 <= rank < world:
        raise FieldsError(f"RANK={rank} is not in [0, WORLD_SIZE={world})")
    return rank, world


def shard(items: list, rank: int, world: int) -> list:
    """Item i goes to rank i % world."""
    return items[rank::world]


def wait_for_file(path: Path, timeout: float, poll: float = 0.5) -> None:
    """Block until rank 0 has written `path` (atomically), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if time.monotonic() > deadline:
            raise FieldsError(f"{path}: not written by rank 0 within {timeout:.0f} s; is rank 0 running, and "
                              "does it write into the same --out folder?")
        time.sleep(poll)
