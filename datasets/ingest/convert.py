"""`fields convert`: any supported capture -> the canonical layout (see nfields.datasets.canonical).

Output is written into a temporary folder next to the destination and renamed at the end, so a folder
at the destination is always a complete conversion.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .. import Capture, DatasetError, detect_format, read_capture
from ..canonical import write_canonical
from ..colmap import colmap_capture, read_colmap_model
from ..formats import FORMATS
from ..llff import list_images
from ..paths import capture_files
from ..scene_type import check_scene_type, decide, normalise_as
from .colmap_plan import MATCHERS
from .colmap_run import colmap_backend, run_colmap
from .pose_repair import repair_broken_poses
from .video_frames import MIN_SHARPNESS_RATIO, extract_frames


@dataclass
class ConvertResult:
    out: Path
    source_format: str
    capture: Capture
    frames_dropped_blurry: int = 0
    images_unposed: int = 0  # images (or kept video frames) COLMAP could not register: left out of the scene


def _check_destination(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(out, "already exists and is not empty; choose another --out or remove it")


def _unposed_capture(path: Path, fmt: str, work: Path, frames: int | None, fps: float | None,
                     min_sharpness_ratio: float, matcher: str, vocab_tree: Path | None,
                     progress: bool, scene_type: str) -> tuple[Capture, int, int, Path]:
    """Frames (video) or images (folder) posed by COLMAP, normalised.

    Returns the capture, the blurry frames dropped, the images COLMAP left unposed, and the model folder.
    """
    dropped = 0
    if fmt == "video":
        image_dir = work / "frames"
        extracted = extract_frames(path, image_dir, frames, fps, min_sharpness_ratio, progress)
        dropped = extracted.dropped_blurry
    else:
        image_dir = path / "images" if list_images(path / "images") else path
        capture_files(path, list_images(image_dir), image_dir)  # before COLMAP reads them
    model_dir = run_colmap(image_dir, work / "colmap", video=fmt == "video", matcher=matcher, vocab_tree=vocab_tree,
                           progress=progress)
    capture = colmap_capture(read_colmap_model(model_dir), image_dir, path.stem)
    unposed = len(list_images(image_dir)) - len(capture)
    if unposed:
        warnings.warn(f"{path}: COLMAP could not pose {unposed} of {unposed + len(capture)} images; they are "
                      f"left out of the scene (too little overlap with the others: add views between them)")
    return normalise_as(capture, decide(capture, scene_type), model_dir), dropped, unposed, model_dir


def convert(input_path: str | Path, out: str | Path, fmt: str | None = None, downscales: tuple[int, ...] = (),
            image_dir: str | Path | None = None, frames: int | None = None, fps: float | None = None,
            min_sharpness_ratio: float = MIN_SHARPNESS_RATIO, progress: bool = True, matcher: str = "auto",
            vocab_tree: str | Path | None = None, scene_type: str = "auto", keep_poses: bool = False) -> ConvertResult:
    """Convert a capture into the canonical layout at `out`.

    fmt: one of nfields.datasets.FORMATS, or None to detect it. downscales: extra image_<k>/ copies.
    image_dir: the images of a COLMAP model (default <input>/images); for the other posed formats, a folder outside
    the capture its files may lie in (files elsewhere are refused before anything is written).
    frames / fps: frames taken from a video. scene_type: "auto" (decided from the cameras) or the scene type to
    normalise the capture as (see nfields.datasets.scene_type).
    keep_poses: keep a sequence's poses even where they break into pieces (by default its images are posed again
    with each frame matched to its next few only, see pose_repair.py).
    matcher / vocab_tree (images and videos): the image pairs COLMAP matches, one of MATCHERS ("auto": by the
    count and source of the images, see colmap_run.choose_matcher), and a COLMAP vocabulary tree file for the
    vocab-tree matcher and a video's loop detection (None: a vocabulary is built from the images).
    """
    input_path, out = Path(input_path), Path(out)
    if fmt is not None and fmt not in FORMATS:
        raise DatasetError("--from", f"unknown format '{fmt}' (known: {', '.join(FORMATS)})")
    check_scene_type(scene_type)
    bad = [k for k in downscales if not isinstance(k, int) or k < 2]
    if bad:
        raise DatasetError("--downscales", f"factors must be integers >= 2, got {bad}")
    if matcher not in MATCHERS:
        raise DatasetError("--matcher", f"unknown matcher '{matcher}' (known: {', '.join(MATCHERS)})")
    if vocab_tree is not None and not Path(vocab_tree).is_file():
        raise DatasetError(vocab_tree, "vocabulary tree file not found (--vocab-tree)")
    fmt = fmt or detect_format(input_path)
    _check_destination(out)
    posed = fmt not in ("images", "video")
    if not posed:
        colmap_backend()  # fail before any work when COLMAP is missing
    # A posed capture is read (its files checked) before anything is written.
    capture = read_capture(input_path, fmt, image_dir, scene_type) if posed else None
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        dropped, unposed, model_dir = 0, 0, None
        if not posed:
            capture, dropped, unposed, model_dir = _unposed_capture(
                input_path, fmt, temp / ".work", frames, fps, min_sharpness_ratio, matcher,
                Path(vocab_tree) if vocab_tree is not None else None, progress, scene_type)
        matched_neighbours = not posed and matcher == "neighbours"  # posing again would repeat that run
        repair = repair_broken_poses(capture, temp / ".work" / "reposed", scene_type,
                                     repose=not (keep_poses or matched_neighbours), progress=progress)
        if repair is not None:
            warnings.warn(f"{input_path}: {repair.note}")
            capture, model_dir = repair.capture, repair.model_dir or model_dir
        with tqdm(total=len(capture), desc=f"writing {out.name}", unit="image", disable=not progress) as bar:
            write_canonical(capture, temp, tuple(downscales), progress=bar.update)
        if model_dir is not None:  # keep COLMAP's model (capture coordinates) beside the converted scene
            shutil.copytree(model_dir, temp / "colmap" / "sparse" / "0")
            logs = [temp / ".work" / run / "colmap.log" for run in ("colmap", "reposed")]
            (temp / "colmap" / "colmap.log").write_text("".join(log.read_text() for log in logs if log.is_file()))
        shutil.rmtree(temp / ".work", ignore_errors=True)
        _check_destination(out)
        if out.exists():
            out.rmdir()
        temp.rename(out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return ConvertResult(out, fmt, capture, dropped, unposed)
