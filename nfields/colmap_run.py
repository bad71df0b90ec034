"""Camera poses for unposed images by running the `colmap` program (feature extraction, matching, mapping)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .datasets import DatasetError
from .datasets.colmap import read_colmap_model
from .errors import FieldsError

INSTALL_HINT = ("Install COLMAP and run the conversion again: `sudo apt-get install colmap` (Debian/Ubuntu), "
                "`conda install -c conda-forge colmap`, or https://colmap.github.io/install.html. "
                "Or pose the images yourself and convert the COLMAP model (a folder with sparse/0 and images/).")


def colmap_executable() -> str:
    """Path of the `colmap` program; FieldsError saying how to install it when it is not on PATH."""
    exe = shutil.which("colmap")
    if exe is None:
        raise FieldsError(f"the `colmap` program is not installed (not on PATH): it computes the camera poses of "
                          f"images and videos. {INSTALL_HINT}")
    return exe


def _run(exe: str, step: str, args: list[str], log: Path) -> str:
    """Run one COLMAP step; its output goes to `log`. Returns the output."""
    try:
        result = subprocess.run([exe, step, *args], capture_output=True, text=True, check=False)
    except OSError as err:
        raise FieldsError(f"{exe}: cannot run COLMAP ({err})") from None
    with log.open("a") as f:
        f.write(f"$ colmap {step} {' '.join(args)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise FieldsError(f"colmap {step} failed with exit code {result.returncode}: {tail}")
    return result.stdout + result.stderr


def run_colmap(image_dir: Path, workspace: Path, sequential: bool = False) -> Path:
    """Pose the images of image_dir; returns the sparse model folder with the most registered images.

    sequential: match neighbouring frames only (videos); else every pair (photo collections).
    """
    exe = colmap_executable()
    workspace.mkdir(parents=True, exist_ok=True)
    database, sparse, log = workspace / "database.db", workspace / "sparse", workspace / "colmap.log"
    sparse.mkdir(exist_ok=True)
    # COLMAP 3.12 renamed SiftExtraction/SiftMatching.use_gpu to FeatureExtraction/FeatureMatching.use_gpu.
    help_text = subprocess.run([exe, "feature_extractor", "-h"], capture_output=True, text=True).stdout
    extract_gpu, match_gpu = (("SiftExtraction.use_gpu", "SiftMatching.use_gpu") if "SiftExtraction.use_gpu"
                              in help_text else ("FeatureExtraction.use_gpu", "FeatureMatching.use_gpu"))
    _run(exe, "feature_extractor", ["--database_path", str(database), "--image_path", str(image_dir),
                                    "--ImageReader.camera_model", "OPENCV", "--ImageReader.single_camera", "1",
                                    f"--{extract_gpu}", "0"], log)
    _run(exe, "sequential_matcher" if sequential else "exhaustive_matcher",
         ["--database_path", str(database), f"--{match_gpu}", "0"], log)
    _run(exe, "mapper", ["--database_path", str(database), "--image_path", str(image_dir),
                         "--output_path", str(sparse)], log)
    models = [d for d in sparse.iterdir() if d.is_dir()]
    if not models:
        raise DatasetError(image_dir, "COLMAP could not register the images into any model",
                           "Take more overlapping, sharper images (or a slower video).")
    return max(models, key=lambda d: len(read_colmap_model(d).images))
