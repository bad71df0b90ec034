"""Data-parallel training on torch.distributed, launched by torchrun: `Ranks` is what a run asks of the other
processes (ranks).

Every rank holds the whole model and draws its own rays; after backward, one all-reduce averages the gradients
of every parameter in the optimiser's groups, so each rank's Adam takes the same step and the parameters stay
bit-identical. This is an explicit all-reduce, not DistributedDataParallel: fields re-create their parameters
mid-run (TensoRF's upsampling, after which the trainer makes a fresh optimiser), and a step may leave some
parameters without a gradient on some ranks (no sample reached the field, a distillation stage that trains a
part of it). DDP registers its buckets and hooks once, on fixed parameters, and needs every rank to produce
the same gradients; a flat all-reduce over whatever parameters the optimiser holds this step, with a flag per
parameter for "had a gradient", stays correct through both.

Besides gradients, ranks agree on the occupancy grid (`merge_cells`), on time (rank 0's step time, so the time
budget and the learning-rate schedule run out together) and on samples per step (summed, so the adaptive ray
count is the same everywhere). Rank 0 alone writes files.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import torch
import torch.distributed as dist

from ..errors import FieldsError
from .runs import CHECKPOINT_NAME

T = TypeVar("T")


def launched_ranks() -> int:
    """Processes in this launch: torchrun's WORLD_SIZE, 1 without torchrun."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise FieldsError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number of processes") from None


def launch_rank() -> int:
    """This process's rank in a torchrun launch (RANK), 0 without torchrun."""
    return int(os.environ.get("RANK", "0"))


def restarted_run(output: str | None) -> Path | None:
    """The run folder `output` when torchrun has restarted this command (--max-restarts, after a process failed) and
    the folder holds a checkpoint to resume; None otherwise (a first attempt, or nothing saved yet)."""
    if not output or int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) == 0:
        return None
    folder = Path(output).expanduser()
    return folder if (folder / CHECKPOINT_NAME).is_file() else None


def join(device: torch.device) -> Ranks | None:
    """This process's place in a torchrun launch of more than one process (the process group is created on the
    first call: gloo for the CPU, nccl for CUDA); None in a single process."""
    world = launched_ranks()
    if world <= 1:
        return None
    if not dist.is_initialized():
        # torch._dynamo (imported by the first fused Adam) keeps references to the process groups that exist when
        # it is imported: such a group outlives destroy_process_group, and its gloo threads then race the
        # interpreter's exit (SIGABRT: "terminate called without an active exception", 1 run in 10 on 2 busy
        # cores). Imported before the group exists, it holds none and `leave` ends the group's threads.
        import torch._dynamo  # noqa: F401

        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        try:
            dist.init_process_group(backend)
        except (RuntimeError, ValueError) as err:
            raise FieldsError(f"torch.distributed: rank {os.environ.get('RANK', '?')} could not join the "
                              f"{backend} process group ({str(err).splitlines()[0]}); launch with torchrun") from None
    return Ranks(dist.get_rank(), dist.get_world_size(), device)


def leave() -> None:
    """End the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main(ranks: Ranks | None) -> bool:
    """Whether this process writes the run's files: a single process, or rank 0."""
    return ranks is None or ranks.is_main


def on_main(ranks: Ranks | None, fn: Callable[[], T]) -> T:
    """fn() in a single process; under torchrun fn() on rank 0, whose result (or FieldsError, raised again)
    every rank gets."""
    if ranks is None:
        return fn()
    result, error = None, None
    if ranks.is_main:
        try:
            result = fn()
        except FieldsError as err:
            error = str(err)
    result, error = ranks.from_main((result, error))
    if error is not None:
        raise FieldsError(error)
    return result


