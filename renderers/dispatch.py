"""The one place the renderer reaches native code: picks an implementation of each operation per device.

Today every device uses the pure-PyTorch reference (`torch_ops`); native CUDA and CPU kernels
register here, keyed by device type, without the renderer changing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from . import torch_ops


@dataclass(frozen=True)
class RenderOps:
    ray_aabb_intersect: Callable
    march_rays: Callable
    ray_starts: Callable
    transmittance: Callable
    composite: Callable


TORCH_OPS = RenderOps(
    ray_aabb_intersect=torch_ops.ray_aabb_intersect,
    march_rays=torch_ops.march_rays,
    ray_starts=torch_ops.ray_starts,
    transmittance=torch_ops.transmittance,
    composite=torch_ops.composite,
)

_NATIVE: dict[str, RenderOps] = {}


def ops_for(device: torch.device | str) -> RenderOps:
    """The operations to use for tensors on `device`: native kernels when registered, else PyTorch."""
    return _NATIVE.get(torch.device(device).type, TORCH_OPS)
