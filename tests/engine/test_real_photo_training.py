"""Training on photos whose exposure differs per image: per-image appearance learns the exposures, is saved
with the run and scores held-out views under both protocols."""

import torch

from nfields.datasets import SceneData
from nfields.datasets.procedural import make_procedural_scene
from nfields.engine.config import TrainConfig
from nfields.engine.evaluation import evaluate
from nfields.engine.runs import CONFIG_NAME, load_run
from nfields.engine.trainer import Trainer


def exposed(scene: SceneData, gains: torch.Tensor) -> SceneData:
    """The scene's RGB photos (alpha dropped: the sky makes them opaque) with each image's exposure scaled."""
    rgb = scene.images[..., :3].float() * gains[:, None, None, None]
    return SceneData(scene.cameras, rgb.round().clamp(0, 255).to(torch.uint8), scene.aabb, scene.name, scene.near,
                     bounded=scene.bounded)


def test_per_image_appearance_learns_each_photos_exposure(tmp_path):
    gains = torch.linspace(0.55, 1.0, 24)[torch.randperm(24, generator=torch.Generator().manual_seed(0))]
    train_scene = exposed(make_procedural_scene(24, 32, unbounded=True), gains)
    val_scene = exposed(make_procedural_scene(3, 32, seed_offset=17.0, unbounded=True), torch.full((3,), 0.8))
    config = TrainConfig(scene="procedural", field="hashgrid", steps=150, samples_per_step=1 << 13,
                         occupancy_every=16, initial_rays=256, grid_resolution=32, eval_every=1e9, threads=2,
                         output=str(tmp_path), appearance_lr=1e-2, random_background=False,
                         alpha_warmup=0)  # 150 steps would all be warm-up (more samples a ray, fewer rays a step)
    config.save(tmp_path / CONFIG_NAME)
    trainer = Trainer(config, tmp_path, train_scene, val_scene, progress=False)
    assert trainer.appearance is not None  # RGB photos: on by default
    while not trainer.done():
        trainer.train_step()
    transforms = trainer.appearance.centred().detach()
    assert torch.allclose(transforms.mean(0), torch.eye(3, 4), atol=1e-5)  # centred: the field keeps the colours
    brightness = transforms[:, :, :3].sum(-1).mean(-1)  # row sums: the gain seen
    correlation = torch.corrcoef(torch.stack([brightness, gains]))[0, 1]
    assert correlation > 0.9, (correlation, brightness, gains)

    trainer.save()
    run = load_run(tmp_path, "cpu")
    assert run.appearance is not None and torch.equal(run.appearance.transforms, trainer.appearance.transforms)
    mean = evaluate(run.field, run.renderer, val_scene, appearance=run.appearance, protocol="mean")
    half = evaluate(run.field, run.renderer, val_scene, appearance=run.appearance, protocol="half")
    assert mean["appearance"] == "mean" and half["appearance"] == "half"
    assert half["psnr"] > 15 and mean["psnr"] > 15


def test_appearance_is_on_by_default_for_photos_without_alpha_only(tmp_path):
    config = TrainConfig(scene="procedural", steps=1, threads=1, output=str(tmp_path))
    assert not config.uses_appearance(has_alpha=True) and config.uses_appearance(has_alpha=False)
    config.appearance = False
    assert not config.uses_appearance(has_alpha=False)


def test_masked_pixels_are_never_drawn_for_training(tmp_path):
    scene = make_procedural_scene(4, 16)
    images = torch.zeros(4, 16, 16, 3, dtype=torch.uint8)
    images[:, :, :5, 2] = 255  # the left five columns blue (the ones trained on), the rest red
    images[:, :, 5:, 0] = 255
    masks = torch.zeros(4, 16, 16, dtype=torch.bool)
    masks[:, :, :5] = True
    scene = SceneData(scene.cameras, images, scene.aabb, scene.name, scene.near, masks=masks)
    config = TrainConfig(scene="procedural", steps=1, threads=1, output=str(tmp_path))
    trainer = Trainer(config, tmp_path, scene, None, progress=False)
    batch = trainer.sample_batch(2000)
    target = batch.target
    assert 450 < len(target) < 850 and len(batch.image_indices) == len(target) == len(batch.origins)  # ~5/16 kept
    assert (target[:, 2] == 1).all() and (target[:, 0] == 0).all()
