"""Unbounded scenes: the field's scene contraction, the occupancy grid's cascades, and training on a
procedural scene whose sky lies far outside the scene box (cascaded marching itself is checked against
its twin in test_kernels.py)."""

import torch

from nfields.datasets.procedural import AABB, make_procedural_scene
from nfields.engine.config import TrainConfig
from nfields.engine.evaluation import sampled_pixel_psnr
from nfields.engine.runs import CONFIG_NAME, load_run
from nfields.engine.trainer import Trainer
from nfields.fields import build_field
from nfields.fields.base import contract
from nfields.renderers import torch_ops
from nfields.renderers.occupancy import OccupancyGrid


def test_contraction_keeps_the_box_and_squeezes_everything_else_into_the_shell():
    inside = torch.rand(500, 3) * 2 - 1
    assert torch.equal(contract(inside), inside)
    directions = torch.randn(500, 3)
    far = directions / directions.abs().amax(-1, keepdim=True) * torch.logspace(0.01, 6, 500)[:, None]  # |.|_inf > 1
    squeezed = contract(far)
    norm = squeezed.abs().amax(-1)
    assert (norm > 1).all() and (norm < 2).all()
    along_ray = contract(torch.tensor([[0.3, 0.2, 0.1]]) * torch.linspace(1, 1000, 200)[:, None])
    assert (along_ray.abs().amax(-1).diff() > 0).all()  # monotone along a ray, continuous at the box's edge
    assert torch.allclose(contract(torch.tensor([[1.0 + 1e-6, 0.5, 0.0]])), torch.tensor([[1.0, 0.5, 0.0]]),
                          atol=1e-5)
    field = build_field("hashgrid", torch.tensor(AABB), unbounded=True)
    coords = field.normalize(torch.tensor([[-1.0, 0.0, 1.0], [100.0, 0.0, 0.0]]))
    assert torch.allclose(coords[0], torch.tensor([0.25, 0.5, 0.75]))
    assert 0.99 < coords[1, 0] < 1.0


def test_cascades_mark_far_content_in_their_coarse_levels():
    grid = OccupancyGrid(torch.tensor(AABB), resolution=16, levels=3)
    shell = lambda x: ((x.abs().amax(-1) > 2.5) & (x.abs().amax(-1) < 3.5)).float() * 100.0  # noqa: E731
    grid.update(0, shell, step_size=0.01)
    binaries = grid.binaries
    assert not binaries[0].any() and not binaries[1].any()  # the shell lies beyond levels 0 (+-1) and 1 (+-2)
    assert binaries[2].any() and not binaries[2].all()
    assert torch.allclose(grid.aabbs[2], torch.tensor(AABB) * 4)


def test_unbounded_scene_trains_its_sky_beyond_the_box(tmp_path):
    train_scene = make_procedural_scene(24, 32, unbounded=True)
    val_scene = make_procedural_scene(3, 32, seed_offset=17.0, unbounded=True)
    config = TrainConfig(scene="procedural", field="hashgrid", steps=150, samples_per_step=1 << 13, occupancy_every=16,
                         initial_rays=256, grid_resolution=32, eval_every=1e9, threads=2, output=str(tmp_path),
                         random_background=False)
    config.save(tmp_path / CONFIG_NAME)
    trainer = Trainer(config, tmp_path, train_scene, val_scene, progress=False)
    assert trainer.field.unbounded and trainer.renderer.cascades == config.cascades
    while not trainer.done():
        trainer.train_step()
    trainer.field.eval()
    # Measured: 17.5 dB; the same 150 steps with the scene treated as bounded (one grid over the box, which
    # cannot hold the sky) reach 11.7 dB.
    assert sampled_pixel_psnr(trainer.field, trainer.renderer, val_scene, 1024) > 15.5
    trainer.save()
    run = load_run(tmp_path, device="cpu")
    assert run.field.unbounded and run.renderer.cascades == config.cascades
    # Rays that miss the scene box entirely can only be drawn by content beyond it.
    rays = val_scene.cameras.image_rays(0)
    t_near, t_far = torch_ops.ray_aabb_intersect(rays.origins, rays.directions, torch.tensor(AABB))
    outside = t_far <= t_near
    assert outside.sum() > 50
    out = run.renderer.render_chunked(run.field, rays.origins[outside], rays.directions[outside], torch.ones(3))
    assert out.opacity.median() > 0.9
