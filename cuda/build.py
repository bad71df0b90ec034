"""Compiles the native kernels with torch.utils.cpp_extension on first use, into a cache, and loads them.

One build serves every later process: the build folder is keyed by everything that changes the binary (the
sources, flags, Python and torch versions, the compiler, and what its `-march` means on this CPU), the
sources are copied into it so that the compile command names no checkout, and a finished build is imported
directly, without asking ninja again. An OS lock (flock, released when its process dies) guards each folder:
a torch `lock` file found while holding it was left by an interrupted build and is removed; a process that
waits on another's build gives up after `$FIELDS_KERNEL_WAIT` seconds (default 600) and uses PyTorch.

A build that fails is reported once, in one line, and the caller falls back to PyTorch. The cache is
`$FIELDS_KERNEL_CACHE` or ~/.cache/fields/kernels; `python -m nfields.cuda.build` builds ahead of time.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

SOURCE_DIR = Path(__file__).parent / "src"
CPU_SOURCES = ["cpu_ops.cpp", "cpu_binding.cpp", "fused_mlp.cpp", "fused_mlp_avx2.cpp", "fused_mlp_avx512.cpp"]
CUDA_SOURCES = ["cuda_ops.cpp", "march.cu", "composite.cu", "hash_encode.cu", "occupancy.cu", "plane_sample.cu"]
# Hopper (sm_90) and the generations before it; PTX for newer cards.
CUDA_ARCHS = ["70", "75", "80", "86", "89", "90"]
# The instruction sets the CPU build may use: this CPU's (native) unless $FIELDS_KERNEL_MARCH names another gcc
# -march, e.g. x86-64-v3 (AVX2 + FMA, no AVX-512) to build and measure what an AVX2-only machine runs.
DEFAULT_MARCH = "native"
CUDA_FLAGS = ["-O3", "--fmad=false"] + [
    f"-gencode=arch=compute_{a},code=sm_{a}" for a in CUDA_ARCHS
] + ["-gencode=arch=compute_90,code=compute_90"]
CUDA_BUILD = {"extra_cflags": ["-O3"], "extra_cuda_cflags": CUDA_FLAGS}
DURATION = {"cpu": "30-90 s on 2 cores", "cuda": "several minutes"}
DONE = "built"  # written into the build folder once the extension has been built and imported


def cpu_march() -> str:
    return os.environ.get("FIELDS_KERNEL_MARCH", DEFAULT_MARCH)


def cpu_build() -> dict:
    """The CPU build's flags: -ffp-contract=off (no fused multiply-adds, so sample positions round as in the twin)."""
    return {"extra_cflags": ["-O3", f"-march={cpu_march()}", "-ffp-contract=off", "-fopenmp"],
            "extra_ldflags": ["-fopenmp"]}


@dataclass(frozen=True)
class BuildResult:
    module: ModuleType | None
    reason: str  # why it is unavailable, or where it was loaded from


class WaitedTooLong(Exception):
    """Another process held the build folder's lock for longer than $FIELDS_KERNEL_WAIT seconds."""


def cache_dir(kind: str, key: str) -> Path:
    """One build folder per Python, torch, backend and build key (see `build_key`)."""
    root = Path(os.environ.get("FIELDS_KERNEL_CACHE", Path.home() / ".cache" / "fields" / "kernels"))
    tag = f"py{sys.version_info.major}{sys.version_info.minor}-torch{torch.__version__.replace('+', '-')}-{kind}"
    path = root / tag / key
    path.mkdir(parents=True, exist_ok=True)
    return path


def compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++"))


def read_sources() -> dict[str, bytes]:
    """Every kernel source and header by name: the build compiles these bytes, copied into its folder."""
    return {p.name: p.read_bytes() for p in sorted(SOURCE_DIR.iterdir()) if p.suffix in (".h", ".cpp", ".cu")}


def source_digest(sources: dict[str, bytes] | None = None) -> str:
    """A hash of every kernel source and header, so that any change (a header included, too) builds afresh."""
    digest = hashlib.sha256()
    for name, text in (read_sources() if sources is None else sources).items():
        digest.update(name.encode() + text)
    return digest.hexdigest()[:12]


@functools.cache
def toolchain(cxx: str, march: str = DEFAULT_MARCH) -> dict[str, str]:
    """The compiler (resolved path and version) and the instruction sets `-march=<march>` selects with it here."""
    probe = subprocess.run([cxx, f"-march={march}", "-E", "-v", "-x", "c++", os.devnull, "-o", os.devnull],
                           capture_output=True, text=True, timeout=60)
    version = next((line.strip() for line in probe.stderr.splitlines() if " version " in line), "unknown")
    target = [token for token in probe.stderr.split() if token.startswith(("-m", "+"))]  # gcc -m…, clang +feature
    return {"compiler": os.path.realpath(cxx), "version": version, "cpu": " ".join(target)}


