"""LPIPS: the metric's input scaling, scores of identical and perturbed images, its place in metrics.json and in
`fields eval`, and the one-line notices when the lpips package or the AlexNet weights are missing."""

import hashlib
import importlib.util
import json
import sys
import types
import urllib.error

import pytest
import torch

from nfields.cli import main
from nfields.datasets import make_procedural_scene
from nfields.engine import evaluation, lpips_network
from nfields.engine.config import TrainConfig
from nfields.engine.lpips_network import backbone_file, fetch, install_line, load_lpips
from nfields.engine.metrics import lpips
from nfields.engine.runs import load_run
from nfields.engine.trainer import train

ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"


def _torchvision_problem() -> str | None:
    """Why torchvision does not import here (None when it does)."""
    if importlib.util.find_spec("torchvision") is None:
        return "not installed"
    try:
        importlib.import_module("torchvision")
    except (ImportError, RuntimeError) as err:
        return str(err).splitlines()[0]
    return None


TORCHVISION_PROBLEM = _torchvision_problem()
HAS_LPIPS = importlib.util.find_spec("lpips") is not None
needs_real_torchvision = pytest.mark.skipif(
    not HAS_LPIPS or TORCHVISION_PROBLEM is not None,
    reason=f"needs lpips and an importable torchvision (torchvision here: {TORCHVISION_PROBLEM})")


def alexnet_features() -> torch.nn.Sequential:
    """torchvision's AlexNet `features`, random weights."""
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(True), nn.MaxPool2d(3, 2),
                         nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(True), nn.MaxPool2d(3, 2),
                         nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(True), nn.Conv2d(384, 256, 3, padding=1),
                         nn.ReLU(True), nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(3, 2))


def stand_in_alexnet(pretrained: bool = False):
    if pretrained:
        raise NotImplementedError("the stand-in torchvision has no weights")
    return types.SimpleNamespace(features=alexnet_features())


@pytest.fixture
def lpips_package(monkeypatch):
    """The lpips package. Where torchvision is absent or does not import (PyPI's wheel, a CUDA build, beside a CPU
    torch), on a stand-in torchvision holding the names lpips and our loader use: AlexNet's architecture and weights
    URL."""
    if not HAS_LPIPS:
        pytest.skip("the lpips package is not installed (pip install --no-deps lpips==0.1.4; docs/metrics.md)")
    if TORCHVISION_PROBLEM is None:
        yield importlib.import_module("lpips")
        return
    for name in [n for n in sys.modules if n.split(".")[0] in ("lpips", "torchvision")]:
        monkeypatch.delitem(sys.modules, name)
    models = types.SimpleNamespace(alexnet=stand_in_alexnet, AlexNet_Weights=types.SimpleNamespace(
        IMAGENET1K_V1=types.SimpleNamespace(url=ALEXNET_URL)))
    monkeypatch.setitem(sys.modules, "torchvision", types.SimpleNamespace(models=models))
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    yield importlib.import_module("lpips")
    for name in [n for n in sys.modules if n.split(".")[0] == "lpips"]:
        del sys.modules[name]  # imported on the stand-in: not for other tests


@pytest.fixture(autouse=True)
def fresh_loader():
    load_lpips.cache_clear()
    yield
    load_lpips.cache_clear()


def random_trunk_lpips(package):
    """LPIPS with the package's linear layers on a random AlexNet: the real wiring without downloading weights."""
    return package.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()


def photo() -> torch.Tensor:
    return make_procedural_scene(1, 64).image(0, torch.ones(3))  # (64, 64, 3) in [0, 1]


