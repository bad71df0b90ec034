"""The torch device a run uses: `--device auto|cpu|cuda`."""

from __future__ import annotations

import torch

from ..errors import FieldsError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FieldsError("--device cuda: no CUDA device is available to PyTorch (torch.cuda.is_available() is False)")
    return torch.device(name)