def build_key(kind: str, flags: dict, sources: dict[str, bytes] | None = None) -> tuple[str, dict]:
    """(key, what it hashes): the sources, flags, Python, torch, compiler and CPU. The environment reaches a build
    only through these: CXX through the resolved compiler, CC and CUDA_HOME (the CUDA build's) named here."""
    inputs = {"sources": source_digest(sources), "kind": kind, "flags": flags, "python": sys.version.split()[0],
              "torch": torch.__version__, **toolchain(compiler() or "c++", cpu_march())}
    if kind == "cuda":
        from torch.utils.cpp_extension import CUDA_HOME

        inputs |= {"cuda": torch.version.cuda, "cuda_home": CUDA_HOME, "cc": os.environ.get("CC")}
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]
    return digest, inputs


def _try_lock(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Holds the folder's flock (the OS drops it when its process dies, however it ends); waits at most
    $FIELDS_KERNEL_WAIT seconds for another process's build, then raises WaitedTooLong."""
    wait_s = float(os.environ.get("FIELDS_KERNEL_WAIT", "600"))
    with open(folder / "fields.lock", "w") as handle:
        if not _try_lock(handle):
            print(f"fields: waiting for another process building the kernels in {folder}", file=sys.stderr)
            deadline = time.monotonic() + wait_s
            while not _try_lock(handle):
                if time.monotonic() > deadline:
                    raise WaitedTooLong(f"another process was still building them in {folder} after {wait_s:.0f} s")
                time.sleep(0.5)
        yield


def _import_built(folder: Path, name: str) -> ModuleType | None:
    """The finished build in `folder`, imported without ninja; None if there is none (or it does not import,
    in which case it is removed so that it is built again)."""
    library = folder / f"{name}.so"
    if not (folder / DONE).exists() or not library.exists():
        return None
    spec = importlib.util.spec_from_file_location(name, library)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError:
        (folder / DONE).unlink()
        library.unlink()
        return None
    return module


@contextlib.contextmanager
def _pinned_compiler(cxx: str) -> Iterator[None]:
    """torch reads $CXX when it writes the compile command: give it the resolved compiler the key names."""
    previous = os.environ.get("CXX")
    os.environ["CXX"] = cxx
    try:
        yield
    finally:
        if previous is None:
            del os.environ["CXX"]
        else:
            os.environ["CXX"] = previous


def _build(folder: Path, name: str, sources: list[str], kind: str, files: dict[str, bytes], inputs: dict,
           flags: dict) -> ModuleType:
    """Compiles `sources` (copied with every header into folder/src) into folder; call with the folder locked."""
    from torch.utils.cpp_extension import load

    src = folder / "src"
    src.mkdir(exist_ok=True)
    for file, text in files.items():
        (src / file).write_bytes(text)
    stale = folder / "lock"  # torch's; while we hold the flock no live build owns it
    if stale.exists():
        print(f"fields: removing the lock file an interrupted kernel build left: {stale}", file=sys.stderr)
        stale.unlink()
    print(f"fields: building the {kind.upper()} kernels ({', '.join(sources)}) in {folder}: {DURATION[kind]}, "
          "once per source version, compiler and CPU", file=sys.stderr)
    start = time.monotonic()
    with _pinned_compiler(inputs["compiler"]):
        module = load(name=name, sources=[str(src / s) for s in sources], build_directory=str(folder),
                      extra_include_paths=[str(src)], verbose=False, **flags)
    seconds = time.monotonic() - start
    (folder / DONE).write_text(json.dumps({**inputs, "build_seconds": round(seconds, 1)}, indent=1) + "\n")
    print(f"fields: {kind.upper()} kernels built in {seconds:.0f} s", file=sys.stderr)
    return module


def _load(name: str, sources: list[str], kind: str, **flags) -> BuildResult:
    try:
        files = read_sources()
        key, inputs = build_key(kind, flags, files)
        folder = cache_dir(kind, key)
        with folder_lock(folder):
            module = _import_built(folder, f"{name}_{key}")
            module = module or _build(folder, f"{name}_{key}", sources, kind, files, inputs, flags)
    except WaitedTooLong as error:
        warnings.warn(f"fields: {kind} kernels unavailable ({error}); using the PyTorch path", stacklevel=3)
        return BuildResult(None, f"not built yet: {error}")
    except Exception as error:  # a compiler or toolchain problem of any kind: fall back, say why
        reason = f"build failed: {str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__}"
        warnings.warn(f"fields: {kind} kernels unavailable ({reason}); using the PyTorch path", stacklevel=3)
        return BuildResult(None, reason)
    return BuildResult(module, f"built in {folder}")


@functools.cache
def cpu_kernels() -> BuildResult:
    if compiler() is None:
        return BuildResult(None, "no C++ compiler found (set CXX or install g++)")
    return _load("fields_cpu_kernels", CPU_SOURCES, "cpu", **cpu_build())


@functools.cache
def cuda_kernels() -> BuildResult:
    if not torch.cuda.is_available():
        return BuildResult(None, "no CUDA device visible to torch" if torch.version.cuda else "torch is a CPU build")
    from torch.utils.cpp_extension import CUDA_HOME

    if CUDA_HOME is None:
        return BuildResult(None, "nvcc not found (set CUDA_HOME)")
    return _load("fields_cuda_kernels", CUDA_SOURCES, "cuda", **CUDA_BUILD)


if __name__ == "__main__":
    for label, result in (("CPU", cpu_kernels()), ("CUDA", cuda_kernels())):
        print(f"{label}: {'ok' if result.module else 'unavailable'} ({result.reason})")
