"""CUDA code must not rot unseen on machines without a GPU: every .cu compiles with nvcc (torch-free, about
a second each), and the torch binding passes a syntax check against the installed torch headers."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from nfields.cuda.build import CUDA_SOURCES, SOURCE_DIR

NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH: install the CUDA toolkit to check .cu files")


def test_every_cuda_source_is_listed_in_the_build():
    on_disk = {p.name for p in SOURCE_DIR.glob("*.cu")} | {"cuda_ops.cpp"}
    assert on_disk == set(CUDA_SOURCES)


@needs_nvcc
@pytest.mark.parametrize("source", sorted(p.name for p in SOURCE_DIR.glob("*.cu")))
def test_cuda_source_compiles_with_nvcc(source, tmp_path):
    result = subprocess.run(
        [NVCC, "-std=c++17", "-O3", "--fmad=false", "-arch=sm_90", f"-I{SOURCE_DIR}", "-c", str(SOURCE_DIR / source),
         "-o", str(tmp_path / "kernel.o")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "kernel.o").stat().st_size > 0


@needs_nvcc
def test_cuda_binding_passes_a_syntax_check(tmp_path):
    """The binding against this torch's headers (a CPU build lacks one generated CUDA header: stubbed)."""
    from torch.utils.cpp_extension import include_paths

    cuda_include = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "include"
    if not (cuda_include / "cuda_runtime.h").exists():
        pytest.skip(f"no CUDA headers in {cuda_include}: set CUDA_HOME")
    stub = tmp_path / "c10" / "cuda" / "impl"
    stub.mkdir(parents=True)
    (stub / "cuda_cmake_macros.h").write_text("#pragma once\n")
    compiler = shutil.which("c++") or pytest.skip("no C++ compiler")
    args = [compiler, "-std=c++17", "-fsyntax-only", "-w", "-DTORCH_EXTENSION_NAME=fields_cuda_kernels",
            f"-I{sysconfig.get_paths()['include']}", f"-I{tmp_path}", f"-I{cuda_include}", f"-I{SOURCE_DIR}"]
    args += [f"-I{p}" for p in include_paths()] + [str(SOURCE_DIR / "cuda_ops.cpp")]
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:] + f"\n(python {sys.version})"
