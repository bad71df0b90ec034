"""`fields` command line: a thin layer over functions you can call from Python."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .commands.triplanes import add_parser as add_triplanes
from .commands.triplanes import run as run_triplanes
from .engine.config import TrainConfig
from .errors import FieldsError

BACKBONES = "hashgrid, mlp, tensorf-vm, tensorf-cp, triplane, rbf, cam"


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a radiance field on a scene")
    p.add_argument("--scene", default="lego", help="scene name under the data root, or a scene folder")
    p.add_argument("--data-root",
                   help="folder holding nerf_synthetic/<scene> (default: $FIELDS_DATA_ROOT, ../shared/data)")
    p.add_argument("--data", help="a scene written by `fields convert` (or any format it reads); replaces --scene")
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
    p.add_argument("--view", action="store_true", help="serve the live viewer while training (see `fields view`)")
    p.add_argument("--view-host", default="127.0.0.1", help="viewer interface (default 127.0.0.1: this machine only)")
    p.add_argument("--view-port", type=int, default=8080, help="viewer port (the next free one if taken)")
    p.add_argument("--view-share", type=float, default=0.5,
                   help="most of the time the viewer may take from training while both run (0-1]")


def cmd_train(args) -> int:
    from .engine.trainer import resume, train

    monitor = None
    if args.view:
        from .viewer import LiveViewer

        monitor = LiveViewer(args.view_host, args.view_port, viewer_share=args.view_share)
    if args.resume:
        overrides = {k: v for k, v in (("steps", args.steps), ("time_budget", args.time_budget)) if v is not None}
        result = resume(Path(args.resume), overrides, monitor=monitor)
    else:
        data = Path(args.data).expanduser().resolve() if args.data else None
        config = TrainConfig(
            scene=args.scene, data=str(data) if data else None, data_root=args.data_root, field=args.field,
            preset=args.preset,
            steps=args.steps if args.steps is not None else (0 if args.time_budget else TrainConfig.steps),
            time_budget=args.time_budget, device=args.device, threads=args.threads, seed=args.seed,
            output=args.output, samples_per_step=args.samples_per_step, downscale=args.downscale,
            eval_every=args.eval_every, final_eval_views=args.final_eval_views,
            snapshot_minutes=args.snapshot_minutes,
        )
        result = train(config, monitor=monitor)
    if monitor is not None:
        _keep_viewing(monitor)
    if result.metrics is None:
        return 130
    m = result.metrics
    print(f"val PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}  ({m['views']} views, white background) "
          f"after {result.step} steps, {result.train_seconds / 60:.1f} min of training")
    print(f"run folder: {result.run_dir}  (metrics.json, renders_val/, psnr_vs_time.png, checkpoint.pt)")
    return 0


def _keep_viewing(monitor) -> None:
    from .viewer import serve_until_interrupted

    print("training finished; the viewer stays up until Ctrl-C", flush=True)
    serve_until_interrupted(monitor)


def cmd_eval(args) -> int:
    from .engine.evaluation import evaluate, write_json
    from .engine.runs import load_run
    from .engine.scenes import load_scene

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
    from .engine.runs import load_run
    from .engine.scenes import load_scene
    from .outputs.video import render_camera_path, render_orbit

    run = load_run(args.run, args.device)
    reference = load_scene(run.config, "train", args.data_root).cameras  # its NDC frame, for forward-facing scenes
    if args.path:
        out = Path(args.out) if args.out else run.folder / f"{Path(args.path).stem}.{args.format}"
        render_camera_path(run, Path(args.path), out, n_frames=args.frames, fps=args.fps, resolution=args.resolution,
                           ndc=reference.ndc)
    else:
        out = Path(args.out) if args.out else run.folder / f"orbit.{args.format}"
        render_orbit(run, reference, out, n_frames=args.frames or 60, fps=args.fps or 24, resolution=args.resolution)
    print(f"video: {out}")
    return 0


def cmd_export(args) -> int:
    from .engine.runs import load_run
    from .engine.scenes import load_scene
    from .outputs.export import export_mesh, export_points, resized

    run = load_run(args.run, args.device)
    if args.what == "mesh":
        out = Path(args.out) if args.out else run.folder / f"mesh.{args.format}"
        report = export_mesh(run.field, run.renderer, out, resolution=args.resolution, threshold=args.threshold)
    else:
        cameras = resized(load_scene(run.config, "train", args.data_root).cameras, args.width)
        out = Path(args.out) if args.out else run.folder / "points.ply"
        report = export_points(run.field, run.renderer, cameras, out, views=args.views,
                               min_opacity=args.min_opacity, max_points=args.max_points)
    print(report.summary())
    return 0


def cmd_view(args) -> int:
    from .viewer import serve_run

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    serve_run(args.run, host=args.host, port=args.port, device=args.device, data_root=args.data_root)
    return 0


def cmd_download(args) -> int:
    from .datasets.data_root import download_root
    from .datasets.ingest.download import download_dataset

    folder = download_dataset(args.name, download_root(args.data_root), url=args.url, sha256=args.sha256)
    print(f"{args.name} is in {folder}")
    return 0


def cmd_doctor(args) -> int:
    from .doctor import doctor_report

    print(doctor_report())
    return 0


def _add_convert(sub) -> None:
    from .datasets import FORMATS

    p = sub.add_parser("convert", help="turn a capture (COLMAP, LLFF, transforms.json, Blender, images, video) "
                                       "into the canonical layout `fields train --data` reads")
    p.add_argument("input", help="scene folder, transforms.json, poses_bounds.npy, image folder or video file")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--from", dest="fmt", choices=FORMATS, help="input format (default: detected)")
    p.add_argument("--downscales", type=int, nargs="*", default=[], metavar="K",
                   help="also write images_K/ copies downscaled K times, e.g. --downscales 2 4")
    p.add_argument("--images", help="images of a COLMAP model (default INPUT/images)")
    p.add_argument("--frames", type=int, help="video: number of frames to keep (default 100)")
    p.add_argument("--fps", type=float, help="video: frames per second of video to keep (instead of --frames)")
    p.add_argument("--min-sharpness", type=float, default=0.2,
                   help="video: drop frames less sharp than this fraction of the median (variance of Laplacian)")


def cmd_convert(args) -> int:
    from .datasets.ingest.convert import convert

    _one_line_warnings()
    result = convert(args.input, args.out, args.fmt, tuple(args.downscales), args.images, args.frames, args.fps,
                     args.min_sharpness)
    cap = result.capture
    splits = ", ".join(f"{len(v)} {k}" for k, v in cap.splits.items())
    print(f"{result.source_format} -> {result.out}: {len(cap)} images {cap.width}x{cap.height} ({splits}), "
          f"{'bounded' if cap.bounded else 'unbounded'} scene in box {cap.aabb.tolist()}, "
          f"scale {cap.normalization.scale:.4g}" + (", NDC" if cap.ndc_near else "")
          + (f", {result.frames_dropped_blurry} blurry frames dropped" if result.frames_dropped_blurry else ""))
    print(f"train on it: fields train --data {result.out}")
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

    from .apps.fitting.fit_image import fit_image, load_image, save_image

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

    from .apps.fitting.fit_sdf import fit_sdf
    from .apps.fitting.meshes import export_mesh

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


def _add_distill(sub) -> None:
    p = sub.add_parser("distill", help="convert a trained run into another backbone (PVD-AL distillation)")
    p.add_argument("--teacher", metavar="RUN", help="the trained run folder to distil")
    p.add_argument("--student", help=f"the backbone to distil into: {BACKBONES}")
    p.add_argument("--preset", help="student preset (default: the device's)")
    p.add_argument("--steps", type=int, help="distillation steps")
    p.add_argument("--time-budget", type=float, help="minutes of distillation; stops at whichever limit comes first")
    p.add_argument("--stages", type=float, nargs=2, metavar=("FEATURES", "POINTS"),
                   help="ends of the feature and point stages as fractions of the run (default 0.067 0.167)")
    p.add_argument("--active", default="pose,ray",
                   help="active-learning levels of pose, ray, point, comma-separated, or 'none' (default pose,ray)")
    p.add_argument("--output", help="run folder (default runs/<scene>-<student>-distilled-<time>)")
    p.add_argument("--resume", metavar="RUN", help="continue the distillation in this folder")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    p.add_argument("--samples-per-step", type=int,
                   help="target samples per step (default 2^13 on CPU: many small steps; 2^18 on CUDA)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snapshot-minutes", type=float, nargs="*", default=[],
                   help="also keep checkpoints at these distillation times (minutes)")
    p.add_argument("--data-root", help="where the teacher's scene lies, if not where it was trained")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def cmd_distill(args) -> int:
    from .apps.distillation import DistillConfig, distill, resume_distillation

    if args.resume:
        overrides = {k: v for k, v in (("steps", args.steps), ("time_budget", args.time_budget)) if v is not None}
        result = resume_distillation(args.resume, overrides)
    else:
        if not args.teacher or not args.student:
            raise FieldsError("give --teacher RUN and --student NAME (or --resume RUN)")
        active = () if args.active == "none" else tuple(a.strip() for a in args.active.split(",") if a.strip())
        settings = DistillConfig(teacher=args.teacher, student=args.student, active=active,
                                 **({"stages": tuple(args.stages)} if args.stages else {}))
        result = distill(settings, steps=args.steps, time_budget=args.time_budget, output=args.output,
                         preset=args.preset, threads=args.threads, seed=args.seed, device=args.device,
                         snapshot_minutes=args.snapshot_minutes, data_root=args.data_root,
                         samples_per_step=args.samples_per_step)
    if result.metrics is None:
        return 130
    m = result.metrics
    print(f"val PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}  ({m['views']} views), "
          f"{m['psnr_vs_teacher']:.2f} dB against the teacher's renders, after {result.step} steps, "
          f"{result.train_seconds / 60:.1f} min")
    print(f"run folder: {result.run_dir}  (metrics.json, renders_val/, psnr_vs_time.png, checkpoint.pt)")
    return 0


def cmd_triplanes(args) -> int:
    _one_line_warnings()
    return run_triplanes(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fields", description="Neural fields: train, evaluate, render.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_convert(sub)
    p = sub.add_parser("eval", help="PSNR and SSIM of a trained run on a split")
    p.add_argument("run")
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--data-root")
    p.add_argument("--views", type=int, help="evaluate this many evenly spaced views (default all)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p = sub.add_parser("render", help="video of a trained run (RGB | depth) along an orbit or a camera path")
    p.add_argument("run")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--orbit", action="store_true", help="an orbit around the scene (default)")
    source.add_argument("--path", help="camera path JSON (keyframes; see nfields/outputs/camera_path.py, the viewer saves it)")
    p.add_argument("--frames", type=int, help="frame count (default 60 for an orbit, the path file's for a path)")
    p.add_argument("--fps", type=int, help="frames per second (default 24, or the path file's)")
    p.add_argument("--resolution", type=int, help="frame width in pixels (default: the training images' or path's)")
    p.add_argument("--format", default="mp4", choices=["mp4", "gif"])
    p.add_argument("--out", help="output file (default RUN/orbit.<format> or RUN/<path name>.<format>)")
    p.add_argument("--data-root")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p = sub.add_parser("export", help="a coloured mesh (marching cubes) or point cloud (depth renders) of a run")
    p.add_argument("run")
    p.add_argument("what", choices=["mesh", "points"])
    p.add_argument("--resolution", type=int, default=256, help="mesh: lattice points along the box's longest side")
    p.add_argument("--threshold", type=float, default=10.0, help="mesh: density level of the surface")
    p.add_argument("--format", default="ply", choices=["ply", "obj", "glb"], help="mesh file format")
    p.add_argument("--views", type=int, default=20, help="points: evenly spaced training cameras to render")
    p.add_argument("--width", type=int, help="points: render width in pixels (default: the training images')")
    p.add_argument("--min-opacity", type=float, default=0.9, help="points: keep rays at least this opaque")
    p.add_argument("--max-points", type=int, default=1_000_000)
    p.add_argument("--out", help="output file (default RUN/mesh.<format> or RUN/points.ply)")
    p.add_argument("--data-root")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p = sub.add_parser("view", help="interactive viewer of a run in the browser")
    p.add_argument("run")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (the next free one if taken)")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch (1 is faster on a busy machine)")
    p.add_argument("--data-root")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p = sub.add_parser("download", help="fetch a public data set into the data root (resumable, checksummed)")
    p.add_argument("name", help="data set name, e.g. nerf-synthetic")
    p.add_argument("--data-root", help="where to put it (default $FIELDS_DATA_ROOT or ~/.cache/fields/data)")
    p.add_argument("--url", help="another mirror of the same archive")
    p.add_argument("--sha256", help="expected checksum when using --url")
    sub.add_parser("doctor", help="which backend (CUDA kernels, CPU kernels, PyTorch) runs each operation, and why")
    _add_fit(sub)
    _add_distill(sub)
    add_triplanes(sub)
    return parser


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "render": cmd_render, "export": cmd_export, "view": cmd_view,
            "download": cmd_download, "doctor": cmd_doctor, "convert": cmd_convert, "fit-image": cmd_fit_image,
            "fit-sdf": cmd_fit_sdf, "distill": cmd_distill, "triplanes": cmd_triplanes}


def main(argv: list[str] | None = None) -> int:
    from .datasets import DatasetError
    from .datasets.ingest.download import DownloadError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (FieldsError, DatasetError, DownloadError) as err:
        print(f"fields {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
