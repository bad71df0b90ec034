"""Compiles the native kernels with torch.utils.cpp_extension on first use, into a cache, and loads them.

A build that fails is reported once, in one line, and the caller falls back to PyTorch. The cache is
`$FIELDS_KERNEL_CACHE` or ~/.cache/fields/kernels; `python -m nfields.cuda.build` builds ahead of time.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

SOURCE_DIR = Path(__file__).parent / "src"
CPU_SOURCES = ["cpu_ops.cpp"]
CUDA_SOURCES = ["cuda_ops.cpp", "march.cu", "composite.cu", "hash_encode.cu", "occupancy.cu", "plane_sample.cu"]
# Hopper (sm_90) and the generations before it; PTX for newer cards.
CUDA_ARCHS = ["70", "75", "80", "86", "89", "90"]
CPU_FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fopenmp"]
CUDA_FLAGS = ["-O3", "--fmad=false"] + [
    f"-gencode=arch=compute_{a},code=sm_{a}" for a in CUDA_ARCHS
] + ["-gencode=arch=compute_90,code=compute_90"]


@dataclass(frozen=True)
class BuildResult:
    module: ModuleType | None
    reason: str  # why it is unavailable, or where it was loaded from


def cache_dir(kind: str, digest: str) -> Path:
    """One build folder per Python, torch, backend and source version."""
    root = Path(os.environ.get("FIELDS_KERNEL_CACHE", Path.home() / ".cache" / "fields" / "kernels"))
    tag = f"py{sys.version_info.major}{sys.version_info.minor}-torch{torch.__version__.replace('+', '-')}-{kind}"
    path = root / tag / digest
    path.mkdir(parents=True, exist_ok=True)
    return path


def compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++"))


def source_digest() -> str:
    """A hash of every kernel source and header: part of the extension's name, so that any change
    (a header included, too) builds afresh instead of loading a stale build."""
    digest = hashlib.sha256()
    for path in sorted(SOURCE_DIR.iterdir()):
        if path.suffix in (".h", ".cpp", ".cu"):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def _load(name: str, sources: list[str], kind: str, **flags) -> BuildResult:
    from torch.utils.cpp_extension import load

    digest = source_digest()
    folder = cache_dir(kind, digest)
    try:
        module = load(name=f"{name}_{digest}", sources=[str(SOURCE_DIR / s) for s in sources],
                      build_directory=str(folder), extra_include_paths=[str(SOURCE_DIR)], verbose=False, **flags)
    except Exception as error:  # a compiler or toolchain problem of any kind: fall back, say why
        reason = f"build failed: {str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__}"
        warnings.warn(f"fields: {kind} kernels unavailable ({reason}); using the PyTorch path", stacklevel=3)
        return BuildResult(None, reason)
    return BuildResult(module, f"built in {folder}")


@functools.cache
def cpu_kernels() -> BuildResult:
    if compiler() is None:
        return BuildResult(None, "no C++ compiler found (set CXX or install g++)")
    return _load("fields_cpu_kernels", CPU_SOURCES, "cpu", extra_cflags=CPU_FLAGS, extra_ldflags=["-fopenmp"])


@functools.cache
def cuda_kernels() -> BuildResult:
    if not torch.cuda.is_available():
        return BuildResult(None, "no CUDA device visible to torch" if torch.version.cuda else "torch is a CPU build")
    from torch.utils.cpp_extension import CUDA_HOME

    if CUDA_HOME is None:
        return BuildResult(None, "nvcc not found (set CUDA_HOME)")
    return _load("fields_cuda_kernels", CUDA_SOURCES, "cuda", extra_cflags=["-O3"], extra_cuda_cflags=CUDA_FLAGS)


if __name__ == "__main__":
    for label, result in (("CPU", cpu_kernels()), ("CUDA", cuda_kernels())):
        print(f"{label}: {'ok' if result.module else 'unavailable'} ({result.reason})")
