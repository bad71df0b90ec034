"""Parameter roles declared by each backbone give exactly the feature/decoder split and colour decoder of the
substring rules they replace ("mlp" in a name meant decoder), and an older run's optimiser (`legacy_optimizer`) the
groups it trained with; configs share one base."""

import pytest
import torch

from nfields.engine.config import legacy_optimizer
from nfields.fields import FIELDS, OptimizerSpec, build_field, default_preset, preset_names
from nfields.fields.base import ROLES, FieldConfig, within

AABB = torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5])
CASES = [(name, preset) for name in sorted(FIELDS) for preset in preset_names(name)]


def _old_split(field) -> dict[str, list[str]]:
    """The split before roles: per-backbone overrides, else "mlp" in the name means decoder."""
    names = [n for n, _ in field.named_parameters()]
    if field.name == "rbf":
        decoder = [n for n in names if not n.startswith("encoder")]
    elif field.name.startswith("tensorf"):
        decoder = [n for n in names if n.startswith(("basis_mlp", "color_mlp"))]
    elif field.name == "cam":
        decoder = [n for n in names if ".modulation." not in n]
    else:
        decoder = [n for n in names if "mlp" in n]
    return {"features": [n for n in names if n not in decoder], "decoder": decoder}


def _old_groups(field, lr: float, weight_decay: float) -> list[tuple[list[str], float, float]]:
    """(names, lr, weight decay) per optimiser group before roles (TensoRF's factor and network scales 2 and
    0.1, CAM's grid scale 10)."""
    split = _old_split(field)
    if field.name.startswith("tensorf"):
        return [(split["features"], lr * 2.0, 0.0), (split["decoder"], lr * 0.1, weight_decay)]
    if field.name == "cam":
        return [(split["features"], lr * 10.0, 0.0), (split["decoder"], lr, weight_decay)]
    named = list(field.named_parameters())
    decay = [n for n, p in named if p.ndim == 2 and "mlp" in n]
    groups = [([n for n, _ in named if n not in decay], lr, 0.0)]
    return groups + ([(decay, lr, weight_decay)] if decay else [])


@pytest.mark.parametrize("name, preset", CASES)
def test_roles_give_the_groups_split_and_colour_decoder_of_the_substring_rules(name, preset):
    field = build_field(name, AABB, preset)
    names = {id(p): n for n, p in field.named_parameters()}
    for module in field.parameter_roles:  # every declared module (or parameter) holds parameters
        assert any(within(n, module) for n in names.values()), module
    for n, _ in field.named_parameters():
        holders = [m for m in field.parameter_roles if within(n, m)]
        assert len(holders) == 1 and field.parameter_roles[holders[0]] in ROLES, (n, holders)
    assert field.parameter_split() == _old_split(field)
    for lr, weight_decay in ((1e-2, 1e-6), (3e-3, 0.0)):
        saved = legacy_optimizer({"field": name, "lr": lr, "weight_decay": weight_decay})["optimizer"]
        groups = [([names[id(p)] for p in g["params"]], g["lr"], g["weight_decay"])
                  for g in field.param_groups(OptimizerSpec.from_dict(saved))]
        assert groups == pytest.approx(_old_groups(field, lr, weight_decay))
    assert field.color_decoder_names() == [n for n, _ in field.named_parameters() if n.startswith("color_mlp.")]


def test_a_parameter_outside_the_declared_modules_has_no_role():
    field = build_field("hashgrid", AABB)
    field.extra = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="'extra.weight'.*exactly one"):
        field.parameter_split()


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_config_shares_the_base_and_defaults_to_one_of_its_presets(name):
    config = FIELDS[name].Config
    assert issubclass(config, FieldConfig) and "default_preset" not in vars(config)
    for device_type in ("cpu", "cuda"):
        assert default_preset(name, device_type) in config.presets()
    assert default_preset(name, "cpu") != default_preset(name, "cuda")
    assert "cpu_preset" not in build_field(name, AABB).config_dict()
