"""PVD-AL: distil a trained field (teacher) into any backbone (student), with no training images.

`distill(settings, ...)` writes a normal run folder (config.json, checkpoint.pt, metrics, renders,
PSNR-vs-time plot) plus distillation.json; `fields eval`, `render` and `view` accept it. The student renders
with the teacher's occupancy grid, which its checkpoint carries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ...engine.config import TrainConfig
from ...engine.devices import resolve_device
from ...engine.distributed import is_main, join, on_main
from ...engine.evaluation import render_view, view_indices, write_json
from ...engine.metrics import psnr
from ...engine.runs import CHECKPOINT_NAME, CONFIG_NAME, LoadedRun, check_output_folder, load_run
from ...engine.scenes import load_scene
from ...engine.trainer import Trainer, TrainResult
from ...errors import FieldsError
from ...fields import UnknownFieldError, field_class
from ...renderers.volume import Shading, VisibleSamples
from .active import HardPosePool, HardRayPool, hard_point_mask, per_group_psnr
from .losses import copy_compatible_tensors, log_density_error, shares_color_decoder
from .poses import VirtualPoses
from .settings import DistillConfig

SETTINGS_NAME = "distillation.json"
# Samples per step on the CPU. Teacher targets are exact at every point, so the student learns about as much
# from a small batch as from a large one, and many small steps beat few large ones: on lego (2 threads) the
# mlp student reached 26.8 dB in 1.5 minutes at 2^13 samples a step against 22.2 dB at the trainer's 2^16
# (README, "Distillation"). Training from images does not gain so (its targets are noisy per ray). CUDA runs
# keep the trainer's 2^18, not measured for distillation.
CPU_SAMPLES_PER_STEP = 1 << 13


@dataclass
class DistillBatch:
    """One step's rays (R, 3): virtual poses' rays, then replayed pool rays; the pose index of each ray in
    the epoch (R,) (-1 for pool rays), the pool slots replayed, backgrounds (R, 3) and the stage."""

    origins: torch.Tensor
    directions: torch.Tensor
    pose_of_ray: torch.Tensor
    slots: torch.Tensor
    background: torch.Tensor
    stage: str


@dataclass
class DistillOutput:
    """Teacher and student composited at the samples the teacher leaves visible."""

    visible: VisibleSamples
    teacher: Shading
    student: Shading

    @property
    def n_samples(self) -> int:
        return len(self.visible)


class Distiller(Trainer):
    """A Trainer whose targets come from a frozen teacher instead of images. Each step: rays of virtual
    poses (plus replayed hard rays), marched through the teacher's occupancy grid; teacher and student
    evaluated at the same points over the same random background; the stage's losses."""

    batch_psnr_label = "PSNR vs teacher"
    fits_photos = False  # targets come from the teacher: no per-image appearance or camera offsets

    def __init__(self, config: TrainConfig, settings: DistillConfig, run_dir: Path, teacher: LoadedRun,
                 train_scene, val_scene, resume: bool = False, progress: bool = True):
        super().__init__(config, run_dir, train_scene, val_scene, resume=resume, progress=progress)
        self.settings, self.teacher = settings, teacher.field
        self.teacher.to(self.device).requires_grad_(False)
        saved = None
        if self.checkpoint is not None:
            if "distillation" not in self.checkpoint:
                raise FieldsError(f"{run_dir / CHECKPOINT_NAME}: not a distillation checkpoint "
                                  "(resume it with `fields train --resume`)")
            saved = self.checkpoint["distillation"]
            self.copied = list(saved["copied"])
        else:  # a new run: the teacher's grid and compatible decoders
            self.renderer.load_state_dict(teacher.renderer.state_dict())
            self.copied = copy_compatible_tensors(self.field, self.teacher)
        self.match_features = shares_color_decoder(self.field, self.copied)
        self.generator = torch.Generator().manual_seed(self.sampling_seed())
        self.virtual = VirtualPoses(train_scene.cameras, (train_scene.aabb[:3] + train_scene.aabb[3:]) / 2)
        self.pose_pool = HardPosePool(settings.pose_pool_size, settings.hard_fraction, settings.pose_pool_from_epoch)
        self.ray_pool = HardRayPool(settings.ray_pool_size)
        self.epoch_cameras, self.epoch_cursor = self.virtual.sample(settings.epoch_poses, self.generator), 0
        if saved is not None:
            self.restore_distillation(saved)
        self.loss_terms: dict[str, torch.Tensor] = {}  # the last step's loss parts, for the run's log

    # ----- state -----
    def state(self) -> dict:
        return {**super().state(), "distillation": {
            "copied": self.copied,
            "generator": self.generator.get_state(), "pose_pool": self.pose_pool.state_dict(),
            "ray_pool": self.ray_pool.state_dict(), "epoch_poses": self.epoch_cameras.camera_to_world,
            "epoch_focal": self.epoch_cameras.focal, "epoch_principal": self.epoch_cameras.principal,
            "epoch_cursor": self.epoch_cursor}}

    def restore_distillation(self, saved: dict) -> None:
        """The checkpoint's "distillation" entry (`state()`): sampling generator (rank 0's: other ranks keep their
        own), pools and this epoch's poses."""
        if is_main(self.ranks):
            self.generator.set_state(saved["generator"])
        self.pose_pool.load_state_dict(saved["pose_pool"])
        self.ray_pool.load_state_dict(saved["ray_pool"])
        c = self.epoch_cameras
        self.epoch_cameras = type(c)(saved["epoch_poses"], saved["epoch_focal"], saved["epoch_principal"],
                                     c.width, c.height, distortion=None, ndc=c.ndc)
        self.epoch_cursor = int(saved["epoch_cursor"])

    def describe(self) -> str:
        """One line on what the student took from the teacher and whether the feature stage runs."""
        modules = sorted({n.split(".")[0] for n in self.copied})
        taken = f"copied {', '.join(modules)} and the occupancy grid" if modules else "copied the occupancy grid"
        stage = "feature stage on" if self.match_features else \
            "no feature stage (the student's colour decoder is not the teacher's, so features are not comparable)"
        return f"{self.teacher.name} -> {self.field.name}: {taken}; {stage}; active learning: " \
               f"{', '.join(self.settings.active) or 'none'}"

    # ----- schedule -----
    def stage(self) -> str:
        """features, points or rgb, from the run's progress; no feature stage without a shared decoder."""
        progress = self.progress_fraction()
        first, second = self.settings.stages
        if progress < first and self.match_features:
            return "features"
        return "points" if progress < second else "rgb"

    def next_poses(self) -> torch.Tensor:
        """Indices (P,) into this epoch's cameras for the step; closes the epoch when it runs out."""
        p = self.settings.poses_per_step
        if self.epoch_cursor + p > len(self.epoch_cameras):
            if "pose" in self.settings.active:
                self.pose_pool.end_epoch(self.epoch_cameras.camera_to_world)
            cameras = self.virtual.sample(self.settings.epoch_poses, self.generator)
            if "pose" in self.settings.active:
                cameras.camera_to_world = self.pose_pool.next_epoch(cameras.camera_to_world, self.generator)
            self.epoch_cameras, self.epoch_cursor = cameras, 0
        indices = torch.arange(self.epoch_cursor, self.epoch_cursor + p)
        self.epoch_cursor += p
        return indices

    # ----- one step -----
    def sample_rays(self, n_rays: int):
        """Rays of this step's virtual poses and replayed pool rays: origins, directions (R, 3), the pose
        index of each ray in the epoch (R,) (-1 for pool rays) and the pool slots replayed."""
        poses = self.next_poses()
        pose_of_ray = poses[torch.arange(n_rays) % len(poses)]
        c = self.epoch_cameras
        x = torch.rand(n_rays, generator=self.generator) * c.width
        y = torch.rand(n_rays, generator=self.generator) * c.height
        rays = c.rays(pose_of_ray, x, y)
        origins, directions = rays.origins, rays.directions
        slots = torch.zeros(0, dtype=torch.long)
        if "ray" in self.settings.active:
            slots = self.ray_pool.draw(int(self.settings.hard_fraction * n_rays), self.generator)
            origins = torch.cat([origins, self.ray_pool.origins[slots]])
            directions = torch.cat([directions, self.ray_pool.directions[slots]])
            pose_of_ray = torch.cat([pose_of_ray, torch.full((len(slots),), -1, dtype=torch.long)])
        return origins.to(self.device), directions.to(self.device), pose_of_ray, slots

    def update_occupancy(self) -> None:
        """Nothing: the student renders with the teacher's grid."""

    def make_batch(self) -> DistillBatch:
        stage = self.stage()
        origins, directions, pose_of_ray, slots = self.sample_rays(self.batch_rays())
        n = len(origins)
        background = torch.rand(n, 3, device=self.device) if self.train_scene.has_alpha and \
            self.config.random_background else torch.ones(n, 3, device=self.device)
        return DistillBatch(origins, directions, pose_of_ray, slots, background, stage)

    def render_batch(self, batch: DistillBatch) -> DistillOutput:
        """Samples marched through the teacher's grid up to where the teacher turns opaque; the teacher
        there without gradients, the student with them."""
        visible = self.renderer.visible_samples(self.teacher, batch.origins, batch.directions, jitter=True)
        # colours at every point, whatever a field's appearance mask: the per-point losses compare them all
        with torch.no_grad():
            teacher = self.renderer.shade(self.teacher, visible, batch.background, reuse_densities=True,
                                          every_color=True)
        student = self.renderer.shade(self.field, visible, batch.background, every_color=True)
        return DistillOutput(visible, teacher, student)

    def loss(self, batch: DistillBatch, out: DistillOutput) -> torch.Tensor:
        """The stage's loss: appearance features; per-point colours and log-densities (on hard points with
        the point level); composited colours plus the per-point loss and the field's regularisation."""
        s, teacher, student = self.settings, out.teacher, out.student
        if batch.stage == "features":
            loss = F.mse_loss(self.field.appearance_feature(student.features),
                              self.teacher.appearance_feature(teacher.features))
            self.loss_terms = {"features": loss.detach()}
            return loss
        sigma_s, rgb_s, sigma_t, rgb_t = student.sigmas, student.rgbs, teacher.sigmas, teacher.rgbs
        if "point" in s.active:
            rays, ratio, floor = out.visible.samples.ray_indices, s.point_ratio, s.point_min_opacity
            points = hard_point_mask(teacher.weights, rays, teacher.opacity, ratio, floor) \
                | hard_point_mask(student.weights, rays, student.opacity, ratio, floor)
            sigma_s, rgb_s, sigma_t, rgb_t = sigma_s[points], rgb_s[points], sigma_t[points], rgb_t[points]
        loss = torch.zeros((), device=self.device)
        self.loss_terms = {"points": torch.tensor(float(len(sigma_s)))}
        if len(sigma_s):
            point_rgb, point_density = F.mse_loss(rgb_s, rgb_t), log_density_error(sigma_s, sigma_t).square().mean()
            loss = point_rgb + s.density_weight * point_density
            self.loss_terms |= {"point_rgb": point_rgb.detach(), "point_log_density": point_density.detach()}
        if batch.stage == "rgb":
            pixel_rgb = F.mse_loss(student.rgb, teacher.rgb)
            self.loss_terms["pixel_rgb"] = pixel_rgb.detach()
            loss = pixel_rgb + s.point_weight * loss
            regularization = self.field.regularization()
            if regularization is not None:
                loss = loss + regularization
        return loss

    def divergence_error(self, loss: torch.Tensor) -> FieldsError:
        return FieldsError(f"distillation diverged at step {self.step}: the loss is {loss.item()}. "
                           f"Checkpoints already in {self.run_dir} are kept.")

    def finish_step(self, batch: DistillBatch, out: DistillOutput) -> float:
        """Feed the hard-ray and hard-pose levels with the step's errors against the teacher (not in the
        feature stage); returns their mean square."""
        errors = (out.student.rgb.detach() - out.teacher.rgb).cpu()
        if batch.stage != "features":
            self._record_hard(batch.origins.cpu(), batch.directions.cpu(), errors, batch.pose_of_ray, batch.slots)
        return errors.square().mean().item()

    def _record_hard(self, origins, directions, errors, pose_of_ray, slots) -> None:
        """Feed the pose and ray levels with this step's errors (R, 3) against the teacher."""
        s = self.settings
        if "pose" in s.active:
            fresh = pose_of_ray >= 0
            poses, group = torch.unique(pose_of_ray[fresh], return_inverse=True)
            self.pose_pool.record(poses, per_group_psnr(errors[fresh].square(), group, len(poses)))
        if "ray" in s.active:
            k = int(s.hard_fraction * (len(origins) - len(slots)))
            self.ray_pool.collect(origins, directions, errors.abs().sum(-1), k, slots)

    def progress_prefix(self) -> str:
        return self.stage()

    def log_scalars(self) -> dict[str, float]:
        """The stage (0 features, 1 points, 2 rgb), its loss parts, and the active-learning pools' state."""
        values = {f"distill/{name}": value.item() for name, value in self.loss_terms.items()}
        return values | {
            "distill/stage": float(("features", "points", "rgb").index(self.stage())),
            "pool/hard_rays_filled": self.ray_pool.filled / max(len(self.ray_pool.origins), 1),
            "pool/hard_poses": float(len(self.pose_pool.poses)),
            "pool/epoch": float(self.pose_pool.epoch),
        }

    def finish(self, log=None) -> dict | None:
        metrics = super().finish(log)
        if metrics is not None:
            metrics["psnr_vs_teacher"] = psnr_against_teacher(self.field, self.teacher, self.renderer,
                                                              self.val_scene.cameras, count=2)
            if is_main(self.ranks):
                write_json(self.run_dir / "metrics.json", metrics)
        return metrics


