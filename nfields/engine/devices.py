"""The torch device a run uses: `--device auto|cpu|cuda|cuda:N`; under torchrun, `cuda` and `auto` mean the
process's own GPU, cuda:LOCAL_RANK."""

from __future__ import annotations

import os
import re

import torch

from ..errors import FieldsError

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(name: str) -> None:
    """FieldsError unless `name` is auto, cpu, cuda or cuda:N."""
    if not isinstance(name, str) or not DEVICE_PATTERN.fullmatch(name):
        raise FieldsError(f"--device: must be auto, cpu, cuda or cuda:N (N a GPU index), got {name!r}")


def resolve_device(name: str) -> torch.device:
    check_device_name(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise FieldsError(f"--device {name}: no CUDA device is available to PyTorch (torch.cuda.is_available() "
                          "is False)")
    count = torch.cuda.device_count()
    if name == "cuda":
        if "LOCAL_RANK" not in os.environ:
            return torch.device("cuda")
        index = int(os.environ["LOCAL_RANK"])
        if index >= count:
            raise FieldsError(f"--device cuda: this is local rank {index} (torchrun's LOCAL_RANK) but only {count} "
                              "CUDA device(s) are visible; launch at most that many processes per node, or give "
                              "--device cuda:N")
        return torch.device("cuda", index)
    index = int(name.split(":")[1])
    if index >= count:
        raise FieldsError(f"--device {name}: only {count} CUDA device(s) are visible (cuda:0 to cuda:{count - 1})")
    return torch.device("cuda", index)
