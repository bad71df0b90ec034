"""Each backbone's declared optimiser: groups covering its parameters, the schedule over the fraction of training,
`--lr` as a scale, the spec recorded in config.json, and runs from before the specs (an absolute `lr`) resuming
with the groups they trained with."""

import json
import math
import re
from pathlib import Path

import pytest
import torch

from nfields.datasets import make_procedural_scene
from nfields.engine.config import TrainConfig
from nfields.engine.models import make_model
from nfields.engine.runs import CHECKPOINT_NAME, CONFIG_NAME
from nfields.engine.trainer import Trainer
from nfields.errors import FieldsError
from nfields.fields import FIELDS, OptimizerSpec, ParamGroupSpec, Schedule, build_field
from nfields.fields.base import SavedConfigError

AABB = torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5])
# What config.json held before the specs (instant-ngp's optimiser, the defaults then).
OLD_OPTIMIZER_FIELDS = {"lr": 1e-2, "weight_decay": 1e-6, "warmup_steps": 100, "decay_at": [0.5, 0.75, 0.9],
                        "decay_factor": 0.33}


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_backbone_declares_groups_that_claim_all_its_parameters(name):
    for preset in FIELDS[name].Config.presets():
        spec = FIELDS[name].Config.optimizer_for(preset)
        assert len({g.name for g in spec.groups}) == len(spec.groups)
        field = build_field(name, AABB, preset)
        groups = field.param_groups(spec)
        ids = [id(p) for g in groups for p in g["params"]]
        assert sorted(ids) == sorted(id(p) for p in field.parameters())  # each parameter once
        assert all(g["lr"] > 0 for g in groups)


def test_a_parameter_no_group_claims_is_named():
    field = build_field("cam", AABB)
    with pytest.raises(ValueError, match="no optimiser group.*claims parameter 'trunk_mlp.modulation"):
        field.param_groups(OptimizerSpec((ParamGroupSpec("decoder", 1e-3, roles=("decoder",)),)))


def test_later_narrower_groups_take_their_parameters():
    field = build_field("hashgrid", AABB)
    groups = {g["name"]: g for g in field.param_groups(FIELDS["hashgrid"].Config.optimizer)}
    decayed = groups["decoder weights"]["params"]
    assert decayed and all(p.ndim == 2 for p in decayed) and groups["decoder weights"]["weight_decay"] > 0
    assert not any(p is q for p in decayed for q in groups["field"]["params"])


def test_schedule_warms_up_steps_down_and_decays_exponentially():
    warm = Schedule(warmup_steps=10)
    assert warm.factor(0, 0.0) == pytest.approx(0.01) and warm.factor(10, 0.0) == 1.0
    stepped = Schedule(decay_at=(0.5, 0.9), decay_factor=0.33)
    assert [stepped.factor(100, p) for p in (0.49, 0.5, 0.95)] == pytest.approx([1.0, 0.33, 0.33**2])
    exponential = Schedule(final_ratio=0.1)
    assert exponential.factor(5, 1.0) == pytest.approx(0.1)
    assert exponential.factor(5, 0.5) == pytest.approx(math.sqrt(0.1))


def test_lr_scales_the_backbones_rates_and_the_run_records_what_it_used(tmp_path):
    declared = FIELDS["tensorf-vm"].Config.optimizer
    config = TrainConfig(field="tensorf-vm", lr=0.5, decay_at=[0.5], decay_factor=0.1, weight_decay=0.0)
    spec = config.optimizer_spec()
    assert [g.lr for g in spec.groups] == pytest.approx([0.5 * g.lr for g in declared.groups])
    assert spec.schedule.decay_at == (0.5,) and spec.schedule.decay_factor == 0.1
    assert spec.schedule.final_ratio == declared.schedule.final_ratio and spec.betas == declared.betas
    config.save(tmp_path / CONFIG_NAME)
    assert TrainConfig.load(tmp_path / CONFIG_NAME).optimizer_spec() == spec


