"""`fields doctor`: which backend runs each native operation here, and why the others are off."""

from __future__ import annotations

import platform
import shutil
import subprocess


def add_parser(sub) -> None:
    p = sub.add_parser("doctor", help="which backend (CUDA kernels, CPU kernels, PyTorch) runs each operation, and why")
    p.set_defaults(handler=run)


def run(args) -> int:
    print(doctor_report())
    return 0


def _first_line(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return "not runnable"
    return out[0] if out else "no output"


def _nvcc_version(nvcc: str) -> str:
    lines = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=20).stdout.splitlines()
    release = [line for line in lines if "release" in line]
    return release[0].strip() if release else "unknown version"


def doctor_report() -> str:
    """A plain-text report; building the CPU kernels on first call (about a minute) if they are not cached."""
    import torch

    from ..cuda import build, dispatch

    compiler = build.compiler()
    nvcc = shutil.which("nvcc")
    lines = [
        f"python {platform.python_version()}, torch {torch.__version__}, CUDA in torch: {torch.version.cuda or 'none'}",
        f"CUDA devices: {torch.cuda.device_count() if torch.cuda.is_available() else 0}"
        + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""),
        f"C++ compiler: {compiler + ' — ' + _first_line([compiler, '--version']) if compiler else 'not found'}",
        f"nvcc: {nvcc + ' — ' + _nvcc_version(nvcc) if nvcc else 'not found'}",
        f"CPU threads for torch: {torch.get_num_threads()}",
        f"tiny-cuda-nn: {dispatch.tiny_cuda_nn_status()}",
        "",
    ]
    rows = dispatch.report()
    width = max(len("operation"), *(len(op) for _, op, _, _ in rows)) + 2
    lines.append(f"{'device':<7}{'operation':<{width}}{'backend':<14}why")
    for device, op, backend, reason in rows:
        lines.append(f"{device:<7}{op:<{width}}{backend:<14}{reason}")
    return "\n".join(lines)
