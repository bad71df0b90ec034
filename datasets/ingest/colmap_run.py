"""Camera poses for unposed images with COLMAP (SIFT features, matching, incremental mapping): the `colmap`
program when it is on PATH, else the pycolmap package (COLMAP's own Python bindings, `pip install pycolmap`:
CPU wheels, no system install).

Each stage shows its progress (images featured, pairs or blocks matched, images registered). Which pairs of
images are matched depends on how many there are and where they come from (see choose_matcher), and SIFT is
sized to the images (see sift_settings).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

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

MATCHERS = ("auto", "exhaustive", "sequential", "vocab-tree")
# Every pair is matched up to this many images (1,225 pairs). Past it, an unordered set is matched with each
# image's RETRIEVAL_NEIGHBOURS most similar images and a video's frames with their neighbours in time. The
# pairs saved grow with N (lego's 100: 4,950 pairs exhaustively, 1,341 retrieved; 146 photos: 10,585, about
# 1,950), but a retrieved pair costs more (they overlap: 25 ms against 15 ms a pair on lego) and the
# vocabulary and retrieval 4-7 s: at 50 of lego's photos, about 22 s retrieved against 18 s exhaustively.
EXHAUSTIVE_MAX_IMAGES = 50
RETRIEVAL_NEIGHBOURS = 20
# Video frames: each frame with the next SEQUENTIAL_OVERLAP frames and the frames 2, 4, 8, ... ahead (COLMAP's
# quadratic overlap); with a vocabulary tree, every LOOP_DETECTION_PERIOD-th frame also with its most similar
# frames, which closes loops (the end of an orbit seen again at its start).
SEQUENTIAL_OVERLAP = 10
LOOP_DETECTION_PERIOD = 10
# SIFT: images are downscaled to this long side for features (finer detail adds features, not poses, and costs
# time in every pair); at most one feature per FEATURE_PIXELS pixels, between MIN_ and MAX_FEATURES (COLMAP's
# own cap is 8192), since a pair's cost grows with the features of both images.
MAX_IMAGE_SIZE = 1600
FEATURE_PIXELS = 100
MIN_FEATURES, MAX_FEATURES = 1024, 8192
# A vocabulary built from the images' own features when no tree file is given: k-means of 500 descriptors an
# image (VOCABULARY_TRAINING bounds the count) into a word per 64 descriptors or more (FAISS's k-means asks 39).
# On lego's 100 photos, 30,000 descriptors into 256 words (1.4 s of CPU) found as good neighbours as 100,000
# into 1,024 (11 s): the 20 retrieved an image held every pair of 100 or more inliers of exhaustive matching,
# and 94-96 % of all inliers.
VOCABULARY_TRAINING = (50_000, 200_000)
VOCABULARY_WORDS = 4096


@dataclass(frozen=True)
class MatcherChoice:
    matcher: str  # exhaustive, sequential or vocab-tree
    reason: str  # why, for the screen and the log


def choose_matcher(count: int, video: bool, requested: str = "auto") -> MatcherChoice:
    """Which pairs to match for `count` images (video frames when `video`), or the `requested` matcher.

    Every pair while there are at most EXHAUSTIVE_MAX_IMAGES (the surest: nothing that overlaps is missed, and
    cheap); past that, a video's frames with their neighbours in time (sequential), and an unordered set with
    its most similar images found by a vocabulary tree (vocab-tree). File names are not taken for an order:
    lego's r_0, r_1, ... are views in random places.
    """
    if requested not in MATCHERS:
        raise DatasetError("--matcher", f"unknown matcher '{requested}' (known: {', '.join(MATCHERS)})")
    if requested != "auto":
        return MatcherChoice(requested, "--matcher")
    if count <= EXHAUSTIVE_MAX_IMAGES:
        return MatcherChoice("exhaustive", f"{count} images, at most {EXHAUSTIVE_MAX_IMAGES}: every pair")
    if video:
        return MatcherChoice("sequential", f"{count} video frames: each with its neighbours in time")
    return MatcherChoice("vocab-tree", f"{count} unordered images, over {EXHAUSTIVE_MAX_IMAGES}: each with its "
                                       f"{RETRIEVAL_NEIGHBOURS} most similar")


@dataclass(frozen=True)
class SiftSettings:
    max_image_size: int  # long side features are found at (the image's own when smaller)
    max_num_features: int


def sift_settings(width: int, height: int) -> SiftSettings:
    """SIFT sized to images of width x height: long side at most MAX_IMAGE_SIZE, features by area."""
    scale = min(1.0, MAX_IMAGE_SIZE / max(width, height))
    pixels = width * height * scale * scale
    features = int(min(MAX_FEATURES, max(MIN_FEATURES, round(pixels / FEATURE_PIXELS / 256) * 256)))
    return SiftSettings(min(MAX_IMAGE_SIZE, max(width, height)), features)


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


class _Progress:
    """COLMAP's stages on screen (stderr): a line per plan or notice, a tqdm bar per stage."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.timings: list[str] = []  # "COLMAP features: 100/100 images in 34.1 s", for colmap.log

    def say(self, line: str) -> None:
        if self.enabled:
            tqdm.write(line, file=sys.stderr)

    @contextlib.contextmanager
    def bar(self, desc: str, total: int | None, unit: str) -> Iterator[tqdm]:
        start = time.perf_counter()
        with tqdm(total=total, desc=desc, unit=unit, disable=not self.enabled, file=sys.stderr, dynamic_ncols=True,
                  mininterval=0.5) as bar:
            yield bar
            count = f"{bar.n}/{bar.total}" if bar.total else f"{bar.n}"
            self.timings.append(f"{desc}: {count} {unit}s in {time.perf_counter() - start:.1f} s")


