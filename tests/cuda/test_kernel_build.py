"""The kernel cache, in a temporary FIELDS_KERNEL_CACHE: a lock left by an interrupted build, a later command
from another checkout and environment, and a process waiting on another's build. Each case runs in a fresh
process, as commands do."""

import fcntl
import os
import shutil
import subprocess
import sys

import pytest

from nfields.cuda import build

# Loads the CPU kernels as a command does (optionally from a copy of the sources, as another checkout would)
# and runs one of them against its PyTorch twin.
LOAD = """
import sys
from pathlib import Path
import torch
from nfields.cuda import build, functions
from nfields.cuda.dispatch import choose, kernels_for
from nfields.fields.grids import sample_planes_torch
if len(sys.argv) > 1:
    build.SOURCE_DIR = Path(sys.argv[1])
print(choose("cpu").backend)
kernels = kernels_for("cpu")
if kernels is not None:
    planes, coords = torch.rand(3, 4, 8, 8), torch.rand(3, 50, 2) * 2 - 1
    native = functions.plane_sample(kernels, planes, coords, False)
    print("agrees with pytorch:", torch.allclose(native, sample_planes_torch(planes, coords), atol=1e-5))
"""


def _command(env: dict, *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LOAD, *args], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=timeout)


def _cpu_folder(monkeypatch, cache):
    monkeypatch.setenv("FIELDS_KERNEL_CACHE", str(cache))
    return build.cache_dir("cpu", build.build_key("cpu", build.cpu_build())[0])


@pytest.mark.slow  # a full CPU build: 30-90 s wall time on a 2-core machine
def test_a_stale_lock_is_removed_and_one_build_serves_another_checkout_and_environment(monkeypatch, tmp_path):
    """One full CPU build, then a load from another checkout and environment that must reuse it."""
    folder = _cpu_folder(monkeypatch, tmp_path / "cache")
    (folder / "lock").write_text("")  # what torch leaves when its build process is killed
    first = _command({"FIELDS_KERNEL_CACHE": str(tmp_path / "cache")}, timeout=900)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["cpu kernels", "agrees with pytorch: True"], first.stderr
    assert f"removing the lock file an interrupted kernel build left: {folder / 'lock'}" in first.stderr
    building = f"building the CPU kernels ({', '.join(build.CPU_SOURCES)}) in {folder}: {build.DURATION['cpu']}"
    assert building in first.stderr
    assert not (folder / "lock").exists()
    outputs = sorted(folder.glob("*.so")) + sorted(folder.glob("*.o")) + [folder / ".ninja_log"]
    stamps = [(p.stat().st_mtime_ns, p.read_bytes()) for p in outputs]

    # The same sources elsewhere (fresh modification times), the compiler named by its full path, another cwd:
    # each of these changed the compile command, or looked newer to ninja, and rebuilt.
    other_checkout = shutil.copytree(build.SOURCE_DIR, tmp_path / "other-checkout" / "src", copy_function=shutil.copy)
    env = {"FIELDS_KERNEL_CACHE": str(tmp_path / "cache"), "CXX": os.path.realpath(build.compiler())}
    second = _command(env, str(other_checkout), timeout=300)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == ["cpu kernels", "agrees with pytorch: True"], second.stderr
    assert "building" not in second.stderr
    assert [(p.stat().st_mtime_ns, p.read_bytes()) for p in outputs] == stamps


def test_waiting_on_another_build_is_bounded_and_falls_back_to_pytorch(monkeypatch, tmp_path):
    folder = _cpu_folder(monkeypatch, tmp_path / "cache")
    with open(folder / "fields.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process is building
        waiting = _command({"FIELDS_KERNEL_CACHE": str(tmp_path / "cache"), "FIELDS_KERNEL_WAIT": "1"}, timeout=120)
    assert waiting.returncode == 0, waiting.stderr
    assert waiting.stdout.splitlines() == ["pytorch"]
    assert f"fields: waiting for another process building the kernels in {folder}\n" in waiting.stderr
    assert "after 1 s); using the PyTorch path" in waiting.stderr
    assert not list(folder.glob("*.so"))
