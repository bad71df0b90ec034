"""`fields doctor` and the fallback to PyTorch when native kernels cannot be had."""

import warnings

import pytest

from nfields.cli import main
from nfields.cuda import build, dispatch


def test_doctor_names_a_backend_for_every_operation(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for op in dispatch.OPERATIONS:
        assert any(line.startswith("cpu") and op in line and "cpu kernels" in line for line in out.splitlines())
    assert "torch 2" in out and "C++ compiler:" in out and "tiny-cuda-nn:" in out


def test_forcing_pytorch_turns_native_kernels_off(monkeypatch, capsys):
    monkeypatch.setenv("FIELDS_KERNELS", "torch")
    assert dispatch.kernels_for("cpu") is None
    main(["doctor"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("cpu ")]
    assert len(rows) == len(dispatch.OPERATIONS) and all("pytorch" in r and "FIELDS_KERNELS=torch" in r for r in rows)


@pytest.fixture
def fresh_builds():
    build.cpu_kernels.cache_clear()
    yield
    build.cpu_kernels.cache_clear()


def test_no_compiler_means_pytorch_with_the_reason(monkeypatch, fresh_builds):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    choice = dispatch.choose("cpu")
    assert choice.backend == "pytorch" and "compiler" in choice.reason
    assert dispatch.kernels_for("cpu") is None


def test_a_failing_build_warns_once_in_one_line(monkeypatch, tmp_path):
    (tmp_path / "broken.cpp").write_text('#error "this kernel is broken"\n')
    monkeypatch.setattr(build, "SOURCE_DIR", tmp_path)
    monkeypatch.setenv("FIELDS_KERNEL_CACHE", str(tmp_path / "cache"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = build._load("fields_broken_kernels", ["broken.cpp"], "cpu")
    assert result.module is None and result.reason.startswith("build failed")
    assert len(caught) == 1 and "using the PyTorch path" in str(caught[0].message)
    assert "\n" not in str(caught[0].message)
