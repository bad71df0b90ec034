import pytest
import torch

from nfields.fields import FIELDS, UnknownFieldError, build_field, preset_names

AABB = torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5])


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_backbone_and_preset_honours_the_interface(name):
    for preset in preset_names(name):
        field = build_field(name, AABB, preset)
        x = torch.rand(64, 3) * 3 - 1.5
        d = torch.nn.functional.normalize(torch.randn(64, 3), dim=-1)
        sigma, features = field.density(x)
        rgb = field.color(features, d)
        assert sigma.shape == (64,) and (sigma >= 0).all()
        assert features.ndim == 2 and features.shape[0] == 64
        assert rgb.shape == (64, 3) and (rgb >= 0).all() and (rgb <= 1).all()
        (sigma.sum() + rgb.sum()).backward()
        trained = [n for n, p in field.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
        untrained = set(dict(field.named_parameters())) - set(trained)
        assert not untrained, f"{name}/{preset}: no gradient reaches {untrained}"


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_config_dict_rebuilds_the_same_field(name):
    field = build_field(name, AABB)
    clone = build_field(name, AABB, config=field.config_dict())
    clone.load_state_dict(field.state_dict())
    x = torch.rand(10, 3)
    assert torch.equal(field.density(x)[0], clone.density(x)[0])


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(UnknownFieldError, match="hashgrid"):
        build_field("nope", AABB)
