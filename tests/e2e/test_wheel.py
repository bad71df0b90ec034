"""The built wheel, not the editable install: it holds every package and kernel source of the tree, installs into
a fresh virtual environment, and `fields doctor` runs from it with the native CPU kernels (slow: about a minute,
more when the kernels are not in ~/.cache/fields/kernels yet)."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Source folder -> its path inside the wheel (pyproject's package-dir).
PACKAGE_ROOTS = {"nfields": "nfields", "fields": "nfields/fields", "renderers": "nfields/renderers",
                 "datasets": "nfields/datasets", "cuda": "nfields/cuda", "viewer": "nfields/viewer"}
KERNEL_SUFFIXES = (".h", ".cpp", ".cu")


def expected_wheel_files() -> set[str]:
    """Every module of every folder with an __init__.py under the package roots, and every kernel source."""
    expected = set()
    for folder, target in PACKAGE_ROOTS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            package = init.parent
            if "__pycache__" in package.parts:
                continue
            inside = Path(target, package.relative_to(REPO / folder))
            expected |= {(inside / module.name).as_posix() for module in package.glob("*.py")}
    expected |= {f"nfields/cuda/src/{src.name}" for src in (REPO / "cuda" / "src").iterdir()
                 if src.suffix in KERNEL_SUFFIXES}
    return expected


def run(command: list, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_wheel_holds_every_package_and_runs_doctor(tmp_path):
    # Build from a copy, so that the checkout gets no build/ or egg-info of this build.
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for folder in PACKAGE_ROOTS:
        shutil.copytree(REPO / folder, source / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist",
         source], cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("nfields-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = expected_wheel_files()
    assert len(expected) > 100 and "nfields/datasets/ingest/__init__.py" in expected
    assert not expected - names, f"missing from {wheel.name}: {sorted(expected - names)}"

    # A fresh environment that sees this machine's torch and other dependencies, with nfields only from the wheel.
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", venv], cwd=tmp_path)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    run([bin_dir / "python", "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", wheel], cwd=tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = run([bin_dir / "python", "-c", "import nfields.cli; print(nfields.cli.__file__)"], cwd=outside)
    site = sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
    assert Path(where.stdout.strip()).resolve().is_relative_to(Path(site).resolve()), where.stdout
    doctor = run([bin_dir / "fields", "doctor"], cwd=outside).stdout
    # The native kernels built from the wheel's own sources serve every CPU operation.
    cpu_rows = [line for line in doctor.splitlines() if line.startswith("cpu ")]
    assert cpu_rows and all("cpu kernels" in row for row in cpu_rows), doctor
