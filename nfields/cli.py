"""`fields` command line: a thin layer over functions you can call from Python."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .config import TrainConfig
from .errors import FieldsError

BACKBONES = "hashgrid, mlp, tensorf-vm, tensorf-cp, triplane, rbf, cam"


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a radiance field on a scene")
    p.add_argument("--scene", default="lego", help="scene name under the data root, or a scene folder")
    p.add_argument("--data-root",
                   help="folder holding nerf_synthetic/<scene> (default: $FIELDS_DATA_ROOT, ../shared/data)")
    p.add_argument("--field", default="hashgrid", help=f"backbone: {BACKBONES} (default hashgrid)")
    p.add_argument("--preset", help="backbone preset (default: the device's, e.g. hashgrid 'cpu' or 'published')")
    p.add_argument("--steps", type=int, help="training steps (default 20000)")
    p.add_argument("--time-budget", type=float, help="minutes of training; stops at whichever limit comes first")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", help="run folder (default runs/<scene>-<field>-<time>)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its checkpoint")
    p.add_argument("--samples-per-step", type=int, help="target samples per batch (default 2^16 CPU, 2^18 CUDA)")
    p.add_argument("--downscale", type=int, default=1, help="integer image downscale factor")
    p.add_argument("--eval-every", type=float, default=30.0,
                   help="seconds of training between quick validations (PSNR on fixed random val pixels)")
    p.add_argument("--final-eval-views", type=int, default=10,
                   help="evenly spaced validation views in the final evaluation (`fields eval` scores them all)")
    p.add_argument("--snapshot-minutes", type=float, nargs="*", default=[],
                   help="also keep checkpoints at these training times (minutes)")


def cmd_train(args) -> int:
    from .train import resume, train

    if args.resume:
        overrides = {k: v for k, v in (("steps", args.steps), ("time_budget", args.time_budget)) if v is not None}
        result = resume(Path(args.resume), overrides)
    else:
        config = TrainConfig(
            scene=args.scene, data_root=args.data_root, field=args.field, preset=args.preset,
            steps=args.steps if args.steps is not None else (0 if args.time_budget else TrainConfig.steps),
            time_budget=args.time_budget, device=args.device, threads=args.threads, seed=args.seed,
            output=args.output, samples_per_step=args.samples_per_step, downscale=args.downscale,
            eval_every=args.eval_every, final_eval_views=args.final_eval_views,
            snapshot_minutes=args.snapshot_minutes,
        )
        result = train(config)
    if result.metrics is None:
        return 130
    m = result.metrics
    print(f"val PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}  ({m['views']} views, white background) "
          f"after {result.step} steps, {result.train_seconds / 60:.1f} min of training")
    print(f"run folder: {result.run_dir}  (metrics.json, renders_val/, psnr_vs_time.png, checkpoint.pt)")
    return 0


def cmd_eval(args) -> int:
    from .evaluate import evaluate, write_json
    from .runs import load_run, load_scene

    run = load_run(args.run, args.device)
    scene = load_scene(run.config, args.split, args.data_root)
    metrics = evaluate(run.field, run.renderer, scene, count=args.views,
                       image_dir=run.folder / f"renders_{args.split}", progress=True)
    metrics["split"] = args.split
    write_json(run.folder / f"eval_{args.split}.json", metrics)
    print(f"{args.split}: PSNR {metrics['psnr']:.2f} dB  SSIM {metrics['ssim']:.4f}  ({metrics['views']} views, "
          f"white background) -> {run.folder / f'eval_{args.split}.json'}")
    return 0


def cmd_render(args) -> int:
    from .runs import load_run, load_scene
    from .video import render_orbit

    run = load_run(args.run, args.device)
    reference = load_scene(run.config, "train", args.data_root).cameras
    out = Path(args.out) if args.out else run.folder / f"orbit.{args.format}"
    render_orbit(run, reference, out, n_frames=args.frames, fps=args.fps, resolution=args.resolution)
    print(f"video: {out}")
    return 0


def cmd_download(args) -> int:
    from .datasets.data_root import download_root
    from .download import download_dataset

    folder = download_dataset(args.name, download_root(args.data_root), url=args.url, sha256=args.sha256)
    print(f"{args.name} is in {folder}")
    return 0


def _one_line_warnings() -> None:
    warnings.formatwarning = lambda message, *args, **kwargs: f"fields: warning: {message}\n"


def _add_fit(sub) -> None:
    p = sub.add_parser("fit-image", help="fit an image with a backbone's coordinate network; PSNR and reconstruction")
    p.add_argument("image", help="PNG, JPEG, ... (grey or RGB; alpha is dropped)")
    p.add_argument("--field", default="rbf", help=f"backbone: {BACKBONES} (default rbf)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seconds", type=float, help="fitting time budget; stops at whichever limit comes first")
    p.add_argument("--batch", type=int, default=1 << 16, help="random pixels per step")
    p.add_argument("--lr", type=float, help="learning rate of the encoder (default: the backbone's)")
    p.add_argument("--decoder-lr", type=float, help="learning rate of the head (default: the backbone's)")
    p.add_argument("--output", help="reconstruction image (default runs/fit-image/<image>-<field>.png)")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("fit-sdf", help="fit a signed distance field to a mesh; IoU, Chamfer distance, mesh export")
    p.add_argument("mesh", help="OBJ, PLY, STL, OFF, ... (normalised to a bounding-box diagonal of 1.9)")
    p.add_argument("--field", default="rbf", help=f"backbone: {BACKBONES} (default rbf)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seconds", type=float, help="fitting time budget; stops at whichever limit comes first")
    p.add_argument("--batch", type=int, default=1 << 14, help="points per step")
    p.add_argument("--points", type=int, default=1 << 18, help="training points sampled once (1/8 on the surface)")
    p.add_argument("--lr", type=float, help="learning rate of the encoder (default: the backbone's)")
    p.add_argument("--decoder-lr", type=float, help="learning rate of the head (default: the backbone's)")
    p.add_argument("--resolution", type=int, default=256, help="grid for IoU and marching cubes")
    p.add_argument("--output", help="marching-cubes mesh, .ply or .obj (default runs/fit-sdf/<mesh>-<field>.ply)")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    p.add_argument("--seed", type=int, default=0)


def cmd_fit_image(args) -> int:
    import torch

    from .fit_image import fit_image, load_image, save_image

    if args.threads:
        torch.set_num_threads(args.threads)
    image = load_image(args.image)
    result = fit_image(image, args.field, steps=args.steps, time_budget=args.seconds, batch=args.batch,
                       lr=args.lr, decoder_lr=args.decoder_lr, seed=args.seed)
    out = Path(args.output or f"runs/fit-image/{Path(args.image).stem}-{args.field}.png")
    save_image(result.reconstruction, out)
    print(f"{args.field}: PSNR {result.psnr:.2f} dB after {result.steps} steps ({result.seconds:.1f} s), "
          f"{result.parameters:,} parameters -> {out}")
    return 0


def cmd_fit_sdf(args) -> int:
    import torch

    from .fit_sdf import fit_sdf
    from .meshes import export_mesh

    if args.threads:
        torch.set_num_threads(args.threads)
    _one_line_warnings()
    out = Path(args.output or f"runs/fit-sdf/{Path(args.mesh).stem}-{args.field}.ply")
    if out.suffix.lower() not in (".ply", ".obj"):
        raise FieldsError(f"--output {out}: mesh output must end in .ply or .obj")
    result = fit_sdf(args.mesh, args.field, steps=args.steps, time_budget=args.seconds, batch=args.batch,
                     n_points=args.points, lr=args.lr, decoder_lr=args.decoder_lr, resolution=args.resolution,
                     seed=args.seed)
    export_mesh(result.mesh, out)
    print(f"{args.field}: IoU {result.iou:.4f} ({args.resolution}^3), Chamfer {result.chamfer:.5f} "
          f"(bbox diagonal 1.9) after {result.steps} steps ({result.seconds:.1f} s fitting "
          f"+ {result.sampling_seconds:.1f} s sampling), {result.parameters:,} parameters -> {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fields", description="Neural fields: train, evaluate, render.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    p = sub.add_parser("eval", help="PSNR and SSIM of a trained run on a split")
    p.add_argument("run")
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--data-root")
    p.add_argument("--views", type=int, help="evaluate this many evenly spaced views (default all)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p = sub.add_parser("render", help="orbit video of a trained run (RGB and depth)")
    p.add_argument("run")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--fps", type=int, default=24)
    p.add_argument("--resolution", type=int, help="frame width in pixels (default: the training images')")
    p.add_argument("--format", default="mp4", choices=["mp4", "gif"])
    p.add_argument("--out", help="output file (default RUN/orbit.<format>)")
    p.add_argument("--data-root")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p = sub.add_parser("download", help="fetch a public data set into the data root (resumable, checksummed)")
    p.add_argument("name", help="data set name, e.g. nerf-synthetic")
    p.add_argument("--data-root", help="where to put it (default $FIELDS_DATA_ROOT or ~/.cache/fields/data)")
    p.add_argument("--url", help="another mirror of the same archive")
    p.add_argument("--sha256", help="expected checksum when using --url")
    _add_fit(sub)
    return parser


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "render": cmd_render, "download": cmd_download,
            "fit-image": cmd_fit_image, "fit-sdf": cmd_fit_sdf}


def main(argv: list[str] | None = None) -> int:
    from .datasets import DatasetError
    from .download import DownloadError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (FieldsError, DatasetError, DownloadError) as err:
        print(f"fields {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
