"""`fields export`: a coloured mesh (marching cubes, Poisson or TSDF) or point cloud (depth renders) of a run,
in the capture's coordinates by default."""

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
    # mesh: marching cubes on the density lattice, Poisson reconstruction of the depth-render points, or TSDF
    # fusion of RGB-D renders
    method: Literal["marching-cubes", "poisson", "tsdf"] = "marching-cubes"
    # coordinates: the capture's own (undoing the conversion's centring, rotation and scale) or the normalised scene's
    frame: Literal["capture", "scene"] = "capture"
    # mesh: marching-cubes lattice points / tsdf voxels along the occupied box's longest side
    resolution: int = dataclasses.field(default=256, metadata={"min": 2})
    threshold: float = 10.0  # marching cubes: density level of the surface
    format: Literal["ply", "obj", "glb"] = "ply"  # mesh file format
    # points, poisson, tsdf: evenly spaced training cameras rendered
    views: int = dataclasses.field(default=20, metadata={"min": 1})
    # points, poisson, tsdf: render width in pixels; None: the training images'
    width: int | None = dataclasses.field(default=None, metadata={"min": 1})
    min_opacity: float = 0.9  # points, poisson, tsdf: pixels at least this opaque give a depth
    max_points: int = dataclasses.field(default=1_000_000, metadata={"min": 1})  # points, poisson: most points kept
    # points, poisson: drop points whose mean distance to 20 neighbours exceeds the average by this many standard
    # deviations; 0 or none: keep every point
    outlier_std: float | None = dataclasses.field(default=2.0, metadata={"min": 0})
    poisson_depth: int = dataclasses.field(default=9, metadata={"min": 1})  # poisson: octree depth
    # poisson: remove this fraction of the vertices, those least supported by points (0: keep all)
    trim: float = dataclasses.field(default=0.1, metadata={"min": 0})
    truncation: float = dataclasses.field(default=4.0, metadata={"min": 1})  # tsdf: truncation distance in voxels
    # output file; None: RUN/mesh.<format> (RUN/mesh-<method>.<format> for poisson and tsdf) or RUN/points.ply
    out: str | None = None


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="a coloured mesh (marching cubes, Poisson, TSDF) or point cloud of a run")
    add_options(p, ExportOptions)
    add_shared(p, "data_root", "device")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..engine.runs import load_run
    from ..engine.scenes import load_scene, run_capture
    from ..errors import FieldsError
    from ..outputs.export import MeshSettings, export_mesh, export_points

    o, s = build(ExportOptions, args), shared(args)
    if o.trim >= 1:
        raise FieldsError(f"--trim {o.trim:g}: a fraction of the vertices below 1 (0: keep all)")
    run_ = load_run(o.run, s["device"])
    capture = run_capture(run_.config, s["data_root"])
    if o.frame == "capture" and capture.ndc_near is not None:
        raise FieldsError("--frame capture: this forward-facing run's field lives in NDC, which exports do not map "
                          "back; give --frame scene (NDC coordinates)")
    norm = capture.normalization if o.frame == "capture" else None
    needs_cameras = o.what == "points" or o.method != "marching-cubes"
    cameras = load_scene(run_.config, "train", s["data_root"]).cameras.resized(o.width) if needs_cameras else None
    if o.what == "mesh":
        name = "mesh" if o.method == "marching-cubes" else f"mesh-{o.method}"
        out = Path(o.out) if o.out else run_.folder / f"{name}.{o.format}"
        settings = MeshSettings(o.resolution, o.threshold, o.views, o.min_opacity, o.max_points, o.outlier_std,
                                o.poisson_depth, o.trim, o.truncation)
        report = export_mesh(run_.field, run_.renderer, out, o.method, cameras, norm, settings)
    else:
        out = Path(o.out) if o.out else run_.folder / "points.ply"
        report = export_points(run_.field, run_.renderer, cameras, out, views=o.views, min_opacity=o.min_opacity,
                               max_points=o.max_points, outlier_std=o.outlier_std, norm=norm)
    print(report.summary())
    return 0
