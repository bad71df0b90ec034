"""Evaluation renders of unbounded scenes cull harder than training (renderers/volume.py render_* settings): a
sparser occupancy grid, a higher alpha threshold and an earlier stop; training keeps instant-ngp's settings."""

import json
import math

import pytest
import torch

from nfields.engine.config import TrainConfig
from nfields.engine.models import make_model
from nfields.errors import FieldsError
from nfields.renderers import VolumeRenderer

AABB = torch.tensor([-1.0, -1, -1, 1, 1, 1])
FOG = 1.5  # thin fog: 1 - exp(-1.5 dt) is ~0.02 per CPU step (dt = sqrt(3) 2 / 256)


class FogAndBall:
    """Thin fog everywhere and a dense ball of radius 0.4 at the centre: density(x) -> (sigma, features);
    colour: red in the ball, blue in the fog."""

    def density(self, x):
        inside = x.norm(dim=-1) < 0.4
        return torch.where(inside, 500.0, FOG), inside.float()[:, None]

    def color(self, features, directions):
        return torch.cat([features, torch.zeros_like(features), 1 - features], dim=-1)


def fog_renderer(**culling) -> VolumeRenderer:
    diagonal = 2 * math.sqrt(3)
    renderer = VolumeRenderer(AABB, grid_resolution=16, cascades=3, step_size=diagonal / 256, cone_angle=1 / 64,
                              alpha_threshold=0.01, **culling)
    renderer.occupancy.set_interval(1)
    for step in range(3):
        renderer.update_occupancy(FogAndBall(), step)
    return renderer


