"""`fields render`: a video of a trained run (RGB, depth or both) along an orbit or a camera path."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import FieldsError
from .options import add_options, build, given
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
    # between a --path's keyframes: spline, a cubic spline of positions and a rotation spline through the keyframes
    # at their times (smooth: no jump in speed at a keyframe); linear, positions lerped and rotations slerped
    interpolation: Literal["spline", "linear"] = "spline"
    # frame count; None: 60 for an orbit, the path file's for a path
    frames: int | None = dataclasses.field(default=None, metadata=POSITIVE)
    fps: int | None = dataclasses.field(default=None, metadata=POSITIVE)  # frames per second; None: 24 or the path's
    # frame width in pixels; None: the training images' or the path file's
    resolution: int | None = dataclasses.field(default=None, metadata=POSITIVE)
    # what to render: rgb, depth (turbo colours, near bright, one scale for the whole video) or both
    outputs: tuple[Literal["rgb", "depth"], ...] = ("rgb", "depth")
    # side-by-side: one video, the outputs left to right; separate: one video per output (NAME_rgb.mp4, NAME_depth.mp4)
    layout: Literal["side-by-side", "separate"] = "side-by-side"
    format: Literal["mp4", "gif"] = "mp4"  # video format
    out: str | None = None  # output file; None: RUN/orbit.<format> or RUN/<path name>.<format>
    # also every frame as a PNG: DIR/frame_00000.png, ... (separate layout: DIR/rgb/, DIR/depth/); a new or empty folder
    frames_dir: str | None = None


def add_parser(sub) -> None:
    p = sub.add_parser("render", help="video of a trained run (RGB, depth or both) along an orbit or a camera path")
    add_options(p, RenderOptions)
    add_shared(p, "data_root", "device")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..engine.runs import load_run
    from ..engine.scenes import load_scene
    from ..outputs.video import render_camera_path, render_orbit
    from ..outputs.video_files import VideoOutput

    o, s = build(RenderOptions, args), shared(args)
    if o.orbit and o.path:
        raise FieldsError("give --orbit or --path, not both")
    if o.path_transform and not o.path:
        raise FieldsError("--path-transform applies to a --path")
    if "interpolation" in given(args, RenderOptions) and not o.path:
        raise FieldsError("--interpolation applies to a --path (an orbit is a circle already)")
    run_ = load_run(o.run, s["device"])
    name = Path(o.path).stem if o.path else "orbit"
    out = VideoOutput(Path(o.out) if o.out else run_.folder / f"{name}.{o.format}", tuple(dict.fromkeys(o.outputs)),
                      o.layout, o.fps, Path(o.frames_dir) if o.frames_dir else None)
    out.check()
    reference = load_scene(run_.config, "train", s["data_root"]).cameras  # its NDC frame, for forward-facing scenes
    if o.path:
        videos = render_camera_path(run_, Path(o.path), out, n_frames=o.frames, resolution=o.resolution,
                                    ndc=reference.ndc, transform_path=o.path_transform, interpolation=o.interpolation)
    else:
        videos = render_orbit(run_, reference, out, n_frames=o.frames or 60, resolution=o.resolution)
    for video in videos:
        print(f"video: {video}")
    if out.frames_dir is not None:
        print(f"frames: {out.frames_dir}")
    return 0
