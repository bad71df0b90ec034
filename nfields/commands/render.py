"""`fields render`: a video of a trained run (RGB | depth) along an orbit or a camera path."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import FieldsError
from .options import add_options, build
from .shared import RUN_FOLDER, add_shared, shared

POSITIVE = {"min": 1}


@dataclass
class RenderOptions:
    run: str = dataclasses.field(metadata=RUN_FOLDER)
    orbit: bool = False  # an orbit around the scene (what renders without --path)
    # camera path JSON: this toolkit's keyframes or nerfstudio's camera path (see nfields/outputs/camera_path.py;
    # the viewer saves either)
    path: str | None = None
    # nerfstudio's dataparser_transforms.json: --path comes from that nerfstudio run's world (trained on this scene)
    path_transform: str | None = None
    # frame count; None: 60 for an orbit, the path file's for a path
    frames: int | None = dataclasses.field(default=None, metadata=POSITIVE)
    fps: int | None = dataclasses.field(default=None, metadata=POSITIVE)  # frames per second; None: 24 or the path's
    # frame width in pixels; None: the training images' or the path file's
    resolution: int | None = dataclasses.field(default=None, metadata=POSITIVE)
    format: Literal["mp4", "gif"] = "mp4"  # video format
    out: str | None = None  # output file; None: RUN/orbit.<format> or RUN/<path name>.<format>


def add_parser(sub) -> None:
    p = sub.add_parser("render", help="video of a trained run (RGB | depth) along an orbit or a camera path")
    add_options(p, RenderOptions)
    add_shared(p, "data_root", "device")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..engine.runs import load_run
    from ..engine.scenes import load_scene
    from ..outputs.video import render_camera_path, render_orbit

    o, s = build(RenderOptions, args), shared(args)
    if o.orbit and o.path:
        raise FieldsError("give --orbit or --path, not both")
    if o.path_transform and not o.path:
        raise FieldsError("--path-transform applies to a --path")
    run_ = load_run(o.run, s["device"])
    reference = load_scene(run_.config, "train", s["data_root"]).cameras  # its NDC frame, for forward-facing scenes
    if o.path:
        out = Path(o.out) if o.out else run_.folder / f"{Path(o.path).stem}.{o.format}"
        render_camera_path(run_, Path(o.path), out, n_frames=o.frames, fps=o.fps, resolution=o.resolution,
                           ndc=reference.ndc, transform_path=o.path_transform)
    else:
        out = Path(o.out) if o.out else run_.folder / f"orbit.{o.format}"
        render_orbit(run_, reference, out, n_frames=o.frames or 60, fps=o.fps or 24, resolution=o.resolution)
    print(f"video: {out}")
    return 0
