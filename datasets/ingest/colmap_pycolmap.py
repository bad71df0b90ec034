"""The pycolmap backend of run_colmap: features, matches and mapping through COLMAP's Python bindings, in
batches so that each stage's bar moves, with COLMAP's (glog) log captured into colmap.log."""

from __future__ import annotations

import contextlib
import io
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .. import DatasetError
from .colmap_plan import (
    CAMERA_MODEL,
    LOOP_DETECTION_PERIOD,
    NEIGHBOUR_OVERLAP,
    NO_TREE_NOTICE,
    RETRIEVAL_NEIGHBOURS,
    SEQUENTIAL_OVERLAP,
    Plan,
    SiftSettings,
    vocabulary_training,
    vocabulary_words,
)
from .colmap_progress import MappingBar, Progress, advance


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
def pycolmap_logged(image_dir: Path, log: Path) -> Iterator:
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


def pycolmap_features(image_dir: Path, names: list[str], database: Path, sift: SiftSettings,
                       shown: Progress) -> None:
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
            advance(bar, batch.stop - batch.start)


@contextlib.contextmanager
def _database(path: Path):
    import pycolmap

    db = pycolmap.Database.open(path)
    try:
        yield db
    finally:
        db.close()


def pycolmap_matches(database: Path, workspace: Path, plan: Plan, shown: Progress) -> None:
    """Match the pairs plan's matcher picks, in batches of pairs (a pairs file each, match_image_pairs)."""
    import pycolmap

    tree = None
    start = time.perf_counter()
    if plan.needs_tree:
        tree = plan.vocab_tree
        if tree is None:
            shown.say(NO_TREE_NOTICE)
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
        elif kind == "neighbours":
            generator = pycolmap.SequentialPairGenerator(_neighbour_options(), db)
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
            advance(bar, len(pairs))
        return
    pair_file = workspace / "pairs.txt"
    with shown.bar("COLMAP matching", len(pairs), "pair") as bar:
        for batch in _batches(len(pairs), _pair_batch(len(pairs))):
            pair_file.write_text("".join(f"{names[a]} {names[b]}\n" for a, b in pairs[batch]))
            options = pycolmap.ImportedPairingOptions()
            options.match_list_path = str(pair_file)
            pycolmap.match_image_pairs(database, pairing_options=options, device=pycolmap.Device.cpu)
            advance(bar, batch.stop - batch.start)


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
    elif kind == "neighbours":
        pycolmap.match_sequential(database, pairing_options=_neighbour_options(), device=cpu)
    else:
        options = pycolmap.VocabTreePairingOptions()
        options.vocab_tree_path, options.num_images = str(tree), RETRIEVAL_NEIGHBOURS + 1
        pycolmap.match_vocabtree(database, pairing_options=options, device=cpu)


def _neighbour_options():
    """Each image with the next NEIGHBOUR_OVERLAP in name order, and no other pair."""
    import pycolmap

    options = pycolmap.SequentialPairingOptions()
    options.overlap, options.quadratic_overlap, options.loop_detection = NEIGHBOUR_OVERLAP, False, False
    return options


def _pycolmap_vocabulary(database: Path, path: Path) -> Path:
    """A vocabulary tree (COLMAP's visual index) trained on the database's own SIFT descriptors, written to
    `path`: k-means of up to VOCABULARY_TRAINING descriptors, drawn evenly from the images."""
    import pycolmap

    with _database(database) as db:
        descriptors = [db.read_descriptors(image.image_id) for image in db.read_all_images()]
    per_image = max(1, vocabulary_training(len(descriptors)) // max(1, len(descriptors)))
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
    options.num_visual_words = vocabulary_words(len(training))
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


def pycolmap_mapping(image_dir: Path, database: Path, sparse: Path, bar: MappingBar) -> None:
    """Each model pycolmap finds is written to sparse/<index>/."""
    import pycolmap

    models = pycolmap.incremental_mapping(database, image_dir, sparse, initial_image_pair_callback=bar.initial_pair,
                                          next_image_callback=bar.next_image)
    for index, model in models.items():  # incremental_mapping writes its models; any folder left empty is filled
        folder = sparse / str(index)
        if not folder.is_dir() or not any(folder.iterdir()):
            folder.mkdir(exist_ok=True)
            model.write_text(str(folder))
