"""Mixed precision for training: autocast around rendering and the loss, and a gradient scaler for float16.

By default (`mixed_precision` None) it is on for CUDA runs of backbones whose reference trains in half precision
(`Field.trains_in_half_precision`: the hash grid, as instant-ngp) and off on the CPU, where float16 has no fast
path; asked for on a CPU, it autocasts to bfloat16 (fast only on CPUs with bfloat16 instructions)."""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch


class Precision:
    """Autocast and loss scaling for one run on `device` (both do nothing when not `enabled`)."""

    def __init__(self, enabled: bool, device: torch.device):
        self.enabled, self.device_type = enabled, device.type
        self.dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        # float16 gradients underflow without scaling; bfloat16 has float32's range
        self.scaler = torch.amp.GradScaler(device.type, enabled=enabled and self.dtype == torch.float16)

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)

    def backward(self, loss: torch.Tensor) -> None:
        """loss.backward(), the loss scaled for float16."""
        self.scaler.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """optimizer.step() on the unscaled gradients (skipped when they are not finite), then the scale's update."""
        self.scaler.step(optimizer)
        self.scaler.update()


def uses_mixed_precision(setting: bool | None, device: torch.device, trains_in_half_precision: bool) -> bool:
    """The run's choice: `setting` when given, else on for CUDA runs of backbones that train in half precision."""
    if setting is not None:
        return setting
    return device.type == "cuda" and trains_in_half_precision
