"""`fields fit-image` and `fields fit-sdf`: a backbone's coordinate network fitted to an image or a mesh."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..errors import FieldsError
from .options import add_options, build
from .shared import add_shared, one_line_warnings, set_threads

BACKBONE = "backbone: hashgrid, mlp, tensorf-vm, tensorf-cp, triplane, rbf, cam"
POSITIVE = {"min": 1}


@dataclass
class FitImageOptions:
    image: str = dataclasses.field(metadata={"positional": True,
                                             "help": "PNG, JPEG, ... (grey or RGB; alpha is dropped)"})
    field: str = dataclasses.field(default="rbf", metadata={"help": BACKBONE})
    steps: int = dataclasses.field(default=2000, metadata=POSITIVE)  # fitting steps
    seconds: float | None = None  # fitting time budget; stops at whichever limit comes first
    batch: int = dataclasses.field(default=1 << 16, metadata=POSITIVE)  # random pixels per step
    lr: float | None = None  # learning rate of the encoder; None: the backbone's
    decoder_lr: float | None = None  # learning rate of the head; None: the backbone's
    output: str | None = None  # reconstruction image; None: runs/fit-image/<image>-<field>.png
    seed: int = 0  # random seed


@dataclass
class FitSdfOptions:
    mesh: str = dataclasses.field(metadata={
        "positional": True, "help": "OBJ, PLY, STL, OFF, ... (normalised to a bounding-box diagonal of 1.9)"})
    field: str = dataclasses.field(default="rbf", metadata={"help": BACKBONE})
    steps: int = dataclasses.field(default=3000, metadata=POSITIVE)  # fitting steps
    seconds: float | None = None  # fitting time budget; stops at whichever limit comes first
    batch: int = dataclasses.field(default=1 << 14, metadata=POSITIVE)  # points per step
    # training points sampled once (1/8 on the surface)
    points: int = dataclasses.field(default=1 << 18, metadata=POSITIVE)
    lr: float | None = None  # learning rate of the encoder; None: the backbone's
    decoder_lr: float | None = None  # learning rate of the head; None: the backbone's
    resolution: int = dataclasses.field(default=256, metadata={"min": 2})  # grid for IoU and marching cubes
    output: str | None = None  # marching-cubes mesh, .ply or .obj; None: runs/fit-sdf/<mesh>-<field>.ply
    seed: int = 0  # random seed


def add_parser(sub) -> None:
    p = sub.add_parser("fit-image", help="fit an image with a backbone's coordinate network; PSNR and reconstruction")
    add_options(p, FitImageOptions)
    add_shared(p, "threads")
    p.set_defaults(handler=run)
    p = sub.add_parser("fit-sdf", help="fit a signed distance field to a mesh; IoU, Chamfer distance, mesh export")
    add_options(p, FitSdfOptions)
    add_shared(p, "threads")
    p.set_defaults(handler=run)


def run(args) -> int:
    set_threads(args)
    if args.command == "fit-image":
        return _image(build(FitImageOptions, args))
    return _sdf(build(FitSdfOptions, args))


def _image(o: FitImageOptions) -> int:
    from imageio.config import known_extensions

    from ..apps.fitting.fit_image import fit_image, load_image, save_image

    out = Path(o.output or f"runs/fit-image/{Path(o.image).stem}-{o.field}.png")
    if out.suffix.lower() not in known_extensions:  # refused before fitting, not after
        raise FieldsError(f"--output {out}: the reconstruction needs an image file name (.png, .jpg, ...)")
    result = fit_image(load_image(o.image), o.field, steps=o.steps, time_budget=o.seconds, batch=o.batch, lr=o.lr,
                       decoder_lr=o.decoder_lr, seed=o.seed)
    save_image(result.reconstruction, out)
    print(f"{o.field}: PSNR {result.psnr:.2f} dB after {result.steps} steps ({result.seconds:.1f} s), "
          f"{result.parameters:,} parameters -> {out}")
    return 0


def _sdf(o: FitSdfOptions) -> int:
    from ..apps.fitting.fit_sdf import fit_sdf
    from ..apps.fitting.meshes import export_mesh

    one_line_warnings()
    out = Path(o.output or f"runs/fit-sdf/{Path(o.mesh).stem}-{o.field}.ply")
    if out.suffix.lower() not in (".ply", ".obj"):
        raise FieldsError(f"--output {out}: mesh output must end in .ply or .obj")
    result = fit_sdf(o.mesh, o.field, steps=o.steps, time_budget=o.seconds, batch=o.batch, n_points=o.points,
                     lr=o.lr, decoder_lr=o.decoder_lr, resolution=o.resolution, seed=o.seed)
    export_mesh(result.mesh, out)
    print(f"{o.field}: IoU {result.iou:.4f} ({o.resolution}^3), Chamfer {result.chamfer:.5f} "
          f"(bbox diagonal 1.9) after {result.steps} steps ({result.seconds:.1f} s fitting "
          f"+ {result.sampling_seconds:.1f} s sampling), {result.parameters:,} parameters -> {out}")
    return 0
