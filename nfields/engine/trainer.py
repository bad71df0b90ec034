"""Training a radiance field on a scene: `train(config)` is what `fields train` runs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..cuda.dispatch import prepare_kernels
from ..datasets import SceneData, composite_over
from ..errors import FieldsError
from ..fields.optimizer_spec import adam, keep_fused
from ..interrupts import sigterm_as_interrupt
from ..renderers import RenderOutput
from ..renderers.appearance import PerImageAppearance
from ..renderers.camera_offsets import CameraOffsets
from ..renderers.losses import depth_loss, distortion_loss, photometric_loss
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .devices import resolve_device
from .distributed import Ranks, is_main, join, on_main
from .evaluation import evaluate, sampled_pixel_psnr, write_json
from .host_memory import keep_freed_memory
from .models import make_model
from .plots import plot_psnr_vs_time
from .precision import Precision, uses_mixed_precision
from .run_loop import TrainingMonitor, TrainResult, run_training
from .runs import CHECKPOINT_NAME, CONFIG_NAME, check_output_folder, default_run_dir
from .scenes import load_scene, resolution_line, resolve_downscale
from .training_log import StepFigures, TrainingLog


@dataclass
class Batch:
    """One step's rays: origins, directions (R, 3), target colours (R, 3), backgrounds (R, 3), the
    training images they come from (R,) and, for the depth loss, the observed distance along each ray (R,)
    (0: none; None: no depth loss)."""

    origins: torch.Tensor
    directions: torch.Tensor
    target: torch.Tensor
    background: torch.Tensor
    image_indices: torch.Tensor
    depth: torch.Tensor | None = None


def check_depth_loss(config: TrainConfig, scene: SceneData) -> None:
    """The depth loss needs the scene's depth maps and metric rays (not a forward-facing scene's NDC rays)."""
    if config.depth_loss <= 0:
        return
    if scene.depths is None:
        raise FieldsError(f"--depth-loss {config.depth_loss:g}: the training scene '{scene.name}' has no depth maps "
                          "(nerfstudio's depth_file_path, instant-ngp's depth_path)")
    if scene.cameras.ndc is not None:
        raise FieldsError(f"--depth-loss {config.depth_loss:g}: '{scene.name}' is trained forward-facing (NDC rays); "
                          "the depth loss needs metric rays: train it with --scene-type unbounded")


class Trainer:
    """Holds the state of one run; `run()` trains until the step or time budget is spent.

    `train_step` is made of steps a variant (e.g. the distiller) overrides: `update_schedule`,
    `update_occupancy`, `make_batch`, `render_batch`, `loss`, `optimizer_step`, `finish_step`,
    `update_ray_count`; `log_scalars` and `progress_prefix` add a variant's own figures to the log and the progress
    bar. `__init__` restores a resumed run's Trainer state (`restore`); a variant restores
    its own entries of `checkpoint` in its `__init__`.

    Under torchrun (`ranks`, see distributed.py) every rank runs this same Trainer on its own rays: the model
    starts as rank 0's, gradients are averaged in `optimizer_step`, the occupancy grid merged, time and samples
    agreed on; `n_rays` counts the rays of all ranks, and rank 0 alone saves and writes.
    """

    batch_psnr_label = "batch PSNR"  # what the progress bar calls the PSNR of train_step's batch MSE
    fits_photos = True  # targets are the training photos: per-image appearance and camera refinement apply

    def __init__(self, config: TrainConfig, run_dir: Path, train_scene: SceneData, val_scene: SceneData | None,
                 resume: bool = False, progress: bool = True):
        config.validate()
        self.device = resolve_device(config.device)
        self.ranks: Ranks | None = join(self.device)
        self.config, self.run_dir, self.progress = config, run_dir, progress and is_main(self.ranks)
        if config.threads:
            torch.set_num_threads(config.threads)
        if self.device.type == "cpu":
            keep_freed_memory()  # each step's large tensors reuse the last step's memory (host_memory.py)
        prepare_kernels(self.device)  # a first run builds them here (it says so), not on the training clock
        torch.manual_seed(config.seed)
        self.train_scene, self.val_scene = train_scene, val_scene
        check_depth_loss(config, train_scene)
        # the training images (N, H, W, C) as one row per pixel: a batch gathers its pixels with one index_select
        self.images = train_scene.images.to(self.device).contiguous()
        self.pixel_rows = self.images.view(-1, self.images.shape[-1])
        self.cameras = train_scene.cameras
        state = load_checkpoint(run_dir / CHECKPOINT_NAME, expected_field=config.field) if resume else None
        # A resumed field is rebuilt from its saved configuration (e.g. TensoRF's upsampled resolution).
        self.field, self.renderer = make_model(config.field, train_scene.aabb, train_scene.near, config, self.device,
                                               field_config=state["field_config"] if state else None,
                                               unbounded=not train_scene.bounded,
                                               checkpoint=run_dir / CHECKPOINT_NAME if state else None)
        n_images = len(train_scene.cameras)
        self.appearance = PerImageAppearance(n_images).to(self.device) \
            if self.fits_photos and config.uses_appearance(train_scene.has_alpha) else None
        self.camera_offsets = CameraOffsets(n_images).to(self.device) \
            if self.fits_photos and config.camera_refinement else None
        self.lr_schedule = config.optimizer_spec().schedule
        self.optimizer = self.make_optimizer()
        self.precision = Precision(uses_mixed_precision(config.mixed_precision, self.device,
                                                        self.field.trains_in_half_precision), self.device)
        self.target_samples = config.samples_per_step or (1 << 16 if self.device.type == "cpu" else 1 << 18)
        self.renderer.occupancy.set_interval(config.occupancy_every or (64 if self.device.type == "cpu" else 16))
        self.n_rays = float(config.initial_rays)
        self.step, self.train_seconds, self.history = 0, 0.0, []
        self.snapshots_done: list[float] = []
        # The resumed checkpoint without the tensors restore() copies into the model (None for a new run).
        self.checkpoint = {k: v for k, v in state.items() if k not in ("field", "renderer", "optimizer")} \
            if state is not None else None
        if state is not None:
            Trainer.restore(self, state)  # not a subclass's override: the subclass is not initialised yet
        if self.ranks is not None:  # one model on every rank; each rank's own rays (rank 0's resumed generator)
            self.ranks.broadcast_tensors([t for t in self.synced_tensors().values() if t.is_floating_point()])
            if not self.ranks.is_main:
                torch.manual_seed(self.sampling_seed())

    def make_optimizer(self) -> torch.optim.Adam:
        """Adam over the field's parameter groups, from the run's optimiser spec (also after the field re-creates
        its parameters), plus the per-image appearance and the camera offsets (Adam as instant-ngp's)."""
        spec = self.config.optimizer_spec()
        groups = self.field.param_groups(spec)
        own = {"weight_decay": 0.0, "betas": (0.9, 0.99), "eps": 1e-15}
        if self.appearance is not None:
            groups.append({"params": list(self.appearance.parameters()), "lr": self.config.appearance_lr, **own})
        if self.camera_offsets is not None:
            groups.append({"params": list(self.camera_offsets.parameters()), "lr": self.config.camera_lr, **own})
        optimizer = adam(groups, betas=spec.betas, eps=spec.eps)
        for group in optimizer.param_groups:
            group["initial_lr"] = group["lr"]
        return optimizer

    def sampling_seed(self) -> int:
        """The seed of this process's random draws: the run's seed, or under torchrun each rank's own."""
        return self.ranks.seed(self.config.seed, self.step) if self.ranks is not None else self.config.seed

    def synced_tensors(self) -> dict[str, torch.Tensor]:
        """What every rank must hold alike: the field's, grid's, appearance's and camera offsets' tensors."""
        modules = {"field": self.field, "renderer": self.renderer, "appearance": self.appearance,
                   "camera_offsets": self.camera_offsets}
        return {f"{name}.{key}": t for name, module in modules.items() if module is not None
                for key, t in module.state_dict(keep_vars=True).items()}

    # ----- state -----
    def state(self) -> dict:
        return {
            "field_name": self.config.field,
            "field_config": self.field.config_dict(),
            "field": self.field.state_dict(),
            "renderer": self.renderer.state_dict(),
            "appearance": self.appearance.state_dict() if self.appearance is not None else None,
            "camera_offsets": self.camera_offsets.state_dict() if self.camera_offsets is not None else None,
            "near": self.train_scene.near,
            "unbounded": self.field.unbounded,
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "train_seconds": self.train_seconds,
            "n_rays": self.n_rays,
            "history": self.history,
            "snapshots_done": self.snapshots_done,
            "rng": torch.get_rng_state(),
        }

    def restore(self, state: dict) -> None:
        """The Trainer's part of a checkpoint (`state()`): field, grid, optimiser, progress and RNG."""
        path = self.run_dir / CHECKPOINT_NAME
        try:
            self.field.load_state_dict(state["field"])
            self.renderer.load_state_dict(state["renderer"])
            for name in ("appearance", "camera_offsets"):  # a checkpoint from before they existed: fresh ones
                module, saved = getattr(self, name), state.get(name)
                if module is None and saved is not None:
                    raise ValueError(f"the checkpoint has {name}, which this run's configuration turns off")
                if module is not None and saved is not None:
                    module.load_state_dict(saved)
            self.optimizer.load_state_dict(state["optimizer"])
            keep_fused(self.optimizer)
        except (RuntimeError, ValueError, KeyError) as err:
            raise FieldsError(f"{path}: checkpoint does not fit this run's field configuration "
                              f"({str(err).splitlines()[0]})") from None
        self.step, self.train_seconds = int(state["step"]), float(state["train_seconds"])
        self.n_rays, self.history = float(state["n_rays"]), list(state["history"])
        self.snapshots_done = list(state.get("snapshots_done", []))
        torch.set_rng_state(state["rng"])

    def save(self, name: str = CHECKPOINT_NAME) -> None:
        """Write the checkpoint (rank 0 alone under torchrun)."""
        if is_main(self.ranks):
            save_checkpoint(self.run_dir / name, self.state())

    # ----- training -----
    def progress_fraction(self) -> float:
        fractions = [self.step / self.config.steps] if self.config.steps else []
        if self.config.time_budget:
            fractions.append(self.train_seconds / (60.0 * self.config.time_budget))
        return max(fractions)

    def sample_batch(self, n_rays: int) -> Batch:
        """Random pixels of the training views, each pixel equally likely whatever its image's size. Pixels a
        capture's masks exclude (nerfstudio's mask_path) are dropped, so a batch may hold fewer rays. With the
        depth loss on, each ray carries its pixel's depth."""
        cam, x, y = self.cameras.random_pixels(n_rays)
        if self.train_scene.masks is not None:
            kept = self.train_scene.masks[cam, y, x]
            cam, x, y = cam[kept], x[kept], y[kept]
            n_rays = len(cam)
        rays = self.cameras.rays(cam, x.float() + 0.5, y.float() + 0.5)
        depth = None
        if self.config.depth_loss > 0:
            z = self.train_scene.depths[cam, y, x]
            depth = self.cameras.distances_of_z_depths(cam, rays.directions, z).to(self.device)
        rays = rays.to(self.device)
        _, height, width, _ = self.images.shape
        pixels = self.pixel_rows.index_select(0, ((cam * height + y) * width + x).to(self.device)).float() / 255.0
        # Random backgrounds: RGBA images teach transparency; an unbounded scene (whose contracted field reaches
        # infinity) learns to be opaque, instead of letting a white background paint its white walls.
        random = self.config.random_background and (self.train_scene.has_alpha or not self.train_scene.bounded)
        background = torch.rand(n_rays, 3, device=self.device) if random else torch.ones(n_rays, 3, device=self.device)
        target = composite_over(pixels, background) if self.train_scene.has_alpha else pixels
        return Batch(rays.origins, rays.directions, target, background, cam.to(self.device), depth)

    def train_step(self) -> StepFigures:
        """One optimiser step: its loss, batch MSE, rays, samples and time."""
        tic = time.perf_counter()
        self.update_schedule()
        self.update_occupancy()
        batch = self.make_batch()
        with self.precision.autocast():
            out = self.render_batch(batch)
            loss = self.loss(batch, out)
        if not torch.isfinite(loss):
            raise self.divergence_error(loss)
        n_samples = self.optimizer_step(loss, out.n_samples)  # of every rank, under torchrun
        rays = len(batch.origins) * (self.ranks.world if self.ranks is not None else 1)
        mse = self.finish_step(batch, out)
        self.update_ray_count(n_samples)
        self.step += 1
        return StepFigures(loss.item(), mse, rays, n_samples, time.perf_counter() - tic)

    def update_schedule(self) -> None:
        """The field's training hooks, its box shrunk to the occupied region when due, then its own schedule (a fresh
        optimiser when either re-created its parameters); then the lr schedule."""
        recreated = self.field.shrink_due(self.step) and self.field.shrink_to(self.renderer.occupied_box())
        if self.field.on_training_progress(self.step) or recreated:
            self.optimizer = self.make_optimizer()
        factor = self.lr_schedule.factor(self.step, self.progress_fraction())
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor

    def update_occupancy(self) -> None:
        self.renderer.update_occupancy(self.field, self.step, self.ranks.merge_cells if self.ranks else None)

    def batch_rays(self) -> int:
        """Rays this process draws for the step: n_rays, split over the ranks."""
        return self.ranks.share(int(self.n_rays)) if self.ranks is not None else int(self.n_rays)

    def make_batch(self) -> Batch:
        return self.sample_batch(self.batch_rays())

    def render_batch(self, batch: Batch) -> RenderOutput:
        """What the loss needs of the batch; anything with `n_samples`, the samples that reached the field.
        Rays move with their camera's learned offset, colours pass through their image's appearance."""
        origins, directions = batch.origins, batch.directions
        if self.camera_offsets is not None:
            origins, directions = self.camera_offsets(origins, directions, batch.image_indices)
        out = self.renderer.render(self.field, origins, directions, batch.background, training=True)
        if self.appearance is not None:
            out.rgb = self.appearance(out.rgb, batch.image_indices)
        return out

    def loss(self, batch: Batch, out: RenderOutput) -> torch.Tensor:
        """Scalar loss of the step: photometric loss, the depth loss where asked for, plus the field's
        regularisation."""
        loss = photometric_loss(out.rgb, batch.target, self.config.loss)
        if batch.depth is not None:
            loss = loss + self.config.depth_loss * depth_loss(out.depth, batch.depth)
        if self.config.distortion_loss > 0 and not self.train_scene.bounded and out.weights is not None:
            loss = loss + self.config.distortion_loss * distortion_loss(out.weights, out.samples, len(out.rgb))
        regularization = self.field.regularization()
        if regularization is not None:
            loss = loss + regularization
        return loss

    def divergence_error(self, loss: torch.Tensor) -> FieldsError:
        return FieldsError(
            f"training diverged at step {self.step}: the loss is {loss.item()} (NaN or infinite). "
            f"Checkpoints already in {self.run_dir} are kept; try a lower --lr."
        )

    def optimizer_step(self, loss: torch.Tensor, n_samples: int) -> int:
        """Backward and Adam step, skipped when no sample reached the field or the loss has no gradient (on every
        rank, under torchrun: gradients are averaged over the ranks first). Returns the samples of the step (of
        all ranks)."""
        self.optimizer.zero_grad(set_to_none=True)
        stepped = n_samples > 0 and loss.requires_grad
        if stepped:
            self.precision.backward(loss)
        if self.ranks is not None:
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            n_samples, stepped = self.ranks.average_gradients(params, n_samples, stepped)
        if stepped:
            self.precision.step(self.optimizer)
        return n_samples

    def finish_step(self, batch: Batch, out: RenderOutput) -> float:
        """After the optimiser step: the batch MSE against its targets (the progress bar's PSNR)."""
        return F.mse_loss(out.rgb.detach(), batch.target).item()

    def update_ray_count(self, n_samples: int) -> None:
        """Rescale rays so the next batch lands near the sample target (smoothed, bounded)."""
        ratio = self.target_samples / max(n_samples, 1)
        self.n_rays = min(max(self.n_rays * min(max(ratio, 0.5), 2.0) ** 0.5, 64), self.config.max_rays)

    def done(self) -> bool:
        return self.progress_fraction() >= 1.0

    def quick_eval(self) -> float | None:
        """Validation PSNR on the fixed pixel sample, recorded for the PSNR-vs-time plot."""
        if self.val_scene is None:
            return None
        self.field.eval()
        value = sampled_pixel_psnr(self.field, self.renderer, self.val_scene, self.config.eval_pixels,
                                   ranks=self.ranks)
        self.field.train()
        self.history.append({"step": self.step, "train_seconds": self.train_seconds, "val_psnr": value})
        return value

    def log_scalars(self) -> dict[str, float]:
        """A variant's own scalars for the run's log, e.g. the distiller's stage losses; none here."""
        return {}

    def progress_prefix(self) -> str:
        """What a variant's progress bar says first, e.g. the distiller's stage; nothing here."""
        return ""

    @sigterm_as_interrupt()  # `kill` stops training like Ctrl-C: checkpoint saved, one line printed
    def run(self, monitor: TrainingMonitor | None = None) -> TrainResult:
        """Train until the step or time budget is spent (the loop: run_loop.py); the final evaluation's result."""
        return run_training(self, monitor)

    def finish(self, log: TrainingLog | None = None) -> dict | None:
        """Final evaluation, renders, metrics.json and the PSNR-vs-time plot; the final scores into `log`."""
        if self.val_scene is None:
            return None
        self.field.eval()
        if not self.history or self.history[-1]["step"] != self.step:
            self.quick_eval()
        metrics = evaluate(self.field, self.renderer, self.val_scene, count=self.config.final_eval_views,
                           image_dir=self.run_dir / "renders_val", progress=self.progress, appearance=self.appearance,
                           ranks=self.ranks)
        metrics.update(step=self.step, train_seconds=self.train_seconds, field=self.config.field,
                       parameters=self.field.num_parameters(), split="val")
        if is_main(self.ranks):
            write_json(self.run_dir / "metrics.json", metrics)
            if log is not None:
                log.final(self, metrics)
            write_json(self.run_dir / "history.json", {"history": self.history})
            plot_psnr_vs_time(self.history, self.run_dir / "psnr_vs_time.png",
                              f"{self.config.scene} / {self.config.field}")
        self.save()
        return metrics


def train(config: TrainConfig, progress: bool = True, train_scene: SceneData | None = None,
          val_scene: SceneData | None = None, monitor: TrainingMonitor | None = None) -> TrainResult:
    """Train a new run (writes config.json first). Scenes default to the config's scene on disk.

    monitor: e.g. the live viewer (nfields.viewer.LiveViewer), started once the model exists."""
    config.validate()
    ranks = join(resolve_device(config.device))  # under torchrun: rank 0 names and checks the folder, and writes
    progress = progress and is_main(ranks)
    output = Path(config.output) if config.output else None
    run_dir = on_main(ranks, lambda: check_output_folder(output or default_run_dir(config), config.overwrite,
                                                         "fields train --resume"))
    # The run records the factor it trains at, so evaluation and the viewer read the scene at the same size.
    if train_scene is not None and config.downscale is None:
        config.downscale = 1  # scenes given are used as they are
    chosen = resolve_downscale(config)
    train_scene = train_scene or load_scene(config, "train")
    val_scene = val_scene or load_scene(config, "val")
    if progress:
        print(resolution_line(train_scene, config.downscale, chosen))
        if train_scene.scene_type:
            print(f"scene type: {train_scene.scene_type}: {train_scene.scene_type_reason}")
    if config.data is not None and train_scene.scene_type:  # as decided: the run reads its data the same way
        config.scene_type = train_scene.scene_type
    config.output = str(run_dir)
    config.resolve_defaults(resolve_device(config.device).type, unbounded=not train_scene.bounded)
    if is_main(ranks):
        run_dir.mkdir(parents=True, exist_ok=True)
        config.save(run_dir / CONFIG_NAME)
    trainer = Trainer(config, run_dir, train_scene, val_scene, progress=progress)
    return run_with_monitor(trainer, monitor)


def resume(run_dir: Path, overrides: dict | None = None, progress: bool = True,
           monitor: TrainingMonitor | None = None) -> TrainResult:
    """Continue a run from its checkpoint; `overrides` may extend steps or time_budget."""
    config = TrainConfig.load(run_dir / CONFIG_NAME)
    for key, value in (overrides or {}).items():
        setattr(config, key, value)
    if is_main(join(resolve_device(config.device))):
        config.save(run_dir / CONFIG_NAME)
    trainer = Trainer(config, run_dir, load_scene(config, "train"), load_scene(config, "val"), resume=True,
                      progress=progress)
    return run_with_monitor(trainer, monitor)


def run_with_monitor(trainer: Trainer, monitor: TrainingMonitor | None) -> TrainResult:
    """`trainer.run(monitor)` between the monitor's `start` and `finish`; a plain `run()` without one."""
    if monitor is None:
        return trainer.run()
    monitor.start(trainer)
    try:
        return trainer.run(monitor)
    finally:
        monitor.finish(trainer)


__all__ = ["Batch", "TrainConfig", "TrainResult", "Trainer", "TrainingMonitor", "resume", "run_with_monitor", "train"]