class Recorder(torch.nn.Module):
    """Stands in for lpips.LPIPS: records its inputs, returns 0.25."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.inputs = []

    def forward(self, a, b):
        self.inputs.append((a, b))
        return torch.full((1, 1, 1, 1), 0.25)


def test_images_go_to_the_network_as_nchw_in_minus_one_to_one():
    black, white = torch.zeros(40, 50, 3), torch.ones(40, 50, 3)
    white[0, 0] = torch.tensor([1.0, 0.5, 0.0])
    network = Recorder()
    assert lpips(black, white, network) == 0.25
    a, b = network.inputs[0]
    assert a.shape == b.shape == (1, 3, 40, 50)
    assert (a == -1).all() and b[0, :, 0, 0].tolist() == [1.0, 0.0, -1.0] and (b[0, :, 1:] == 1).all()


def test_identical_images_score_zero_and_perturbed_ones_more(lpips_package):
    """With the real weights when cached, else a random trunk (our wiring, not LPIPS's calibration)."""
    cached = TORCHVISION_PROBLEM is None and backbone_file(ALEXNET_URL).is_file()
    network = load_lpips() if cached else random_trunk_lpips(lpips_package)
    image = photo()
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(image.shape, generator=g)
    scores = [lpips((image + s * noise).clamp(0, 1), image, network) for s in (0.0, 0.05, 0.2)]
    assert scores[0] == pytest.approx(0.0, abs=1e-6)
    assert 0.0 < scores[1] < scores[2]
    # The package's own [0, 1] input mode gives the same number: the scaling to [-1, 1] is the package's.
    a, b = ((image + 0.2 * noise).clamp(0, 1), image)
    with torch.no_grad():
        own = network(*(x.permute(2, 0, 1)[None] for x in (a, b)), normalize=True).item()
    assert own == pytest.approx(scores[2], rel=1e-5)


def test_missing_package_gives_one_line_with_the_pip_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "lpips", None)  # `import lpips` fails as if it were not installed
    assert load_lpips() is None and load_lpips() is None  # said once per process
    assert capsys.readouterr().err == ("fields: LPIPS not scored (PSNR and SSIM only): the lpips package is not "
                                       f"installed; to score it: {install_line()}\n")


def test_under_torchrun_only_rank_zero_says_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "lpips", None)
    monkeypatch.setenv("RANK", "1")
    assert load_lpips() is None
    assert capsys.readouterr().err == ""
    load_lpips.cache_clear()
    monkeypatch.setenv("RANK", "0")
    assert load_lpips() is None
    assert "LPIPS not scored" in capsys.readouterr().err


@pytest.mark.parametrize("version, line", [
    ("2.13.0+cpu", 'pip install lpips==0.1.4 torchvision "torch==2.13.0+cpu" '
                   "--extra-index-url https://download.pytorch.org/whl/cpu"),
    ("2.13.0+cu128", 'pip install lpips==0.1.4 torchvision "torch==2.13.0+cu128" '
                     "--extra-index-url https://download.pytorch.org/whl/cu128"),
    ("2.13.0", 'pip install lpips==0.1.4 torchvision "torch==2.13.0"'),
])
def test_install_line_keeps_the_installed_torch_build(monkeypatch, version, line):
    monkeypatch.setattr(torch, "__version__", version)
    assert install_line() == line


def test_torchvision_of_another_build_gives_one_line(monkeypatch, capsys):
    """PyPI's torchvision (a CUDA build) beside a CPU torch fails on import with a RuntimeError."""

    class Broken(types.ModuleType):
        def __getattr__(self, name):
            raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setitem(sys.modules, "lpips", types.ModuleType("lpips"))
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.models", Broken("torchvision.models"))
    assert load_lpips() is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torchvision does not import (operator torchvision::nms does not exist): it is " \
        f"not the build for torch {torch.__version__}; to score it: pip uninstall -y torchvision && {install_line()}" \
        in err