def rays(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays from z = -0.9 along +z, some through the ball and some past it."""
    x = torch.linspace(-0.9, 0.9, n)
    origins = torch.stack([x, torch.zeros(n), torch.full((n,), -0.9)], -1)
    return origins, torch.tensor([0.0, 0.0, 1.0]).expand(n, 3).contiguous()


def test_the_render_grid_drops_fog_cells_below_its_threshold_and_keeps_the_ball():
    renderer = fog_renderer()
    grid = renderer.occupancy
    fog_thickness = FOG * renderer.step_size  # what the grid holds in a fog cell
    assert fog_thickness > 0.01 and grid.binaries.float().mean() > 0.9  # training marches the fog everywhere
    sparse = grid.binaries_above(2 * fog_thickness)
    centres = (torch.stack(torch.meshgrid(*[torch.arange(16)] * 3, indexing="ij"), -1) + 0.5) / 8 - 1
    assert sparse[0][centres.norm(dim=-1) < 0.3].all()
    for level in range(3):  # level k spans the box 2^k times: only cells reaching into the ball stay
        half_diagonal = 2**level / 8 * math.sqrt(3)
        assert not sparse[level][(centres * 2**level).norm(dim=-1) > 0.4 + half_diagonal].any()
    assert grid.binaries_above(2 * fog_thickness) is sparse  # cached while the grid stands
    grid.update(3, lambda x: torch.full((len(x),), 100.0), renderer.step_size)
    assert grid.binaries_above(2 * fog_thickness).all()  # refreshed after an update


def test_evaluation_renders_cull_with_the_render_settings_and_training_renders_do_not():
    origins, directions = rays()
    field = FogAndBall()
    plain = fog_renderer()
    culled = fog_renderer(render_alpha_threshold=0.03, render_early_stop_eps=1e-3, render_occupancy_threshold=0.03)
    assert culled.culling(True) == (0.01, 1e-4) and culled.culling(False) == (0.03, 1e-3)
    with torch.no_grad():
        before = plain.render(field, origins, directions, torch.ones(3))
        after = culled.render(field, origins, directions, torch.ones(3))
        torch.manual_seed(0)
        trained_plain = plain.render(field, origins, directions, torch.ones(3), training=True)
        torch.manual_seed(0)
        trained_culled = culled.render(field, origins, directions, torch.ones(3), training=True)
    assert trained_plain.n_samples == trained_culled.n_samples  # training marches and culls as before
    assert torch.equal(trained_plain.rgb, trained_culled.rgb)
    assert after.n_samples < before.n_samples / 2  # the fog's samples are gone
    marched = len(culled.march(origins, directions, jitter=False, training=False))
    assert marched < len(culled.march(origins, directions, jitter=False)) / 2  # through the sparser grid
    ball, past = origins[:, 0].abs() < 0.3, origins[:, 0].abs() > 0.45
    # The fog tints the ball blue and veils the rest; the culled render sees the ball red and the rest empty.
    assert (after.rgb[ball, 0] > 0.95).all() and (before.rgb[ball, 0] < after.rgb[ball, 0] - 0.2).all()
    assert (after.opacity[past] < 0.05).all() and (before.opacity[past] > 0.5).all()


def test_render_culling_defaults_by_device_and_config_json_records_them():
    config = TrainConfig()
    assert config.render_culling("cpu") == (config.alpha_threshold, 1e-2, None, 3e-3)
    assert config.render_culling("cuda") == (config.alpha_threshold, 1e-4, None, 0.0)  # as in training
    config.resolve_defaults("cpu", unbounded=True)
    assert (config.render_alpha_threshold, config.render_early_stop, config.render_occupancy_threshold,
            config.render_weight_threshold) == (config.alpha_threshold, 1e-2, None, 3e-3)
    given = TrainConfig(render_alpha_threshold=0.05, render_early_stop=1e-3, render_occupancy_threshold=0.02,
                        render_weight_threshold=0.01)
    assert given.render_culling("cuda") == (0.05, 1e-3, 0.02, 0.01)
    _, renderer = make_model("hashgrid", AABB, 0.1, given, torch.device("cpu"), unbounded=True)
    assert renderer.culling(False) == (0.05, 1e-3) and renderer.render_occupancy_threshold == 0.02
    assert renderer.render_weight_threshold == 0.01
    assert renderer.culling(True) == (0.0, 1e-4)  # a young field trains every sample (alpha_warmup)
    field = make_model("hashgrid", AABB, 0.1, given, torch.device("cpu"), unbounded=True)[0]
    assert not renderer.update_occupancy(field, given.alpha_warmup + 1)  # no grid update at that step
    assert renderer.culling(True) == (given.alpha_threshold, 1e-4)  # training: instant-ngp's early stop
    _, bounded = make_model("hashgrid", AABB, 0.1, given, torch.device("cpu"))
    assert bounded.culling(False) == bounded.culling(True) == (0.0, 1e-4)  # bounded scenes: unchanged
    with pytest.raises(FieldsError, match="render_early_stop"):
        TrainConfig(render_early_stop=1.5).validate()
    with pytest.raises(FieldsError, match="render_weight_threshold"):
        TrainConfig(render_weight_threshold=-0.1).validate()


def test_colour_at_the_heavy_samples_only_keeps_the_pixels():
    """Fog then the ball: with a weight threshold of 0.01, colour runs at under half the samples, and each ray's
    colour (the weighted mean of its shaded samples times its opacity) stays close; rays through fog alone keep
    their fog's blue from its heaviest samples; opacity and depth are those of every sample."""
    origins, directions = rays()
    field = FogAndBall()
    with torch.no_grad():
        every = fog_renderer().render(field, origins, directions, torch.ones(3))
        heavy = fog_renderer(render_weight_threshold=0.01).render(field, origins, directions, torch.ones(3))
    assert heavy.n_samples < every.n_samples / 2
    assert torch.allclose(heavy.opacity, every.opacity) and torch.allclose(heavy.depth, every.depth)
    error = (heavy.rgb - every.rgb).abs()  # at most where the most blue fog lies in front of the red ball
    assert error.max() < 0.1 and error.mean() < 0.02
    past = origins[:, 0].abs() > 0.45  # fog only: every sample weighs under 0.01 once the fog thickens
    assert (heavy.rgb[past, 2] > 0.9).all() and (heavy.rgb[past, 0] < 0.1).all()


def test_a_stricter_training_grid_leaves_the_fog_cells_empty():
    """occupancy_threshold reaches the grid: at 0.04 the fog's cells (thickness ~0.02 per step) are empty, at
    instant-ngp's 0.01 they are occupied; the ball's are occupied either way."""
    occupied = {}
    for threshold in (0.01, 0.04):
        _, renderer = make_model("hashgrid", AABB, 0.0, TrainConfig(occupancy_threshold=threshold, cascades=3),
                                 torch.device("cpu"), unbounded=True)
        renderer.occupancy.set_interval(1)
        for step in range(3):
            renderer.update_occupancy(FogAndBall(), step)
        occupied[threshold] = renderer.occupancy.binaries[0]
    assert occupied[0.01].float().mean() > 0.9
    centre = [n // 2 for n in occupied[0.04].shape]
    assert occupied[0.04][tuple(centre)] and occupied[0.04].float().mean() < 0.1  # the ball's cells only
    with pytest.raises(FieldsError, match="occupancy_threshold"):
        TrainConfig(occupancy_threshold=0.0).validate()


def test_the_grid_threshold_is_instant_ngps_density_at_the_runs_step(tmp_path):
    """None: 0.01 per sqrt(3) box / 1024 scaled to the smallest step (unbounded on a CPU, steps 4x longer: 0.04;
    on CUDA and for bounded scenes 0.01), recorded in config.json; a run saved before the default keeps 0.01."""
    config = TrainConfig()
    assert config.grid_threshold(True, "cpu") == pytest.approx(0.04)
    assert config.grid_threshold(True, "cuda") == pytest.approx(0.01)
    assert config.grid_threshold(False, "cpu") == config.grid_threshold(False, "cuda") == 0.01
    assert TrainConfig(steps_per_diagonal=128).grid_threshold(True, "cpu") == pytest.approx(0.08)
    assert TrainConfig(occupancy_threshold=0.02).grid_threshold(True, "cpu") == 0.02  # given: as given
    _, renderer = make_model("hashgrid", AABB, 0.0, config, torch.device("cpu"), unbounded=True)
    assert renderer.occupancy.threshold == pytest.approx(0.04)
    config.resolve_defaults("cpu", unbounded=True)
    assert config.occupancy_threshold == pytest.approx(0.04)
    config.save(tmp_path / "config.json")
    assert TrainConfig.load(tmp_path / "config.json").occupancy_threshold == pytest.approx(0.04)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["occupancy_threshold"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert TrainConfig.load(tmp_path / "config.json").grid_threshold(True, "cpu") == 0.01