def _advance(bar: tqdm, count: int) -> None:
    """bar.update, counting even when the bar is not shown (tqdm then leaves n alone): for the timings."""
    if bar.disable:
        bar.n += count
    else:
        bar.update(count)


@dataclass(frozen=True)
class _Plan:
    images: int
    width: int
    height: int
    sift: SiftSettings
    choice: MatcherChoice
    vocab_tree: Path | None  # a tree file given; None: built from the images' features when one is needed

    @property
    def needs_tree(self) -> bool:
        return self.choice.matcher == "vocab-tree" or (self.choice.matcher == "sequential"
                                                       and self.images > 2 * LOOP_DETECTION_PERIOD)

    def describe(self, backend: str) -> str:
        size = ("at full size" if self.sift.max_image_size >= max(self.width, self.height)
                else f"at {self.sift.max_image_size} px on the long side")
        return (f"COLMAP ({backend}): {self.images} images {self.width}x{self.height}; SIFT {size}, at most "
                f"{self.sift.max_num_features} features; {self.choice.matcher} matching ({self.choice.reason})")


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
    plan = _Plan(len(images), width, height, sift_settings(width, height), choose_matcher(len(images), video, matcher),
                 Path(vocab_tree) if vocab_tree is not None else None)
    shown = _Progress(progress)
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
        with _pycolmap_logged(image_dir, log) as pycolmap:
            shown.say(plan.describe(f"pycolmap {pycolmap.__version__}"))
            with log.open("a") as f:
                f.write(plan.describe(f"pycolmap {pycolmap.__version__}") + "\n")
            _pycolmap_features(image_dir, [p.name for p in images], database, plan.sift, shown)
            _pycolmap_matches(database, workspace, plan, shown)
            return _map_until_posed(image_dir, workspace, shown,
                                    lambda sparse, bar: _pycolmap_mapping(image_dir, database, sparse, bar))
    finally:
        with log.open("a") as f:
            f.write("".join(f"{line}\n" for line in shown.timings))


def _map_until_posed(image_dir: Path, workspace: Path, shown: _Progress,
                     mapping: Callable[[Path, _MappingBar], None]) -> Path:
    """Run `mapping` (writes models into the folder it is given) until a model holds half the images or
    MAPPING_TRIES runs are spent; returns the model folder with the most registered images."""
    images = len(list_images(image_dir))
    registered: dict[Path, int] = {}
    for attempt in range(MAPPING_TRIES):
        sparse = workspace / ("sparse" if attempt == 0 else f"sparse-{attempt + 1}")
        sparse.mkdir(exist_ok=True)
        desc = "COLMAP mapping" if attempt == 0 else f"COLMAP mapping (try {attempt + 1} of {MAPPING_TRIES})"
        with shown.bar(desc, images, "image") as tq:
            bar = _MappingBar(tq)
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


