"""Camera poses for unposed images with COLMAP (SIFT features, matching, incremental mapping): the `colmap`
program when it is on PATH, else the pycolmap package (COLMAP's own Python bindings, `pip install pycolmap`:
CPU wheels, no system install).

Each stage shows its progress (images featured, pairs or blocks matched, images registered). Which pairs of
images are matched depends on how many there are and where they come from (colmap_plan.choose_matcher), and SIFT is
sized to the images (colmap_plan.sift_settings); the pycolmap backend is colmap_pycolmap.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from .. import DatasetError
from ..colmap import read_colmap_model
from ..llff import list_images
from .colmap_plan import (
    CAMERA_MODEL,
    LOOP_DETECTION_PERIOD,
    MAPPING_TRIES,
    NEIGHBOUR_OVERLAP,
    NO_TREE_NOTICE,
    RETRIEVAL_NEIGHBOURS,
    SEQUENTIAL_OVERLAP,
    Plan,
    choose_matcher,
    sift_settings,
    vocabulary_training,
    vocabulary_words,
)
from .colmap_progress import MappingBar, Progress
from .colmap_pycolmap import pycolmap_features, pycolmap_logged, pycolmap_mapping, pycolmap_matches

INSTALL_HINT = ("Install COLMAP and run the conversion again: `pip install pycolmap`, or the program: "
                "`sudo apt-get install colmap` (Debian/Ubuntu), `conda install -c conda-forge colmap`, or "
                "https://colmap.github.io/install.html. "
                "Or pose the images yourself and convert the COLMAP model (a folder with sparse/0 and images/).")


def pycolmap_available() -> bool:
    return importlib.util.find_spec("pycolmap") is not None


def colmap_backend() -> str:
    """"program" (`colmap` on PATH) or "pycolmap"; a DatasetError saying how to install COLMAP when neither is."""
    if shutil.which("colmap") is not None:
        return "program"
    if pycolmap_available():
        version = importlib.metadata.version("pycolmap")
        if int(version.split(".")[0]) < 4:
            raise DatasetError("pycolmap", f"version {version} is too old (4.0 or later is needed): "
                                           "pip install --upgrade 'pycolmap>=4'")
        return "pycolmap"
    raise DatasetError("colmap", "the `colmap` program is not installed (not on PATH), nor the pycolmap package: "
                                 f"COLMAP computes the camera poses of images and videos. {INSTALL_HINT}")


def _image_size(path: Path) -> tuple[int, int]:
    import imageio.v3 as iio

    try:
        shape = iio.improps(path).shape
    except Exception as err:  # imageio raises many kinds for unreadable files
        raise DatasetError(path, f"image cannot be read ({err.__class__.__name__})") from None
    return int(shape[1]), int(shape[0])


def run_colmap(image_dir: Path, workspace: Path, video: bool = False, matcher: str = "auto",
               vocab_tree: Path | None = None, progress: bool = True) -> Path:
    """Pose the images of image_dir; returns the sparse model folder with the most registered images.

    video: the images are frames of a video, in order. matcher: one of MATCHERS ("auto": choose_matcher).
    vocab_tree: a COLMAP vocabulary tree file (FAISS format, COLMAP 3.12 and later) for vocab-tree matching and
    a video's loop detection; without one, a vocabulary is built from the images' own features.
    One SIMPLE_RADIAL camera for all images; features and matching on the CPU. Mapping is repeated (up to
    MAPPING_TRIES times, into sparse/, sparse-2/, ...) while no model holds half the images. The log goes to
    colmap.log. With `progress`, each stage shows a bar on stderr.
    """
    backend = colmap_backend()
    images = list_images(image_dir)
    if not images:
        raise DatasetError(image_dir, "holds no images")
    if vocab_tree is not None and not Path(vocab_tree).is_file():
        raise DatasetError(vocab_tree, "vocabulary tree file not found (--vocab-tree)")
    width, height = _image_size(images[0])
    plan = Plan(len(images), width, height, sift_settings(width, height), choose_matcher(len(images), video, matcher),
                 Path(vocab_tree) if vocab_tree is not None else None)
    shown = Progress(progress)
    workspace.mkdir(parents=True, exist_ok=True)
    database, log = workspace / "database.db", workspace / "colmap.log"
    try:
        if backend == "program":
            exe = shutil.which("colmap")
            shown.say(plan.describe("the colmap program"))
            with log.open("a") as f:
                f.write(plan.describe(f"the colmap program at {exe}") + "\n")
            _program_features_and_matches(exe, image_dir, database, workspace, log, plan, shown)
            return _map_until_posed(image_dir, workspace, shown, lambda sparse, bar: _program_mapping(
                exe, image_dir, database, sparse, log, bar))
        with pycolmap_logged(image_dir, log) as pycolmap:
            shown.say(plan.describe(f"pycolmap {pycolmap.__version__}"))
            with log.open("a") as f:
                f.write(plan.describe(f"pycolmap {pycolmap.__version__}") + "\n")
            pycolmap_features(image_dir, [p.name for p in images], database, plan.sift, shown)
            pycolmap_matches(database, workspace, plan, shown)
            return _map_until_posed(image_dir, workspace, shown,
                                    lambda sparse, bar: pycolmap_mapping(image_dir, database, sparse, bar))
    finally:
        with log.open("a") as f:
            f.write("".join(f"{line}\n" for line in shown.timings))


def _map_until_posed(image_dir: Path, workspace: Path, shown: Progress,
                     mapping: Callable[[Path, MappingBar], None]) -> Path:
    """Run `mapping` (writes models into the folder it is given) until a model holds half the images or
    MAPPING_TRIES runs are spent; returns the model folder with the most registered images."""
    images = len(list_images(image_dir))
    registered: dict[Path, int] = {}
    for attempt in range(MAPPING_TRIES):
        sparse = workspace / ("sparse" if attempt == 0 else f"sparse-{attempt + 1}")
        sparse.mkdir(exist_ok=True)
        desc = "COLMAP mapping" if attempt == 0 else f"COLMAP mapping (try {attempt + 1} of {MAPPING_TRIES})"
        with shown.bar(desc, images, "image") as tq:
            bar = MappingBar(tq)
            mapping(sparse, bar)
            registered.update({d: _registered_images(d) for d in sorted(sparse.iterdir()) if d.is_dir()})
            bar.done(max(registered.values(), default=0))
        if registered and 2 * max(registered.values()) >= images:
            break
        if attempt + 1 < MAPPING_TRIES:
            shown.say(f"COLMAP registered {max(registered.values(), default=0)} of {images} images, under half: "
                      "mapping again")
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


# The `colmap` program: each step's output is read as it comes, into colmap.log and the stage's bar.

# COLMAP's log lines that mark progress (3.x and 4.x).
_FEATURED = re.compile(r"Processed file \[(\d+)/(\d+)\]")
_BLOCK = re.compile(r"(?:Processing|Matching) block \[(\d+)/(\d+), (\d+)/(\d+)\]")
_IMAGE = re.compile(r"(?:Processing|Matching) image \[(\d+)/(\d+)\]")
_INITIAL_PAIR = re.compile(r"Registering initial image pair")
_REGISTERED = re.compile(r"Registering image #\d+ \((?:num_reg_(?:frames|images)=)?(\d+)\)")


def _run(exe: str, step: str, args: list[str], log: Path, on_line: Callable[[str], None] | None = None) -> str:
    """Run one COLMAP step; its output goes to `log` (and each line to on_line). Returns the output."""
    lines: list[str] = []
    try:
        proc = subprocess.Popen([exe, step, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace")
    except OSError as err:
        raise DatasetError(exe, f"cannot run COLMAP ({err})") from None
    with proc, log.open("a") as f:
        f.write(f"$ colmap {step} {' '.join(args)}\n")
        try:
            for line in proc.stdout:
                f.write(line)
                lines.append(line)
                if on_line is not None:
                    on_line(line)
        except BaseException:
            proc.kill()
            raise
        proc.wait()
        f.write("\n")
    if proc.returncode != 0:
        tail = " | ".join("".join(lines).strip().splitlines()[-3:])
        raise DatasetError(f"colmap {step}", f"failed with exit code {proc.returncode}: {tail}")
    return "".join(lines)


def _counting(bar: tqdm, pattern: re.Pattern, position: Callable[[re.Match], tuple[int, int]]):
    """An on_line that moves `bar` to the (done, total) that `position` reads from lines matching `pattern`."""
    def on_line(line: str) -> None:
        found = pattern.search(line)
        if found:
            done, total = position(found)
            if bar.total != total:
                bar.reset(total=total)
            bar.n = done
            bar.refresh()
    return on_line


def _program_features_and_matches(exe: str, image_dir: Path, database: Path, workspace: Path, log: Path,
                                  plan: Plan, shown: Progress) -> None:
    # COLMAP 3.12 renamed SiftExtraction/SiftMatching.use_gpu to FeatureExtraction/FeatureMatching.use_gpu (and
    # moved max_image_size along).
    help_text = subprocess.run([exe, "feature_extractor", "-h"], capture_output=True, text=True).stdout
    section = "SiftExtraction" if "SiftExtraction.use_gpu" in help_text else "FeatureExtraction"
    match_gpu = "SiftMatching.use_gpu" if section == "SiftExtraction" else "FeatureMatching.use_gpu"
    with shown.bar("COLMAP features", plan.images, "image") as bar:
        _run(exe, "feature_extractor", [
            "--database_path", str(database), "--image_path", str(image_dir),
            "--ImageReader.camera_model", CAMERA_MODEL, "--ImageReader.single_camera", "1",
            f"--{section}.use_gpu", "0", f"--{section}.max_image_size", str(plan.sift.max_image_size),
            "--SiftExtraction.max_num_features", str(plan.sift.max_num_features)], log,
            _counting(bar, _FEATURED, lambda m: (int(m[1]), int(m[2]))))
    tree = None
    if plan.needs_tree:
        tree = plan.vocab_tree
        if tree is None:
            shown.say(NO_TREE_NOTICE)
            tree = workspace / "vocab_tree.bin"
            words = vocabulary_words(min(vocabulary_training(plan.images),
                                          plan.images * plan.sift.max_num_features // 2))
            _run(exe, "vocab_tree_builder", ["--database_path", str(database), "--vocab_tree_path", str(tree),
                                             "--num_visual_words", str(words)], log)
    common = ["--database_path", str(database), f"--{match_gpu}", "0"]
    kind = plan.choice.matcher
    if kind == "exhaustive":
        with shown.bar("COLMAP matching", None, "block") as bar:
            _run(exe, "exhaustive_matcher", common, log, _counting(
                bar, _BLOCK, lambda m: ((int(m[1]) - 1) * int(m[4]) + int(m[3]), int(m[2]) * int(m[4]))))
        return
    if kind == "sequential":
        args = common + ["--SequentialMatching.overlap", str(SEQUENTIAL_OVERLAP)]
        if tree is not None:
            args += ["--SequentialMatching.loop_detection", "1", "--SequentialMatching.vocab_tree_path", str(tree),
                     "--SequentialMatching.loop_detection_period", str(LOOP_DETECTION_PERIOD)]
        step = "sequential_matcher"
    elif kind == "neighbours":
        args = common + ["--SequentialMatching.overlap", str(NEIGHBOUR_OVERLAP),
                         "--SequentialMatching.quadratic_overlap", "0"]
        step = "sequential_matcher"
    else:
        args = common + ["--VocabTreeMatching.vocab_tree_path", str(tree),
                         "--VocabTreeMatching.num_images", str(RETRIEVAL_NEIGHBOURS + 1)]
        step = "vocab_tree_matcher"
    with shown.bar("COLMAP matching", plan.images, "image") as bar:
        _run(exe, step, args, log, _counting(bar, _IMAGE, lambda m: (int(m[1]), int(m[2]))))


def _program_mapping(exe: str, image_dir: Path, database: Path, sparse: Path, log: Path, bar: MappingBar) -> None:
    def on_line(line: str) -> None:
        if _INITIAL_PAIR.search(line):
            bar.initial_pair()
        elif found := _REGISTERED.search(line):
            # COLMAP 4 counts the frames registered before this one; 3.x after it ("Registering image #7 (3)").
            bar.set(int(found[1]) + (1 if "num_reg_frames" in line else 0))

    _run(exe, "mapper", ["--database_path", str(database), "--image_path", str(image_dir),
                         "--output_path", str(sparse)], log, on_line)


