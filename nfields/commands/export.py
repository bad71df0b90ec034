"""`fields export`: a coloured mesh (marching cubes) or a point cloud (depth renders) of a run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .options import add_options, build
from .shared import RUN_FOLDER, add_shared, shared


@dataclass
class ExportOptions:
    run: str = dataclasses.field(metadata=RUN_FOLDER)
    what: Literal["mesh", "points"] = dataclasses.field(metadata={"positional": True, "help": "what to export"})
    # mesh: lattice points along the box's longest side
    resolution: int = dataclasses.field(default=256, metadata={"min": 2})
    threshold: float = 10.0  # mesh: density level of the surface
    format: Literal["ply", "obj", "glb"] = "ply"  # mesh file format
    views: int = dataclasses.field(default=20, metadata={"min": 1})  # points: evenly spaced training cameras
    # points: render width in pixels; None: the training images'
    width: int | None = dataclasses.field(default=None, metadata={"min": 1})
    min_opacity: float = 0.9  # points: keep rays at least this opaque
    max_points: int = dataclasses.field(default=1_000_000, metadata={"min": 1})  # points: most points kept
    out: str | None = None  # output file; None: RUN/mesh.<format> or RUN/points.ply


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="a coloured mesh (marching cubes) or point cloud (depth renders) of a run")
    add_options(p, ExportOptions)
    add_shared(p, "data_root", "device")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..engine.runs import load_run
    from ..engine.scenes import load_scene
    from ..outputs.export import export_mesh, export_points

    o, s = build(ExportOptions, args), shared(args)
    run_ = load_run(o.run, s["device"])
    if o.what == "mesh":
        out = Path(o.out) if o.out else run_.folder / f"mesh.{o.format}"
        report = export_mesh(run_.field, run_.renderer, out, resolution=o.resolution, threshold=o.threshold)
    else:
        cameras = load_scene(run_.config, "train", s["data_root"]).cameras.resized(o.width)
        out = Path(o.out) if o.out else run_.folder / "points.ply"
        report = export_points(run_.field, run_.renderer, cameras, out, views=o.views,
                               min_opacity=o.min_opacity, max_points=o.max_points)
    print(report.summary())
    return 0