class _MappingBar:
    """Images registered in the model being built: 2 at its initial pair, one more per image registered."""

    def __init__(self, bar: tqdm):
        self.bar, self.current = bar, 0

    def initial_pair(self) -> None:
        self.set(2)

    def next_image(self) -> None:
        self.set(self.current + 1)

    def set(self, count: int) -> None:
        self.current = count
        self.bar.n = min(count, self.bar.total)
        self.bar.set_postfix_str("registered", refresh=False)
        self.bar.refresh()

    def done(self, registered: int) -> None:
        self.set(registered)
        self.bar.set_postfix_str("registered in the largest model")


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
                                  plan: _Plan, shown: _Progress) -> None:
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
            shown.say(_NO_TREE_NOTICE)
            tree = workspace / "vocab_tree.bin"
            words = _vocabulary_words(min(_vocabulary_training(plan.images),
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
    else:
        args = common + ["--VocabTreeMatching.vocab_tree_path", str(tree),
                         "--VocabTreeMatching.num_images", str(RETRIEVAL_NEIGHBOURS + 1)]
        step = "vocab_tree_matcher"
    with shown.bar("COLMAP matching", plan.images, "image") as bar:
        _run(exe, step, args, log, _counting(bar, _IMAGE, lambda m: (int(m[1]), int(m[2]))))


def _program_mapping(exe: str, image_dir: Path, database: Path, sparse: Path, log: Path, bar: _MappingBar) -> None:
    def on_line(line: str) -> None:
        if _INITIAL_PAIR.search(line):
            bar.initial_pair()
        elif found := _REGISTERED.search(line):
            # COLMAP 4 counts the frames registered before this one; 3.x after it ("Registering image #7 (3)").
            bar.set(int(found[1]) + (1 if "num_reg_frames" in line else 0))

    _run(exe, "mapper", ["--database_path", str(database), "--image_path", str(image_dir),
                         "--output_path", str(sparse)], log, on_line)


_NO_TREE_NOTICE = ("COLMAP: no vocabulary tree file given (--vocab-tree): building a vocabulary from these images' "
                   "own features instead")


def _vocabulary_training(images: int) -> int:
    """Descriptors to train a vocabulary for `images` images on."""
    low, high = VOCABULARY_TRAINING
    return min(high, max(low, 500 * images))


def _vocabulary_words(descriptors: int) -> int:
    """Words for a vocabulary trained on `descriptors`: a power of two with at least 64 descriptors a word,
    between 256 and VOCABULARY_WORDS."""
    return int(min(VOCABULARY_WORDS, max(256, 2 ** int(math.log2(max(descriptors // 64, 1))))))


# pycolmap: stages run as separate calls (features a few images at a time, matches a batch of pairs at a time)
# so that the bars move between them.

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
def _pycolmap_logged(image_dir: Path, log: Path) -> Iterator:
    """pycolmap, with COLMAP's printing and logging (glog, to stderr by default) going to colmap.log, errors
    still shown; pycolmap's exceptions become a DatasetError naming image_dir."""
    pycolmap = _import_pycolmap()

    output = io.StringIO()
    pycolmap.logging.alsologtostderr = False
    pycolmap.logging.stderrthreshold = int(pycolmap.logging.ERROR)
    pycolmap.logging.set_log_destination(pycolmap.logging.INFO, str(log.parent / "pycolmap."))
    try:
        with contextlib.redirect_stdout(output):
            yield pycolmap
    except DatasetError:
        raise
    except Exception as err:  # pycolmap raises plain RuntimeErrors and ValueErrors
        raise DatasetError(image_dir, f"pycolmap failed: {str(err).splitlines()[0][:200]}") from None
    finally:
        # glog holds the end of its file in a buffer (up to 30 s of lines): pointing it elsewhere closes the file.
        pycolmap.logging.set_log_destination(pycolmap.logging.INFO, str(log.parent / "pycolmap-later."))
        with log.open("a") as f:
            f.write(output.getvalue())
            for part in sorted(log.parent.glob("pycolmap.*")):
                f.write(part.read_text(errors="replace"))
                part.unlink()


def _batches(count: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def _pycolmap_features(image_dir: Path, names: list[str], database: Path, sift: SiftSettings,
                       shown: _Progress) -> None:
    """SIFT features of `names`, a few images a call (about 40 calls, at least 4 images each; a call costs
    about 0.1 s more than its images): all share the camera of the first."""
    import pycolmap

    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = CAMERA_MODEL
    options = pycolmap.FeatureExtractionOptions()
    options.max_image_size = sift.max_image_size
    options.sift.max_num_features = sift.max_num_features
    with shown.bar("COLMAP features", len(names), "image") as bar:
        for batch in _batches(len(names), max(4, math.ceil(len(names) / 40))):
            pycolmap.extract_features(database, image_dir, image_names=names[batch], reader_options=reader,
                                      camera_mode=pycolmap.CameraMode.SINGLE, extraction_options=options,
                                      device=pycolmap.Device.cpu)
            if reader.existing_camera_id < 0:  # the camera of the first images read, for all
                with _database(database) as db:
                    cameras = db.read_all_cameras()
                if cameras:
                    reader.existing_camera_id = cameras[0].camera_id
            _advance(bar, batch.stop - batch.start)


@contextlib.contextmanager
def _database(path: Path):
    import pycolmap

    db = pycolmap.Database.open(path)
    try:
        yield db
    finally:
        db.close()


def _pycolmap_matches(database: Path, workspace: Path, plan: _Plan, shown: _Progress) -> None:
    """Match the pairs plan's matcher picks, in batches of pairs (a pairs file each, match_image_pairs)."""
    import pycolmap

    tree = None
    start = time.perf_counter()
    if plan.needs_tree:
        tree = plan.vocab_tree
        if tree is None:
            shown.say(_NO_TREE_NOTICE)
            tree = _pycolmap_vocabulary(database, workspace / "vocab_tree.bin")
            shown.timings.append(f"COLMAP vocabulary: built in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    with _database(database) as db:
        names = {image.image_id: image.name for image in db.read_all_images()}
        kind = plan.choice.matcher
        if kind == "exhaustive":
            generator = pycolmap.ExhaustivePairGenerator(pycolmap.ExhaustivePairingOptions(), db)
        elif kind == "sequential":
            options = pycolmap.SequentialPairingOptions()
            options.overlap, options.quadratic_overlap = SEQUENTIAL_OVERLAP, True
            if tree is not None:
                options.loop_detection, options.vocab_tree_path = True, str(tree)
                options.loop_detection_period = LOOP_DETECTION_PERIOD
            generator = pycolmap.SequentialPairGenerator(options, db)
        else:
            options = pycolmap.VocabTreePairingOptions()
            options.vocab_tree_path = str(tree)
            options.num_images = RETRIEVAL_NEIGHBOURS + 1  # the image itself comes back first
            generator = pycolmap.VocabTreePairGenerator(options, db)
        pairs = _tiled(_unique_pairs(generator.all_pairs()), sorted(names))
    shown.timings.append(f"COLMAP pairs: {len(pairs)} chosen in {time.perf_counter() - start:.1f} s")
    if not pairs:
        return
    if any(" " in name for name in names.values()):  # a pairs file cannot name them: one call, no steps
        with shown.bar("COLMAP matching", len(pairs), "pair") as bar:
            _match_all(database, kind, tree)
            _advance(bar, len(pairs))
        return
    pair_file = workspace / "pairs.txt"
    with shown.bar("COLMAP matching", len(pairs), "pair") as bar:
        for batch in _batches(len(pairs), _pair_batch(len(pairs))):
            pair_file.write_text("".join(f"{names[a]} {names[b]}\n" for a, b in pairs[batch]))
            options = pycolmap.ImportedPairingOptions()
            options.match_list_path = str(pair_file)
            pycolmap.match_image_pairs(database, pairing_options=options, device=pycolmap.Device.cpu)
            _advance(bar, batch.stop - batch.start)


def _pair_batch(pairs: int) -> int:
    """Pairs a match_image_pairs call: about 20 calls, at least 200 pairs each. A call reads and indexes the
    features of each image its pairs name (about 10 ms of CPU an image on lego): on lego's 4,950 pairs, 25
    calls took 80 s of CPU, one call 67-73 s."""
    return max(200, math.ceil(pairs / 20))


def _tiled(pairs: list[tuple[int, int]], ids: list[int]) -> list[tuple[int, int]]:
    """The pairs ordered tile by tile (pairs between images i..i+T and j..j+T, T about the square root of the
    pairs a batch): a batch then reads the features of about 2T images, not of all images."""
    tile = max(4, math.isqrt(_pair_batch(len(pairs))))
    position = {image_id: i // tile for i, image_id in enumerate(ids)}
    return sorted(pairs, key=lambda p: (min(position[p[0]], position[p[1]]), max(position[p[0]], position[p[1]])))


def _unique_pairs(pairs) -> list[tuple[int, int]]:
    seen, unique = set(), []
    for a, b in pairs:
        key = (min(a, b), max(a, b))
        if a != b and key not in seen:
            seen.add(key)
            unique.append((a, b))
    return unique


def _match_all(database: Path, kind: str, tree: Path | None) -> None:
    """The matcher's pairs in one pycolmap call (for image names a pairs file cannot hold)."""
    import pycolmap

    cpu = pycolmap.Device.cpu
    if kind == "exhaustive":
        pycolmap.match_exhaustive(database, device=cpu)
    elif kind == "sequential":
        options = pycolmap.SequentialPairingOptions()
        options.overlap = SEQUENTIAL_OVERLAP
        if tree is not None:
            options.loop_detection, options.vocab_tree_path = True, str(tree)
            options.loop_detection_period = LOOP_DETECTION_PERIOD
        pycolmap.match_sequential(database, pairing_options=options, device=cpu)
    else:
        options = pycolmap.VocabTreePairingOptions()
        options.vocab_tree_path, options.num_images = str(tree), RETRIEVAL_NEIGHBOURS + 1
        pycolmap.match_vocabtree(database, pairing_options=options, device=cpu)


def _pycolmap_vocabulary(database: Path, path: Path) -> Path:
    """A vocabulary tree (COLMAP's visual index) trained on the database's own SIFT descriptors, written to
    `path`: k-means of up to VOCABULARY_TRAINING descriptors, drawn evenly from the images."""
    import pycolmap

    with _database(database) as db:
        descriptors = [db.read_descriptors(image.image_id) for image in db.read_all_images()]
    per_image = max(1, _vocabulary_training(len(descriptors)) // max(1, len(descriptors)))
    rng = np.random.default_rng(0)
    training = []
    for d in descriptors:
        data = d.to_float().data
        if len(data) > per_image:
            data = data[np.sort(rng.choice(len(data), per_image, replace=False))]
        training.append(data)
    if not training or sum(len(t) for t in training) == 0:
        raise DatasetError(database.parent, "COLMAP found no features in the images",
                           "Check that they are photos of a textured scene, in focus.")
    training = np.ascontiguousarray(np.concatenate(training), dtype=np.float32)
    options = pycolmap.VisualIndex.BuildOptions()
    options.num_visual_words = _vocabulary_words(len(training))
    options.num_iterations, options.num_rounds = 20, 1
    index = pycolmap.VisualIndex.create(128, 64)
    with _c_output_to(path.parent / "colmap.log"):  # FAISS's k-means warns on stderr (too few points for
        # the 64 words of the Hamming embedding, which it then trains anyway)
        index.build(options, pycolmap.FeatureDescriptorsFloat(descriptors[0].type, training))
    index.write(str(path))
    return path


@contextlib.contextmanager
def _c_output_to(path: Path) -> Iterator[None]:
    """What C and C++ code prints to stdout and stderr (file descriptors 1 and 2) goes to `path` meanwhile."""
    import ctypes

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with path.open("a") as f:
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    ctypes.CDLL(None).fflush(None)  # C's buffered stdout, before fd 1 is put back
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        os.close(saved[0])
        os.close(saved[1])


def _pycolmap_mapping(image_dir: Path, database: Path, sparse: Path, bar: _MappingBar) -> None:
    """Each model pycolmap finds is written to sparse/<index>/."""
    import pycolmap

    models = pycolmap.incremental_mapping(database, image_dir, sparse, initial_image_pair_callback=bar.initial_pair,
                                          next_image_callback=bar.next_image)
    for index, model in models.items():  # incremental_mapping writes its models; any folder left empty is filled
        folder = sparse / str(index)
        if not folder.is_dir() or not any(folder.iterdir()):
            folder.mkdir(exist_ok=True)
            model.write_text(str(folder))