def lost_contact(err: BaseException) -> bool:
    """Whether `err` is a collective failing because another rank is gone (died, killed, timed out)."""
    if isinstance(err, dist.DistError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and any(marker in text for marker in (
        "Connection closed by peer", "Connection reset by peer", "Timed out", "gloo", "NCCL"))


def failure_summary(err: BaseException) -> str:
    """The first sentence of a collective's error, without gloo's source location, e.g. 'Connection closed by peer
    [127.0.0.1]:21395'."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
    return text.split(". ")[0][:160]


@dataclass
class Ranks:
    """One process of a data-parallel run: its rank among `world`, and the device its tensors live on."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, n: int) -> int:
        """This rank's part of `n` rays: n // world (at least 1)."""
        return max(n // self.world, 1)

    def part(self) -> slice:
        """This rank's items of a list split over the ranks (item i goes to rank i % world)."""
        return slice(self.rank, None, self.world)

    def seed(self, seed: int, step: int) -> int:
        """The seed of this rank's random draws (rays) from `step` on: seed + rank at the start, and a fresh
        one at each resume for ranks > 0 (a checkpoint holds rank 0's generators only)."""
        return seed + self.rank + (1 << 16) * step

    def batch_line(self, samples_per_step: int) -> str:
        return (f"effective batch: {samples_per_step} samples per step over {self.world} ranks "
                f"(about {samples_per_step // self.world} each, each rank drawing its own rays)")

    def lost_error(self, err: BaseException, step: int, run_dir: Path) -> FieldsError:
        """The one-line error of a rank whose collective failed because another rank is gone (rank 0 has saved
        the run at `step`)."""
        saved = f"saved step {step} to {run_dir}" if self.is_main else f"rank 0 keeps the checkpoints in {run_dir}"
        return FieldsError(f"rank {self.rank} of {self.world} lost contact with the other ranks at step {step} (one "
                           f"died or was stopped: {failure_summary(err)}); {saved}; resume with "
                           f"--resume {run_dir}, on any number of ranks")

    # ----- collectives -----
    def from_main(self, obj: T) -> T:
        """Rank 0's `obj` (any picklable object) on every rank."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: T) -> list[T]:
        """Every rank's `obj`, in rank order, on every rank."""
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over the ranks (float64)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def main_seconds(self, seconds: float) -> float:
        """Rank 0's measure of a time span, on every rank (so that every rank's time budget runs out at the same
        step)."""
        t = torch.tensor([seconds if self.is_main else 0.0], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.item()

    def broadcast_tensors(self, tensors: list[torch.Tensor]) -> None:
        """Overwrite `tensors` in place with rank 0's (e.g. the model at the start)."""
        for t in tensors:
            dist.broadcast(t.data, src=0)

    @torch.no_grad()
    def average_gradients(self, params: list[torch.Tensor], n_samples: int, stepped: bool) -> tuple[int, bool]:
        """Average the gradients of `params` over the ranks that back-propagated (`stepped`), in one all-reduce.

        A parameter that had a gradient on some rank gets the sum over the ranks divided by how many stepped
        (zeros stand in where a rank had none); one that had none anywhere keeps None, so Adam skips it as in a
        single process. Returns the samples of every rank's batch, summed, and whether any rank stepped.
        """
        grads = [p.grad.reshape(-1) if stepped and p.grad is not None else torch.zeros(p.numel(), device=p.device,
                                                                                        dtype=p.dtype)
                 for p in params]
        had = [float(stepped and p.grad is not None) for p in params]
        flags = torch.tensor(had + [float(n_samples), float(stepped)], device=self.device)
        flat = torch.cat([g.float() for g in grads] + [flags])
        dist.all_reduce(flat)
        n_grads = len(flat) - len(flags)
        *had, total_samples, n_stepped = flat[n_grads:].tolist()
        if n_stepped:
            flat /= n_stepped
            for p, g, count in zip(params, flat[:n_grads].split([p.numel() for p in params]), had):
                p.grad = g.view_as(p).to(p.dtype) if count > 0 else None
        return int(round(total_samples)), n_stepped > 0

    @torch.no_grad()
    def merge_cells(self, cells: torch.Tensor, values: torch.Tensor, n_cells: int) -> tuple[torch.Tensor, torch.Tensor]:
        """An occupancy update's cells measured on any rank: the union of every rank's `cells` (M,) with the
        largest of the `values` (M,, >= 0) measured in each, by one all-reduce (max) of a dense (n_cells,)
        buffer. Every rank then folds the same values into the same grid, as one process would fold a batch
        holding all ranks' samples (a cell two ranks drew decays once)."""
        fresh = torch.full((n_cells,), -1.0, device=values.device)
        fresh.scatter_reduce_(0, cells, values.float(), "amax")
        dist.all_reduce(fresh, op=dist.ReduceOp.MAX)
        merged = torch.nonzero(fresh >= 0).squeeze(1)
        return merged, fresh[merged].to(values.dtype)

    def check_sync(self, named: dict[str, torch.Tensor], step: int) -> None:
        """FieldsError naming the first tensor of `named` whose bytes differ between ranks (hashes gathered)."""
        digests = [hashlib.blake2b(t.detach().contiguous().cpu().view(-1).view(torch.uint8).numpy(),
                                   digest_size=16).hexdigest() for t in named.values()]
        every = self.gather(digests)
        for i, name in enumerate(named):
            differing = [r for r in range(self.world) if every[r][i] != every[0][i]]
            if differing:
                raise FieldsError(f"--check-sync: after step {step}, '{name}' differs between rank 0 and rank(s) "
                                  f"{', '.join(map(str, differing))}; the ranks no longer train the same model")
