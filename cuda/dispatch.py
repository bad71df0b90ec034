"""The one place Python reaches native code: per operation and device, CUDA kernels, CPU kernels or PyTorch.

`kernels_for(device)` gives the loaded extension for a device, or None when the PyTorch twin should run
(no build, a failed build, or FIELDS_KERNELS=torch). The renderer, the hash encoding and the feature
planes ask here and nowhere else; `report()` is what `fields doctor` prints.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from types import ModuleType

import torch

from . import build

OPERATIONS = ("march_rays", "march_rays_cascaded", "composite", "hash_encode", "plane_sample", "occupancy_update",
              "mlp", "vm_products", "view_inputs")
# Operations with a CPU kernel only; on a GPU, PyTorch runs them (tiny-cuda-nn's fused MLP is the GPU counterpart;
# TensoRF's products take the CUDA plane lookups one factor at a time; the view encoding's column operations are
# cheap there).
CPU_ONLY = ("mlp", "vm_products", "view_inputs")
_BUILDS = {"cpu": build.cpu_kernels, "cuda": build.cuda_kernels}


@dataclass(frozen=True)
class Choice:
    backend: str  # "cuda kernels", "cpu kernels" or "pytorch"
    reason: str


def forced_torch() -> bool:
    """FIELDS_KERNELS=torch turns every native kernel off (for comparisons and debugging)."""
    return os.environ.get("FIELDS_KERNELS", "auto").lower() == "torch"


def choose(device: torch.device | str) -> Choice:
    kind = torch.device(device).type
    if forced_torch():
        return Choice("pytorch", "FIELDS_KERNELS=torch")
    if kind not in _BUILDS:
        return Choice("pytorch", f"no native kernels for {kind} devices")
    result = _BUILDS[kind]()
    if result.module is None:
        return Choice("pytorch", result.reason)
    return Choice(f"{kind} kernels", result.reason)


def kernels_for(device: torch.device | str) -> ModuleType | None:
    """The native extension for tensors on `device`, or None for the PyTorch path."""
    kind = torch.device(device).type
    if forced_torch() or kind not in _BUILDS:
        return None
    return _BUILDS[kind]().module


def prepare_kernels(device: torch.device | str) -> Choice:
    """Build or load the native kernels for `device` now (a first build says what it builds and for how long),
    so that callers can keep the build out of what they time."""
    return choose(device)


def tiny_cuda_nn_status() -> str:
    if importlib.util.find_spec("tinycudann") is None:
        return "not installed (optional; pip install git+https://github.com/NVlabs/tiny-cuda-nn/#subdirectory=bindings/torch)"
    return "installed, not used: the hash grid runs on this project's kernels"


def report(devices: tuple[str, ...] = ("cpu", "cuda")) -> list[tuple[str, str, str, str]]:
    """Rows (device, operation, backend, reason) for every operation on every device type."""
    rows = []
    for device in devices:
        choice = choose(device)
        for op in OPERATIONS:
            if op in CPU_ONLY and device != "cpu":
                rows.append((device, op, "pytorch", f"no native kernel for {device} devices"))
            else:
                rows.append((device, op, choice.backend, choice.reason))
    return rows