def test_offline_without_cached_weights_gives_one_line(lpips_package, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(lpips_network.urllib.request, "urlopen", offline)
    assert load_lpips() is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (f"cannot fetch the AlexNet weights from {ALEXNET_URL} (no network); with network access they are "
            f"fetched once and cached in {tmp_path / 'torch' / 'hub' / 'checkpoints'}") in err


@needs_real_torchvision
def test_weights_cache_is_where_torchvision_looks(monkeypatch, tmp_path):
    from torchvision.models import AlexNet_Weights, alexnet

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    asked = []

    def record(url, dst, *args, **kwargs):
        asked.append((url, dst))
        raise urllib.error.URLError("recorded")

    monkeypatch.setattr(torch.hub, "download_url_to_file", record)
    with pytest.raises(urllib.error.URLError):
        alexnet(weights=AlexNet_Weights.IMAGENET1K_V1)
    assert asked == [(ALEXNET_URL, str(backbone_file(ALEXNET_URL)))]
    assert backbone_file(ALEXNET_URL) == tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"


@needs_real_torchvision
def test_damaged_cached_weights_give_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    backbone_file(ALEXNET_URL).parent.mkdir(parents=True)
    backbone_file(ALEXNET_URL).write_bytes(b"not a checkpoint")
    assert load_lpips() is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot read the AlexNet weights {backbone_file(ALEXNET_URL)}" in err


def test_fetch_checks_the_hash_in_the_name_and_leaves_no_partial_file(tmp_path, capsys):
    source = tmp_path / "source.bin"
    source.write_bytes(b"weights" * 1000)
    prefix = hashlib.sha256(source.read_bytes()).hexdigest()[:8]
    good = tmp_path / "cache" / f"net-{prefix}.pth"
    fetch(source.as_uri(), good)
    assert good.read_bytes() == source.read_bytes()
    assert f"from {source.as_uri()} into {good.parent}, once: they stay cached there" in capsys.readouterr().err
    bad = tmp_path / "cache" / "net-00000000.pth"
    with pytest.raises(OSError, match="SHA-256 does not start with 00000000"):
        fetch(source.as_uri(), bad)
    assert sorted(p.name for p in good.parent.iterdir()) == [good.name]


def test_metrics_json_and_eval_report_lpips(lpips_package, procedural_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(evaluation, "load_lpips", lambda device: random_trunk_lpips(lpips_package).to(device))
    run = tmp_path / "run"
    train(TrainConfig(scene=str(procedural_dir), field="hashgrid", steps=5, output=str(run), grid_resolution=32,
                      eval_every=1e9, eval_pixels=256, final_eval_views=2), progress=False)
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["lpips"] < 2 and len(metrics["per_view"]) == 2
    assert metrics["lpips"] == pytest.approx(sum(v["lpips"] for v in metrics["per_view"]) / 2)
    capsys.readouterr()
    assert main(["eval", str(run), "--views", "1"]) == 0
    assert "LPIPS 0." in capsys.readouterr().out
    assert "lpips" in json.loads((run / "eval_val.json").read_text())


def test_eval_without_the_package_scores_psnr_and_ssim(short_run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "lpips", None)
    capsys.readouterr()
    assert main(["eval", str(short_run), "--views", "1"]) == 0
    out, err = capsys.readouterr()
    assert "PSNR" in out and "LPIPS" not in out and err.count("LPIPS not scored") == 1
    metrics = json.loads((short_run / "eval_val.json").read_text())
    assert "lpips" not in metrics and {"psnr", "ssim"} <= set(metrics)


def test_images_too_small_for_alexnet_are_not_scored(short_run, monkeypatch, capsys):
    run = load_run(short_run, "cpu")
    monkeypatch.setattr(evaluation, "load_lpips", lambda device: Recorder())
    scored = evaluation.evaluate(run.field, run.renderer, make_procedural_scene(2, 32))
    assert scored["lpips"] == 0.25 and [v["lpips"] for v in scored["per_view"]] == [0.25, 0.25]
    capsys.readouterr()
    small = evaluation.evaluate(run.field, run.renderer, make_procedural_scene(2, 24))
    assert "lpips" not in small and "lpips" not in small["per_view"][1]
    assert capsys.readouterr().err == ("fields: LPIPS not scored: the scored images are 24x24 pixels, AlexNet needs 31 "
                                       "a side\n")
