"""The fused CPU MLP kernel against nn.Sequential (its PyTorch twin): values and gradients of the input and
every weight and bias, on each instruction-set path this CPU runs, for the shapes the backbones build, bias-free
and with biases; and the cases where the module must fall back to the twin."""

import pytest
import torch
from support import assert_same_outputs, density_and_gradients
from torch import nn

from nfields.cuda import build
from nfields.cuda.dispatch import kernels_for
from nfields.fields.base import mlp
from nfields.fields.relu_mlp import ReluMLP, cpu_isa, fused_relu_layers

# (n_in, width, n_hidden, n_out): the hash grid's density and colour MLPs, then other mlp() calls' forms (TensoRF's
# colour MLP, with biases: 150 -> 64 -> 64 -> 3)
SHAPES = [(32, 64, 1, 16), (32, 64, 2, 3), (32, 64, 0, 1), (27, 128, 3, 3), (39, 64, 2, 16), (5, 128, 1, 1),
          (150, 64, 2, 3)]


def _kernels():
    kernels = kernels_for("cpu")
    if kernels is None:
        pytest.fail(f"cpu kernels did not build: {build.cpu_kernels().reason}")
    return kernels


def _fused(y) -> bool:
    """Whether y (a tensor, or a tensor's grad_fn) came out of the fused kernel."""
    return type(getattr(y, "grad_fn", y)).__name__ == "FusedMLPBackward"


def _grads(module: nn.Module, x: torch.Tensor, grad_y: torch.Tensor, forward) -> tuple[torch.Tensor, ...]:
    x = x.clone().requires_grad_()
    y = forward(x)
    return (y, *torch.autograd.grad(y, [x, *module.parameters()], grad_y))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("n", [197, 64])  # a partial row block, one whole block
@pytest.mark.parametrize("bias", [False, True])
def test_fused_mlp_matches_the_twin(isa, shape, n, bias):
    torch.manual_seed(0)
    module = mlp(*shape, bias=bias)
    if bias:  # biases far from nn.Linear's small initial ones, so that a bias left out or misplaced shows
        with torch.no_grad():
            for m in module[::2]:
                m.bias.normal_(0, 0.5)
    x, grad_y = torch.randn(n, shape[0]), torch.randn(n, shape[3])
    fused = _grads(module, x, grad_y, module)
    twin = _grads(module, x, grad_y, lambda x: nn.Sequential.forward(module, x))
    assert _fused(fused[0]) and not _fused(twin[0])
    names = [name for name, _ in module.named_parameters()]
    assert len(fused) == 2 + (shape[2] + 1) * (2 if bias else 1)
    for name, a, b in zip(["y", "grad x"] + [f"grad {n}" for n in names], fused, twin):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")


def test_fused_mlp_of_zero_rows(isa):
    module = mlp(32, 64, 2, 3)
    x = torch.zeros(0, 32, requires_grad=True)
    y = module(x)
    assert _fused(y) and y.shape == (0, 3)
    y.sum().backward()
    assert x.grad.shape == (0, 32)
    assert all(torch.equal(m.weight.grad, torch.zeros_like(m.weight)) for m in module[::2])


def test_fused_mlp_without_gradients_keeps_no_activations(isa):
    torch.manual_seed(1)
    module = mlp(32, 64, 2, 16)
    x = torch.randn(300, 32)
    with torch.no_grad():
        y = module(x)
    assert y.grad_fn is None
    torch.testing.assert_close(y, nn.Sequential.forward(module, x), rtol=1e-5, atol=1e-5)
    weights = [m.weight.detach() for m in module[::2]]
    no_modulation = torch.empty(0), torch.empty(0)
    assert len(_kernels().mlp_forward(x, weights, [], False, isa, [], *no_modulation)) == 1  # the output only
    # and the two hidden activations
    assert len(_kernels().mlp_forward(x, weights, [], True, isa, [], *no_modulation)) == 3


