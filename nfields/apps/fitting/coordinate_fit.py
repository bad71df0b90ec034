"""What image and SDF fitting share: building a backbone's coordinate network, its optimiser, the loop."""

from __future__ import annotations

import time
from typing import Callable

import torch
from tqdm import tqdm

from ...errors import FieldsError
from ...fields import UnknownFieldError, field_class
from ...fields.optimizer_spec import adam


def build_coordinate_network(field: str, dim: int, n_out: int) -> torch.nn.Module:
    """Backbone `field`'s coordinate network (N, dim) in [-1, 1] -> (N, n_out); errors list valid names."""
    try:
        return field_class(field).coordinate_network(dim, n_out)
    except UnknownFieldError as err:
        raise FieldsError(f"--field: {err}") from None


def make_optimizer(network, lr: float | None = None, decoder_lr: float | None = None) -> torch.optim.Adam:
    """Adam with `lr` on the encoder (grids, planes, tables) and `decoder_lr` on the head (None: the
    network's own learning rates)."""
    lr = network.lr if lr is None else lr
    decoder_lr = network.decoder_lr if decoder_lr is None else decoder_lr
    named = dict(network.named_parameters())
    split = network.parameter_split()
    groups = [{"params": [named[n] for n in split["features"]], "lr": lr},
              {"params": [named[n] for n in split["decoder"]], "lr": decoder_lr}]
    return adam([g for g in groups if g["params"]], betas=(0.9, 0.99), eps=1e-15)


def fit_loop(network: torch.nn.Module, loss_fn: Callable[[int], torch.Tensor], optimizer: torch.optim.Optimizer,
             steps: int, time_budget: float | None, final_lr_factor: float = 0.1, desc: str = "fit",
             progress: bool = True, metric: Callable[[torch.Tensor], str] | None = None) -> tuple[int, float]:
    """Minimise loss_fn(step) for `steps` or until `time_budget` seconds; the learning rate decays
    exponentially to final_lr_factor x its start. Returns (steps done, seconds)."""
    base = [g["lr"] for g in optimizer.param_groups]
    bar = tqdm(total=steps if time_budget is None else None, desc=desc, disable=not progress, dynamic_ncols=True)
    start, step = time.perf_counter(), 0
    network.train()
    while step < steps:
        elapsed = time.perf_counter() - start
        if time_budget is not None and elapsed >= time_budget:
            break
        fraction = max(step / steps, elapsed / time_budget if time_budget else 0.0)
        for group, lr in zip(optimizer.param_groups, base):
            group["lr"] = lr * final_lr_factor**fraction
        loss = loss_fn(step)
        if not torch.isfinite(loss):
            raise FieldsError(f"fitting diverged at step {step} (loss {loss.item()}); try a lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        bar.update(1)
        if step % 25 == 0:
            bar.set_postfix_str(metric(loss) if metric else f"loss {loss.item():.5f}")
    bar.close()
    network.eval()
    return step, time.perf_counter() - start


@torch.no_grad()
def evaluate_chunked(network: torch.nn.Module, points: torch.Tensor, chunk: int = 1 << 17) -> torch.Tensor:
    """network(points) (N, n_out) in chunks."""
    return torch.cat([network(c) for c in points.split(chunk)])