def test_a_preset_with_its_own_optimizer_trains_with_it():
    """cam's cpu preset (the mlp backbone's network, modulated) has instant-ngp's Adam; its published one CAM's."""
    cam = FIELDS["cam"].Config
    assert cam.optimizer_for("cpu") != cam.optimizer
    assert TrainConfig(field="cam", preset="cpu", device="cpu").optimizer_spec() == cam.optimizer_for("cpu")
    assert TrainConfig(field="cam", preset="published", device="cpu").optimizer_spec() == cam.optimizer
    assert TrainConfig(field="cam", device="cpu").optimizer_spec() == cam.optimizer_for("cpu")  # the CPU's preset


def test_a_config_json_from_before_the_specs_keeps_its_absolute_rate(tmp_path):
    old = {k: v for k, v in vars(TrainConfig(field="mlp")).items() if k != "optimizer"} | OLD_OPTIMIZER_FIELDS
    old.update(lr=3e-3, weight_decay=1e-5, warmup_steps=7, decay_at=[0.6], decay_factor=0.5)
    (tmp_path / CONFIG_NAME).write_text(json.dumps(old))
    spec = TrainConfig.load(tmp_path / CONFIG_NAME).optimizer_spec()
    assert [(g.lr, g.weight_decay) for g in spec.groups] == [(3e-3, 0.0), (3e-3, 1e-5)]
    assert spec.schedule == Schedule(warmup_steps=7, decay_at=(0.6,), decay_factor=0.5)
    assert (spec.betas, spec.eps) == ((0.9, 0.99), 1e-15)


def test_a_bad_recorded_optimizer_names_the_field():
    with pytest.raises(FieldsError, match="optimizer.*groups\\[0\\].*speed"):
        TrainConfig(optimizer={"groups": [{"name": "x", "lr": 1.0, "speed": 2}]}).validate()
    with pytest.raises(FieldsError, match="'lr'"):
        TrainConfig(lr=0.0).validate()


@pytest.mark.parametrize("name", ["mlp", "cam"])
def test_a_run_from_before_the_specs_resumes_with_its_optimizer_state(name, tmp_path):
    """An old run: config.json with an absolute lr and no optimiser, a checkpoint whose Adam state has the old
    groups (mlp: field + decoder weights, where its own spec now has one group)."""
    scenes = make_procedural_scene(8, 24), make_procedural_scene(2, 24, seed_offset=17.0)
    config = TrainConfig(scene="procedural", field=name, steps=2, samples_per_step=1 << 11, initial_rays=128,
                         grid_resolution=32, eval_every=1e9, threads=2, output=str(tmp_path))
    old = {k: v for k, v in vars(config).items() if k != "optimizer"} | OLD_OPTIMIZER_FIELDS
    (tmp_path / CONFIG_NAME).write_text(json.dumps(old))
    trainer = Trainer(TrainConfig.load(tmp_path / CONFIG_NAME), tmp_path, *scenes, progress=False)
    trainer.train_step()
    trainer.save()
    (tmp_path / CONFIG_NAME).write_text(json.dumps(old))  # as the old code left it
    resumed = Trainer(TrainConfig.load(tmp_path / CONFIG_NAME), tmp_path, *scenes, resume=True, progress=False)
    saved = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["optimizer"]
    assert len(resumed.optimizer.param_groups) == len(saved["param_groups"]) >= 2
    assert resumed.optimizer.param_groups[0]["initial_lr"] == pytest.approx(1e-2 * (10 if name == "cam" else 1))
    resumed.train_step()


def test_older_saved_field_configs_load_or_say_why_not():
    current = build_field("tensorf-vm", AABB).config_dict()
    tensorf = current | {"factor_lr_scale": 2.0, "network_lr_scale": 0.1}
    assert build_field("tensorf-vm", AABB, config=tensorf).config_dict() == current
    cam = build_field("cam", AABB).config_dict() | {"density_bias": -1.0, "grid_lr_scale": 10.0}
    with pytest.raises(SavedConfigError, match="predates CAM's reference trunk"):
        build_field("cam", AABB, config=cam)
    checkpoint = Path("runs/old-cam") / CHECKPOINT_NAME  # the file is named in the user's error
    with pytest.raises(FieldsError, match=f"^{re.escape(str(checkpoint))}: this cam checkpoint predates"):
        make_model("cam", AABB, 0.0, TrainConfig(field="cam"), torch.device("cpu"), field_config=cam,
                   checkpoint=checkpoint)
