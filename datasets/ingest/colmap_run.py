"""Camera poses for unposed images with COLMAP (SIFT features, matching, incremental mapping): the `colmap`
program when it is on PATH, else the pycolmap package (COLMAP's own Python bindings, `pip install pycolmap`:
CPU wheels, no system install)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from .. import DatasetError
from ..colmap import read_colmap_model
from ..llff import list_images

INSTALL_HINT = ("Install COLMAP and run the conversion again: `pip install pycolmap`, or the program: "
                "`sudo apt-get install colmap` (Debian/Ubuntu), `conda install -c conda-forge colmap`, or "
                "https://colmap.github.io/install.html. "
                "Or pose the images yourself and convert the COLMAP model (a folder with sparse/0 and images/).")

# One camera shared by all images. SIMPLE_RADIAL (COLMAP's default: f, cx, cy, k1) rather than OPENCV (fx, fy, cx,
# cy, k1, k2, p1, p2): the mapper refines the shared camera from the first few images, and OPENCV's distortion
# terms run away there (k1 -1.7, k2 2.2 after two images of lego), after which no further image registers. On
# lego's 100 photos OPENCV posed all of them in 11 of 18 runs (twice only 15); SIMPLE_RADIAL in 33 of 33.
CAMERA_MODEL = "SIMPLE_RADIAL"
# COLMAP's mapping is random (RANSAC, threads): while no model holds half the images, it is run again on the
# same features and matches, and the largest model of all runs is kept.
MAPPING_TRIES = 3


def pycolmap_available() -> bool:
    return importlib.util.find_spec("pycolmap") is not None


def colmap_backend() -> str:
    """"program" (`colmap` on PATH) or "pycolmap"; a DatasetError saying how to install COLMAP when neither is."""
    if shutil.which("colmap") is not None:
        return "program"
    if pycolmap_available():
        return "pycolmap"
    raise DatasetError("colmap", "the `colmap` program is not installed (not on PATH), nor the pycolmap package: "
                                 f"COLMAP computes the camera poses of images and videos. {INSTALL_HINT}")


def _run(exe: str, step: str, args: list[str], log: Path) -> str:
    """Run one COLMAP step; its output goes to `log`. Returns the output."""
    try:
        result = subprocess.run([exe, step, *args], capture_output=True, text=True, check=False)
    except OSError as err:
        raise DatasetError(exe, f"cannot run COLMAP ({err})") from None
    with log.open("a") as f:
        f.write(f"$ colmap {step} {' '.join(args)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise DatasetError(f"colmap {step}", f"failed with exit code {result.returncode}: {tail}")
    return result.stdout + result.stderr


def run_colmap(image_dir: Path, workspace: Path, sequential: bool = False) -> Path:
    """Pose the images of image_dir; returns the sparse model folder with the most registered images.

    sequential: match neighbouring frames only (videos); else every pair (photo collections).
    One SIMPLE_RADIAL camera for all images; features and matching on the CPU. Mapping is repeated (up to
    MAPPING_TRIES times, into sparse/, sparse-2/, ...) while no model holds half the images. The log goes to
    colmap.log.
    """
    backend = colmap_backend()
    workspace.mkdir(parents=True, exist_ok=True)
    database, log = workspace / "database.db", workspace / "colmap.log"
    if backend == "program":
        exe = shutil.which("colmap")
        _program_features_and_matches(exe, image_dir, database, log, sequential)
        return _map_until_posed(image_dir, workspace, lambda sparse: _program_mapping(exe, image_dir, database,
                                                                                      sparse, log))
    with _pycolmap_logged(image_dir, log, sequential):
        _pycolmap_features_and_matches(image_dir, database, sequential)
        return _map_until_posed(image_dir, workspace, lambda sparse: _pycolmap_mapping(image_dir, database, sparse))


def _map_until_posed(image_dir: Path, workspace: Path, mapping: Callable[[Path], None]) -> Path:
    """Run `mapping` (writes models into the folder it is given) until a model holds half the images or
    MAPPING_TRIES runs are spent; returns the model folder with the most registered images."""
    images = len(list_images(image_dir))
    registered: dict[Path, int] = {}
    for attempt in range(MAPPING_TRIES):
        sparse = workspace / ("sparse" if attempt == 0 else f"sparse-{attempt + 1}")
        sparse.mkdir(exist_ok=True)
        mapping(sparse)
        registered.update({d: _registered_images(d) for d in sorted(sparse.iterdir()) if d.is_dir()})
        if registered and 2 * max(registered.values()) >= images:
            break
    if not registered:
        raise DatasetError(image_dir, "COLMAP could not register the images into any model",
                           "Take more overlapping, sharper images (or a slower video).")
    # COLMAP may leave several models (disconnected groups of images); the largest is the capture. A model of
    # fewer than 3 images is reported by read_colmap_model when it is the largest.
    return max(registered, key=registered.get)


def _registered_images(model_dir: Path) -> int:
    try:
        return len(read_colmap_model(model_dir).images)
    except DatasetError:  # too small (or broken) to be the capture's model
        return 0


def _program_features_and_matches(exe: str, image_dir: Path, database: Path, log: Path, sequential: bool) -> None:
    # COLMAP 3.12 renamed SiftExtraction/SiftMatching.use_gpu to FeatureExtraction/FeatureMatching.use_gpu.
    help_text = subprocess.run([exe, "feature_extractor", "-h"], capture_output=True, text=True).stdout
    extract_gpu, match_gpu = (("SiftExtraction.use_gpu", "SiftMatching.use_gpu") if "SiftExtraction.use_gpu"
                              in help_text else ("FeatureExtraction.use_gpu", "FeatureMatching.use_gpu"))
    _run(exe, "feature_extractor", ["--database_path", str(database), "--image_path", str(image_dir),
                                    "--ImageReader.camera_model", CAMERA_MODEL, "--ImageReader.single_camera", "1",
                                    f"--{extract_gpu}", "0"], log)
    _run(exe, "sequential_matcher" if sequential else "exhaustive_matcher",
         ["--database_path", str(database), f"--{match_gpu}", "0"], log)


def _program_mapping(exe: str, image_dir: Path, database: Path, sparse: Path, log: Path) -> None:
    _run(exe, "mapper", ["--database_path", str(database), "--image_path", str(image_dir),
                         "--output_path", str(sparse)], log)


def _import_pycolmap():
    """pycolmap, imported so that SIGTERM keeps its handler. pycolmap's import installs glog's failure signal
    handler, which answers SIGTERM with a stack dump and kills the process before Python cleans up (e.g. the
    partial folder of `fields convert`); the handler in place before the import is put back."""
    handler = signal.getsignal(signal.SIGTERM)
    import pycolmap

    if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
        signal.signal(signal.SIGTERM, handler if handler is not None else signal.SIG_DFL)
    return pycolmap


@contextlib.contextmanager
def _pycolmap_logged(image_dir: Path, log: Path, sequential: bool) -> Iterator[None]:
    """COLMAP's printing and logging (glog, to stderr by default) go to colmap.log, errors still shown;
    pycolmap's exceptions become a DatasetError naming image_dir."""
    pycolmap = _import_pycolmap()

    output = io.StringIO()
    with log.open("a") as f:
        f.write(f"pycolmap {pycolmap.__version__}: extract_features, "
                f"{'match_sequential' if sequential else 'match_exhaustive'}, incremental_mapping\n")
    pycolmap.logging.alsologtostderr = False
    pycolmap.logging.stderrthreshold = int(pycolmap.logging.ERROR)
    pycolmap.logging.set_log_destination(pycolmap.logging.INFO, str(log.parent / "pycolmap."))
    try:
        with contextlib.redirect_stdout(output):
            yield
    except DatasetError:
        raise
    except Exception as err:  # pycolmap raises plain RuntimeErrors and ValueErrors
        raise DatasetError(image_dir, f"pycolmap failed: {str(err).splitlines()[0][:200]}") from None
    finally:
        with log.open("a") as f:
            f.write(output.getvalue())
            for part in sorted(log.parent.glob("pycolmap.*")):
                f.write(part.read_text(errors="replace"))
                part.unlink()


def _pycolmap_features_and_matches(image_dir: Path, database: Path, sequential: bool) -> None:
    import pycolmap

    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = CAMERA_MODEL
    cpu = pycolmap.Device.cpu
    pycolmap.extract_features(database, image_dir, camera_mode=pycolmap.CameraMode.SINGLE, reader_options=reader,
                              device=cpu)
    (pycolmap.match_sequential if sequential else pycolmap.match_exhaustive)(database, device=cpu)


def _pycolmap_mapping(image_dir: Path, database: Path, sparse: Path) -> None:
    """Each model pycolmap finds is written to sparse/<index>/."""
    import pycolmap

    models = pycolmap.incremental_mapping(database, image_dir, sparse)
    for index, model in models.items():  # incremental_mapping writes its models; any folder left empty is filled
        folder = sparse / str(index)
        if not folder.is_dir() or not any(folder.iterdir()):
            folder.mkdir(exist_ok=True)
            model.write_text(str(folder))
