"""Freed host memory kept for reuse between training steps.

A CPU training step allocates and frees the same large tensors every time (hash encodings, MLP activations,
the hash table's gradient: up to about 20 MB each). glibc's malloc returns blocks above its mmap threshold to
the kernel as soon as they are freed, so the next step gets them back as fresh pages, each zeroed by the kernel
on its first touch: about 8,000 page faults a lego step. With the threshold at glibc's maximum (32 MB) and the
trim threshold raised, that memory stays in the process: 470-630 faults a step, the step 8-15 % faster
(docs/kernels.md). Allocators such as jemalloc or tcmalloc (LD_PRELOAD) keep freed memory by themselves.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
GLIBC_MAX_MMAP_THRESHOLD = 32 << 20  # the largest value glibc accepts on 64-bit systems
TRIM_THRESHOLD = 512 << 20  # freed memory at the heap's top beyond this goes back to the system


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks of up to 32 MB for reuse (process-wide). False where the C
    library has no mallopt or refuses (not Linux, not glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, GLIBC_MAX_MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                                    TRIM_THRESHOLD))
