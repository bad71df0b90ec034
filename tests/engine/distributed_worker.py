"""What tests/engine/test_distributed.py launches with torchrun: `fields ARGS...` with test settings.

    distributed_worker.py fields ARGS...    `fields ARGS`, TensoRF's CPU preset made to shrink its box at
                                            step 6 and upsample at steps 6 and 12
    distributed_worker.py die STEP ARGS...  `fields ARGS`, rank 1 exiting abruptly (os._exit) at step STEP of the
                                            first attempt (torchrun's restarts go on)
    distributed_worker.py diverge           join, build the trainer's fused Adam, rank 1 perturbs one of two
                                            tensors, leave; each rank exits 0 when Ranks.check_sync named it and
                                            no gloo thread is left running
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from nfields.cli import main
from nfields.engine.distributed import join, leave
from nfields.engine.trainer import Trainer
from nfields.errors import FieldsError
from nfields.fields.optimizer_spec import adam
from nfields.fields.tensorf import TensoRFConfig


def small_tensorf() -> None:
    presets = TensoRFConfig.presets.__func__

    def shrunk(cls, bound: float = 1.5):
        out = presets(cls, bound)
        out["cpu"].initial_resolution, out["cpu"].final_resolution, out["cpu"].upsample_steps = 16, 24, [6, 12]
        out["cpu"].shrink_step = 6
        return out

    TensoRFConfig.presets = classmethod(shrunk)


def die_at(step: int) -> None:
    train_step = Trainer.train_step

    def dying(self):
        first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        if self.step == step and self.ranks is not None and self.ranks.rank == 1 and first_attempt:
            os._exit(3)
        return train_step(self)

    Trainer.train_step = dying


def diverge_and_leave() -> int:
    ranks = join(torch.device("cpu"))
    adam([{"params": [torch.nn.Parameter(torch.ones(2))]}], lr=1e-2)  # the trainer's optimiser, as in a run
    tensors = {"same": torch.ones(3), "perturbed": torch.full((2,), float(ranks.rank))}
    named = False
    try:
        ranks.check_sync(tensors, step=7)
    except FieldsError as err:
        print(f"rank {ranks.rank}: {err}", flush=True)
        named = "after step 7, 'perturbed' differs between rank 0 and rank(s) 1;" in str(err)
    finally:
        leave()  # a process group left to the interpreter's exit may abort (SIGABRT)
    left = [name for name in thread_names() if "gloo" in name]
    print(f"rank {ranks.rank}: gloo threads left after leave(): {left}", flush=True)
    return 0 if named and not left else 1


def thread_names() -> list[str]:
    return [(task / "comm").read_text().strip() for task in Path("/proc/self/task").iterdir()]


if __name__ == "__main__":
    job, args = sys.argv[1], sys.argv[2:]
    if job == "diverge":
        sys.exit(diverge_and_leave())
    small_tensorf()
    if job == "die":
        die_at(int(args[0]))
        args = args[1:]
    sys.exit(main(args))