@torch.no_grad()
def psnr_against_teacher(student, teacher, renderer, cameras, count: int | None = None) -> float:
    """Mean PSNR (white background) of the student's renders against the teacher's, over `count` evenly
    spaced views of `cameras`, both drawn with `renderer` (the teacher's grid)."""
    values = [psnr(render_view(student, renderer, cameras, i)["rgb"], render_view(teacher, renderer, cameras, i)["rgb"])
              for i in view_indices(len(cameras), count)]
    return float(sum(values) / len(values))


def student_config(teacher: LoadedRun, student: str, preset: str | None, steps: int | None,
                   time_budget: float | None, output: Path, threads: int | None, seed: int, device: str,
                   snapshot_minutes: list[float], final_eval_views: int | None = None,
                   samples_per_step: int | None = None, overwrite: bool = False, check_sync: int = 0) -> TrainConfig:
    """The student run's TrainConfig: the teacher's scene and grid settings, the student's backbone, samples
    per step (default CPU_SAMPLES_PER_STEP on the CPU), quick validations every 30 s (the PSNR-vs-time curve)."""
    try:
        field_class(student)
    except UnknownFieldError as err:
        raise FieldsError(f"--student: {err}") from None
    if samples_per_step is None and resolve_device(device).type == "cpu":
        samples_per_step = CPU_SAMPLES_PER_STEP
    base = teacher.config
    config = TrainConfig(**{**vars(base), "field": student, "preset": preset, "steps": steps or 0,
                          "time_budget": time_budget, "output": str(output), "threads": threads, "seed": seed,
                          "device": device, "snapshot_minutes": list(snapshot_minutes),
                          "samples_per_step": samples_per_step, "overwrite": overwrite, "check_sync": check_sync,
                          "eval_every": TrainConfig.eval_every, "optimizer": None,
                          "final_eval_views": final_eval_views or base.final_eval_views})
    config.resolve_optimizer(resolve_device(device).type)  # the student preset's own, recorded in its config.json
    return config


