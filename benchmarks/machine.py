"""The machine a benchmark ran on, for its printout: CPU model, cores, vector extensions, ATen's code path."""

from __future__ import annotations

import os
import platform

import torch

VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "amx_tile")


def cpu_line() -> str:
    """E.g. "Intel(R) Xeon(R) Processor, 2 cores, avx2 fma avx512f, ATen AVX512" (from /proc/cpuinfo)."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    vector = " ".join(f for f in VECTOR_FLAGS if f in flags) or "no AVX2"
    return f"{model}, {os.cpu_count()} cores, {vector}, ATen {torch.backends.cpu.get_cpu_capability()}"
