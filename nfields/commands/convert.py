"""`fields convert`: a capture (COLMAP, LLFF, transforms.json, Blender, images, video) in the canonical layout."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..datasets import FORMATS
from ..datasets.ingest.colmap_plan import EXHAUSTIVE_MAX_IMAGES, MATCHERS
from ..datasets.scene_type import SCENE_TYPE_CHOICES
from .options import add_options, build
from .shared import one_line_warnings

POSITIVE = {"min": 1}


@dataclass
class ConvertOptions:
    input: str = dataclasses.field(metadata={
        "positional": True, "help": "scene folder, transforms.json, poses_bounds.npy, image folder or video file"})
    out: str  # output folder (must not exist or be empty)
    fmt: str | None = dataclasses.field(default=None, metadata={
        "flag": "--from", "choices": FORMATS, "help": "input format; None: detected"})
    # also write images_K/ copies downscaled K times, e.g. --downscales 2 4
    downscales: list[int] = dataclasses.field(default_factory=list, metadata={"metavar": "K", **POSITIVE})
    # images of a COLMAP model (None: INPUT/images); for other formats, a folder outside the capture that its
    # files may come from (a capture's files must otherwise lie inside it)
    images: str | None = None
    frames: int | None = dataclasses.field(default=None, metadata=POSITIVE)  # video: frames to keep; None: 100
    fps: float | None = None  # video: frames per second of video to keep (instead of --frames)
    min_sharpness: float = 0.2  # video: drop frames less sharp than this fraction of the median (Laplacian variance)
    # forward-facing (NDC), object (cameras around a subject) or unbounded; auto: decided from the cameras
    scene_type: str = dataclasses.field(default="auto", metadata={"choices": SCENE_TYPE_CHOICES})
    matcher: str = dataclasses.field(default="auto", metadata={"choices": MATCHERS, "help": (
        "images and videos: which image pairs COLMAP matches; auto: every pair up to "
        f"{EXHAUSTIVE_MAX_IMAGES} images, else a video's frames with their neighbours in time (sequential) and "
        "other images with their most similar ones (vocab-tree)")})
    # images and videos: a COLMAP vocabulary tree file (FAISS format, e.g. vocab_tree_faiss_flickr100K_words32K.bin
    # from COLMAP's releases) for vocab-tree matching and a video's loop detection; None: a vocabulary is built
    # from the images' own features
    vocab_tree: str | None = None
    # keep a sequence's poses even where neighbouring frames jump apart (a model broken into pieces); by default
    # its images are posed again with each frame matched to its next few only
    keep_poses: bool = False


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="turn a capture (COLMAP, LLFF, transforms.json, Blender, images, video) "
                                       "into the canonical layout `fields train --data` reads")
    add_options(p, ConvertOptions)
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..datasets.ingest.convert import convert

    one_line_warnings()
    o = build(ConvertOptions, args)
    result = convert(o.input, o.out, o.fmt, tuple(o.downscales), o.images, o.frames, o.fps, o.min_sharpness,
                     matcher=o.matcher, vocab_tree=o.vocab_tree, scene_type=o.scene_type, keep_poses=o.keep_poses)
    cap = result.capture
    splits = ", ".join(f"{len(v)} {k}" for k, v in cap.splits.items())
    print(f"{result.source_format} -> {result.out}: {len(cap)} images {cap.width}x{cap.height} ({splits}), "
          f"box {cap.aabb.tolist()} ({'bounded' if cap.bounded else 'content beyond it contracted'}), "
          f"scale {cap.normalization.scale:.4g}" + (", NDC" if cap.ndc_near else "")
          + (f", {result.frames_dropped_blurry} blurry frames dropped" if result.frames_dropped_blurry else ""))
    print(f"scene type: {cap.scene_type}: {cap.scene_type_reason}")
    print(f"train on it: fields train --data {result.out}")
    return 0