def distill(settings: DistillConfig, steps: int | None = None, time_budget: float | None = None,
            output: str | None = None, preset: str | None = None, threads: int | None = None, seed: int = 0,
            device: str = "auto", snapshot_minutes: list[float] = (), data_root: str | None = None,
            final_eval_views: int | None = None, samples_per_step: int | None = None,
            progress: bool = True, overwrite: bool = False, check_sync: int = 0) -> TrainResult:
    """Distil the teacher run `settings.teacher` into a new `settings.student` run (what `fields distill` runs)."""
    settings.validate()
    if not steps and not time_budget:
        raise FieldsError("distill: give --steps or --time-budget")
    ranks = join(resolve_device(device))  # under torchrun: rank 0 names and checks the folder, and writes
    progress = progress and is_main(ranks)
    teacher = load_run(settings.teacher, device=device)
    if data_root is not None:
        teacher.config.data_root = data_root
    run_dir = on_main(ranks, lambda: check_output_folder(Path(output) if output else Path("runs") / (
        f"{Path(teacher.config.scene).name}-{settings.student}-distilled-{time.strftime('%Y%m%d-%H%M%S')}"),
        overwrite, "fields distill --resume"))
    config = student_config(teacher, settings.student, preset, steps, time_budget, run_dir, threads, seed, device,
                            list(snapshot_minutes), final_eval_views, samples_per_step, overwrite, check_sync)
    config.validate()
    train_scene, val_scene = load_scene(config, "train"), load_scene(config, "val")
    if is_main(ranks):
        run_dir.mkdir(parents=True, exist_ok=True)
        config.save(run_dir / CONFIG_NAME)
        settings.save(run_dir / SETTINGS_NAME)
    distiller = Distiller(config, settings, run_dir, teacher, train_scene, val_scene, progress=progress)
    if progress:
        print(distiller.describe())
    return distiller.run()


def resume_distillation(run_dir: str | Path, overrides: dict | None = None, progress: bool = True) -> TrainResult:
    """Continue a distillation from its checkpoint; `overrides` may extend steps or time_budget."""
    run_dir = Path(run_dir)
    settings = DistillConfig.load(run_dir / SETTINGS_NAME)
    config = TrainConfig.load(run_dir / CONFIG_NAME)
    for key, value in (overrides or {}).items():
        setattr(config, key, value)
    if is_main(join(resolve_device(config.device))):
        config.save(run_dir / CONFIG_NAME)
    teacher = load_run(settings.teacher, device=config.device)
    distiller = Distiller(config, settings, run_dir, teacher, load_scene(config, "train"), load_scene(config, "val"),
                          resume=True, progress=progress)
    return distiller.run()
