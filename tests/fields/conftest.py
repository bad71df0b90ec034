import pytest

from nfields.cuda import build
from nfields.cuda.dispatch import kernels_for


@pytest.fixture(params=["avx512", "avx2", "generic"])
def isa(request, monkeypatch):
    """Each fused-MLP instruction-set path this CPU runs, chosen through $FIELDS_CPU_ISA; the others skip."""
    kernels = kernels_for("cpu")
    if kernels is None:
        pytest.fail(f"cpu kernels did not build: {build.cpu_kernels().reason}")
    if request.param not in kernels.mlp_isas():
        pytest.skip(f"this CPU does not run the {request.param} path")
    monkeypatch.setenv("FIELDS_CPU_ISA", request.param)
    return request.param
