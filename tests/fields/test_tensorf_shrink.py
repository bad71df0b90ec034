"""TensoRF's box shrink (TensoRF's first alpha-mask update): densities kept inside, zero outside, finer voxels
after the later upsamplings, the L1 weight's drop, and checkpoints and resumed runs over the shrunk box."""

import pytest
import torch

from nfields.datasets import make_procedural_scene
from nfields.engine.config import TrainConfig
from nfields.engine.runs import CONFIG_NAME, load_run
from nfields.engine.trainer import Trainer
from nfields.fields import build_field
from nfields.fields.encodings import positional_encoding

AABB = torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5])
SUB_BOX = torch.tensor([-0.5, -0.7, -0.3, 0.6, 0.4, 0.9])


def random_field(name: str):
    """A CPU-preset field whose factors vary more than at initialisation, so that cropping errors would show."""
    torch.manual_seed(0)
    field = build_field(name, AABB)
    with torch.no_grad():
        for p in field.parameters():
            p.normal_(0.0, 0.5)
    return field


def points_in(box: torch.Tensor, n: int = 2000) -> torch.Tensor:
    return box[:3] + torch.rand(n, 3) * (box[3:] - box[:3])


@pytest.mark.parametrize("name", ["tensorf-vm", "tensorf-cp"])
def test_shrink_keeps_the_field_inside_the_box_and_zeroes_density_outside(name):
    field = random_field(name)
    inside = points_in(SUB_BOX)
    directions = torch.nn.functional.normalize(torch.randn(len(inside), 3), dim=-1)
    with torch.no_grad():
        sigma, rgb = field(inside, directions)
    before = list(field.config.resolution)
    assert field.shrink_to(SUB_BOX)
    box = field.aabb
    assert (box[:3] <= SUB_BOX[:3]).all() and (box[3:] >= SUB_BOX[3:]).all()  # covers the occupied box
    node = 3.0 / (torch.tensor(before) - 1)
    assert ((SUB_BOX[:3] - box[:3]) <= node).all() and ((box[3:] - SUB_BOX[3:]) <= node).all()  # by < one node
    assert all(a < b for a, b in zip(field.config.resolution, before))
    assert field.config.box == box.tolist()
    with torch.no_grad():
        sigma_after, rgb_after = field(inside, directions)
        outside = points_in(AABB, 4000)
        outside = outside[((outside < box[:3]) | (outside > box[3:])).any(-1)]
        sigma_outside = field.density(outside)[0]
    assert sigma.abs().max() > 1.0  # a field worth comparing
    torch.testing.assert_close(sigma_after, sigma, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(rgb_after, rgb, rtol=1e-3, atol=1e-3)  # rounding, amplified by the random decoder
    assert len(outside) > 1000 and (sigma_outside == 0).all()


def test_shrinking_to_the_whole_box_recreates_nothing():
    field = random_field("tensorf-vm")
    parameters = list(field.parameters())
    assert not field.shrink_to(AABB.clone())
    assert list(field.parameters()) == parameters and field.config.box == AABB.tolist()
    assert not field.shrink_due(10**6)  # once only


def test_later_upsamplings_give_finer_voxels_over_the_shrunk_box():
    fields = {shrunk: build_field("tensorf-vm", AABB) for shrunk in (False, True)}
    c = fields[True].config
    for step in range(c.upsample_steps[-1] + 1):
        for shrunk, field in fields.items():
            if shrunk and field.shrink_due(step):
                field.shrink_to(SUB_BOX)
            field.on_training_progress(step)
    voxel = {shrunk: field.extent / (torch.tensor(field.config.resolution) - 1) for shrunk, field in fields.items()}
    assert (voxel[True] < 0.7 * voxel[False]).all()
    counts = {shrunk: torch.tensor(field.config.resolution).prod().item() for shrunk, field in fields.items()}
    assert abs(counts[True] / counts[False] - 1) < 0.05  # the same voxel count, over the smaller box
    assert not fields[False].shrink_due(c.shrink_step - 1) and fields[False].shrink_due(c.shrink_step)


def test_l1_weight_drops_at_the_shrink():
    field = build_field("tensorf-vm", AABB, "published")
    c = field.config
    l1 = sum(f.abs().mean() for f in field.density_factors()).item()
    assert field.regularization().item() == pytest.approx(c.l1_weight * l1)
    field.shrink_to(AABB.clone())
    assert field.regularization().item() == pytest.approx(c.l1_weight_rest * l1)
    assert c.l1_weight_rest < c.l1_weight


def test_unbounded_fields_do_not_shrink():
    field = build_field("tensorf-vm", AABB, unbounded=True)
    assert not field.shrink_due(10**6)


def test_tensorf_encoding_has_no_pi():
    x = torch.tensor([[0.3]])
    encoded = positional_encoding(x, 2, base=1.0)
    expected = torch.tensor([[0.3, 0.3, 0.6]]).sin(), torch.tensor([[0.3, 0.6]]).cos()
    torch.testing.assert_close(encoded, torch.cat([x, expected[0][:, 1:], expected[1]], dim=-1))
    torch.testing.assert_close(positional_encoding(x, 1)[:, 1], torch.sin(torch.pi * x[:, 0]))


def vm_factors_channels_last(field) -> bool:
    """Every VM factor with its channels innermost, the layout the native products read fastest."""
    factors = [*field.density_planes, *field.density_lines, *field.appearance_planes, *field.appearance_lines]
    return all(f.is_contiguous(memory_format=torch.channels_last) and f.stride(1) == 1 for f in factors)


@pytest.fixture(scope="module")
def scenes():
    return make_procedural_scene(24, 32), make_procedural_scene(3, 32, seed_offset=17.0)


def test_training_shrinks_to_the_occupied_box_and_resumes_over_it(scenes, tmp_path):
    config = TrainConfig(scene="procedural", field="tensorf-vm", steps=40, samples_per_step=1 << 12,
                         occupancy_every=4, initial_rays=256, grid_resolution=32, eval_every=1e9, threads=2)
    config.output = str(tmp_path)
    config.save(tmp_path / CONFIG_NAME)
    trainer = Trainer(config, tmp_path, *scenes, progress=False)
    trainer.field.config.shrink_step = 30
    trainer.field.config.upsample_steps = [30, 35]
    while trainer.step < 30:
        trainer.train_step()
    occupied = trainer.renderer.occupied_box()
    assert ((occupied[3:] - occupied[:3]) < 2.9).any()  # the procedural objects do not fill the scene box
    trainer.train_step()
    box = trainer.field.aabb.clone()
    assert (box[:3] <= occupied[:3]).all() and (box[3:] >= occupied[3:]).all() and (box != AABB).any()
    grouped = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert all(id(p) in grouped for p in trainer.field.parameters())  # a fresh optimiser over the cropped factors
    trainer.train_step()  # step 32: cropped at 30, not yet upsampled again
    assert vm_factors_channels_last(trainer.field)
    cropped = list(trainer.field.config.resolution)
    while trainer.step < 36:
        trainer.train_step()
    assert trainer.field.config.resolution != cropped and vm_factors_channels_last(trainer.field)  # upsampled
    trainer.save()

    x = points_in(AABB, 500)
    d = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1)
    trainer.field.eval()
    with torch.no_grad():
        expected = trainer.field(x, d)
    run = load_run(tmp_path, device="cpu")
    resumed = Trainer(trainer.config, tmp_path, *scenes, resume=True, progress=False)
    for field in (run.field, resumed.field):
        field.eval()
        assert torch.equal(field.aabb, box) and field.config.box == box.tolist()
        assert vm_factors_channels_last(field)
        with torch.no_grad():
            got = field(x, d)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    assert not resumed.field.shrink_due(resumed.step)
    resumed.field.train()
    resumed.train_step()
