"""CAM's modulated trunk on the fused CPU MLP kernel (skip layers and a per-row scale and shift of every hidden
layer) against its PyTorch twin (`ModulatedMLP.layers`): values and gradients of the input, every weight and bias,
and gamma and beta, on each instruction-set path this CPU runs; the cam backbone's densities and parameter
gradients through it; and the cases that stay on the twin."""

import pytest
import torch
from support import assert_same_outputs, density_and_gradients
from torch import nn

from nfields.cuda.dispatch import kernels_for
from nfields.fields.cam import CAMConfig, CAMField, ModulatedMLP
from nfields.fields.relu_mlp import fused_relu_layers

BOX = torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5])


def _fused(y: torch.Tensor) -> bool:
    return type(y.grad_fn).__name__ == "FusedMLPBackward"


def _trunk(n_in: int, width: int, depth: int, skip_layer: int, n_out: int) -> tuple[ModulatedMLP, nn.Linear]:
    """A modulated trunk and a head, with biases far from zero (a bias left out shows)."""
    trunk = ModulatedMLP(n_in, width, depth, 3, 8, skip_layer=skip_layer)
    head = nn.Linear(trunk.out_dim, n_out)
    with torch.no_grad():
        for module in [*trunk.layers_mlp, head]:
            module.bias.normal_(0, 0.3)
    return trunk, head


# (n_in, width, depth, skip_layer, n_out): cam's cpu preset (63 -> 4 x 128 -> 65, no skip), its reference-small
# preset (skip after layer 2, 129 out), widths that need padding with the skip after the last hidden layer (the
# head's input), and no skip at all
SHAPES = [(63, 128, 4, 0, 65), (63, 128, 4, 2, 129), (27, 40, 3, 2, 17), (20, 48, 3, 0, 5)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("n", [197, 64])  # a partial row block, one whole block
def test_modulated_trunk_matches_the_twin(isa, shape, n):
    torch.manual_seed(0)
    n_in, width, depth, skip_layer, n_out = shape
    trunk, head = _trunk(n_in, width, depth, skip_layer, n_out)
    x = torch.randn(n, n_in, requires_grad=True)
    # gamma around 1 with some rows negative, beta around 0: every sign of the modulated output occurs
    gamma = (1 + 0.8 * torch.randn(n, depth)).requires_grad_()
    beta = (0.5 * torch.randn(n, depth)).requires_grad_()
    inputs = [x, gamma, beta, *trunk.layers_mlp.parameters(), *head.parameters()]
    grad_y = torch.randn(n, n_out)
    fused = fused_relu_layers([*trunk.layers_mlp, head], x, skip_layers=trunk.skip_layers, gamma=gamma, beta=beta)
    twin = head(trunk.layers(x, gamma, beta))
    assert _fused(fused) and not _fused(twin)
    torch.testing.assert_close(fused, twin, rtol=1e-5, atol=1e-5)
    names = ["x", "gamma", "beta"] + [f"layer {i}" for i in range(len(inputs) - 3)]
    for name, a, b in zip(names, torch.autograd.grad(fused, inputs, grad_y), torch.autograd.grad(twin, inputs, grad_y)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=lambda m, name=name: f"{name}: {m}")


def test_modulation_gradients_only_where_the_relu_passes(isa):
    """A hidden layer whose modulated output is negative everywhere (beta far below) passes no gradient to gamma,
    beta or the layers below it; the kernel must not leak one."""
    torch.manual_seed(1)
    trunk, head = _trunk(16, 32, 2, 0, 4)
    x = torch.randn(70, 16)
    gamma = torch.ones(70, 2, requires_grad=True)
    beta = torch.zeros(70, 2)
    beta[:, 1] = -1e3
    beta.requires_grad_()
    y = fused_relu_layers([*trunk.layers_mlp, head], x, gamma=gamma, beta=beta)
    grad_gamma, grad_beta, grad_w0 = torch.autograd.grad(y.sum(), [gamma, beta, trunk.layers_mlp[0].weight])
    assert torch.count_nonzero(grad_gamma) == 0 and torch.count_nonzero(grad_beta) == 0
    assert torch.count_nonzero(grad_w0) == 0
    torch.testing.assert_close(y, head.bias.expand(70, 4))


# the reference's form (skip, ReLU density, world coordinates) and the cpu preset's (no skip, exp density, the box)
FORMS = [{"skip_layer": 2}, {"skip_layer": 0, "position_encoding": "box", "density_activation": "trunc_exp"}]


@pytest.mark.parametrize("form", FORMS)
def test_cam_density_runs_fused_and_matches_its_layers(isa, form, monkeypatch):
    """The cam backbone's trunk and density head in one fused pass: the same densities, features and gradients of
    every parameter (the modulation planes included) as the layers one by one."""
    torch.manual_seed(2)
    field = CAMField(BOX, CAMConfig(width=48, depth=4, grid_resolution=16, feature_width=24, color_width=16, **form))
    with torch.no_grad():  # modulation planes away from their start (gamma 1, beta 0), so that they matter
        for plane in field.trunk_mlp.modulation.parameters():
            plane.add_(0.2 * torch.randn_like(plane))
    positions = torch.rand(197, 3) * 3 - 1.5
    fused = density_and_gradients(field, positions)
    monkeypatch.setenv("FIELDS_KERNELS", "torch")  # no native kernels: the layers one by one
    assert_same_outputs(fused, density_and_gradients(field, positions), rtol=1e-4, atol=1e-5)


def test_layer_norm_trunk_stays_on_the_twin():
    """CAM's image network normalises each layer, which the kernel does not: it runs layer by layer."""
    trunk = ModulatedMLP(8, 16, 2, 2, 4, normalization="layer")
    head = nn.Linear(16, 3)
    x, coords = torch.randn(10, 8), torch.rand(10, 2) * 2 - 1
    y = trunk.with_head(head, x, coords)
    assert not _fused(y)
    torch.testing.assert_close(y, head(trunk(x, coords)))


def test_skip_layer_weight_of_the_wrong_width_is_a_clear_error():
    kernels = kernels_for("cpu")
    x = torch.randn(4, 6)
    weights = [torch.randn(8, 6), torch.randn(5, 8)]  # layer 1 takes the input appended: (5, 8 + 6) expected
    with pytest.raises(RuntimeError, match=r"mlp weight 1 must be \(out, 14\)"):
        kernels.mlp_forward(x, weights, [], False, "auto", [1], torch.empty(0), torch.empty(0))
    with pytest.raises(RuntimeError, match="gamma and beta must be"):
        kernels.mlp_forward(x, [torch.randn(8, 6), torch.randn(5, 14)], [], False, "auto", [1], torch.ones(4, 2),
                            torch.zeros(4, 2))


@pytest.mark.parametrize("option", ["position_encoding", "density_activation"])
def test_an_unknown_form_is_a_clear_error(option):
    with pytest.raises(ValueError, match=f"cam config: '{option}' must be one of .*got 'nerf'"):
        CAMField(BOX, CAMConfig(width=16, depth=2, grid_resolution=4, feature_width=8, color_width=8,
                                **{option: "nerf"}))