def test_fused_mlp_gradients_to_the_weights_only_and_batch_dimensions(isa):
    torch.manual_seed(2)
    module = mlp(32, 64, 1, 16)
    x, grad_y = torch.randn(3, 50, 32), torch.randn(3, 50, 16)
    y = module(x)
    assert _fused(y.grad_fn.next_functions[0][0]) and y.shape == (3, 50, 16)
    y.backward(grad_y)
    twin = _grads(module, x.reshape(-1, 32), grad_y.reshape(-1, 16), lambda x: nn.Sequential.forward(module, x))
    for m, expected in zip(module[::2], twin[2:]):
        torch.testing.assert_close(m.weight.grad, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bias", [False, True])
def test_leading_outputs_are_the_first_outputs_of_the_whole_module(isa, bias):
    torch.manual_seed(4)
    module = mlp(32, 64, 1, 16, bias=bias)
    x = torch.randn(197, 32)
    with torch.no_grad():
        first = module.leading_outputs(x, 1)
        torch.testing.assert_close(first, module(x)[:, :1], rtol=1e-5, atol=1e-5)
    assert first.shape == (197, 1)
    assert _fused(module.leading_outputs(x.requires_grad_(), 3))


@pytest.mark.parametrize("constant_columns, skipped", [(16, 16), (20, 16), (9, 0)])  # whole blocks of 16 only
@pytest.mark.parametrize("bias", [False, True])
def test_constant_input_columns_get_no_gradient_and_the_rest_is_unchanged(isa, constant_columns, skipped, bias):
    """A colour MLP's SH columns (constant_columns): the kernel leaves their input gradient at zero in whole blocks
    of 16 columns; the output, the other columns' gradient and every weight's gradient are the twin's."""
    torch.manual_seed(5)
    module = mlp(32, 64, 2, 3, bias=bias)
    x, grad_y = torch.randn(197, 32), torch.randn(197, 3)
    fused = _grads(module, x, grad_y, lambda x: module(x, constant_columns))
    twin = _grads(module, x, grad_y, lambda x: nn.Sequential.forward(module, x))
    assert _fused(fused[0])
    torch.testing.assert_close(fused[0], twin[0], rtol=1e-5, atol=1e-5)
    assert torch.equal(fused[1][:, :skipped], torch.zeros(197, skipped))
    torch.testing.assert_close(fused[1][:, skipped:], twin[1][:, skipped:], rtol=1e-5, atol=1e-5)
    for a, b in zip(fused[2:], twin[2:]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_colour_gradients_reach_the_features_through_the_sh_input_as_without_skipping(isa):
    """The hash grid's colour network skips its 16 SH columns' input gradient: its colours and the features' and
    weights' gradients are those of the twin on the whole input (SH basis, then features)."""
    from nfields.fields.encodings import spherical_harmonics, view_constant_columns
    from nfields.fields.hashgrid import HashGridConfig, HashGridField

    torch.manual_seed(6)
    field = HashGridField(torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5]), HashGridConfig())
    features = torch.randn(197, field.config.geometry_features, requires_grad=True)
    directions = nn.functional.normalize(torch.randn(197, 3), dim=-1)
    assert view_constant_columns(directions, field.config.sh_degree) == 16
    assert view_constant_columns(directions.clone().requires_grad_(), field.config.sh_degree) == 0
    grad_rgb = torch.randn(197, 3)
    parameters = [features, *field.color_mlp.parameters()]
    rgb = field.color(features, directions)
    assert _fused(rgb.grad_fn.next_functions[0][0])
    skipped = (rgb, *torch.autograd.grad(rgb, parameters, grad_rgb))
    inputs = torch.cat([spherical_harmonics(directions, field.config.sh_degree), features], dim=-1)
    rgb = torch.sigmoid(nn.Sequential.forward(field.color_mlp, inputs))
    for a, b in zip(skipped, (rgb, *torch.autograd.grad(rgb, parameters, grad_rgb))):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_unsupported_layouts_and_inputs_run_the_twin(monkeypatch):
    _kernels()
    x = torch.randn(10, 32, requires_grad=True)
    assert _fused(mlp(32, 64, 1, 3)(x)) and _fused(mlp(32, 64, 1, 3, bias=True)(x))
    partly_biased = mlp(32, 64, 1, 3)
    partly_biased[0] = nn.Linear(32, 64)
    assert not _fused(partly_biased(x))
    assert not _fused(mlp(32, 64, 1, 3).double()(x.double()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not _fused(mlp(32, 64, 1, 3)(x))
    monkeypatch.setenv("FIELDS_KERNELS", "torch")
    assert not _fused(mlp(32, 64, 1, 3)(x))


def test_an_unknown_isa_is_a_clear_error(monkeypatch):
    _kernels()
    monkeypatch.setenv("FIELDS_CPU_ISA", "sse9")
    with pytest.raises(ValueError, match="FIELDS_CPU_ISA='sse9'"):
        mlp(32, 64, 1, 3)(torch.randn(4, 32))


def test_state_dict_keys_are_nn_sequentials():
    torch.manual_seed(3)
    module = mlp(32, 64, 2, 3)
    plain = nn.Sequential(*module)
    assert isinstance(module, ReluMLP) and list(module.state_dict()) == list(plain.state_dict())


def test_auto_runs_pytorch_on_a_cpu_without_avx2(monkeypatch):
    class NoAvx:
        @staticmethod
        def mlp_isas():
            return ["generic"]

    monkeypatch.delenv("FIELDS_CPU_ISA", raising=False)
    assert cpu_isa(NoAvx) is None
    monkeypatch.setenv("FIELDS_CPU_ISA", "generic")
    assert cpu_isa(NoAvx) == "generic"


@pytest.mark.parametrize("heads", ["own", "shared"])
@pytest.mark.parametrize("skip_at", [-1, 2])  # the CPU presets' trunk, and NeRF's skip
def test_mlp_backbone_trunk_runs_fused_and_matches_its_layers(isa, heads, skip_at, monkeypatch):
    """The mlp backbone's trunk (with its own density head) runs as one fused ReLU MLP over its own layers, its
    skip included: the same densities, features and parameter gradients as its layers one by one."""
    from nfields.fields.mlp import MLPConfig, MLPField

    torch.manual_seed(2)
    config = MLPConfig(heads=heads, feature_width=16, width=48, skip_at=skip_at)
    field = MLPField(torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5]), config)
    positions = torch.rand(197, 3) * 3 - 1.5
    layers, skip_layers = field.fused_layers()
    assert skip_layers == ((skip_at,) if skip_at > 0 else ())
    encoded = torch.randn(5, layers[0].in_features)
    assert _fused(fused_relu_layers(layers, encoded, skip_layers=skip_layers).grad_fn)
    fused = density_and_gradients(field, positions)
    monkeypatch.setattr(field, "fused_layers", lambda: None)  # the layers one by one
    assert_same_outputs(fused, density_and_gradients(field, positions), rtol=1e-5, atol=1e-5)
