"""Mesh export refuses lattices it cannot build, before allocating them, and names --resolution."""

import pytest
from support import sdf_model as make_sdf_model

from nfields.errors import FieldsError
from nfields.outputs import marching_cubes
from nfields.outputs.marching_cubes import extract_mesh


@pytest.fixture(scope="module")
def sdf_model():
    return make_sdf_model(grid_resolution=32)


@pytest.mark.parametrize("resolution", [0, 1, -5])
def test_too_small_resolution_is_blamed_not_the_threshold(sdf_model, resolution):
    with pytest.raises(FieldsError, match=f"--resolution {resolution}: marching cubes needs at least 2"):
        extract_mesh(*sdf_model, resolution=resolution, threshold=100.0)


def test_huge_resolution_is_refused_with_the_memory_it_needs(sdf_model):
    with pytest.raises(FieldsError) as err:
        extract_mesh(*sdf_model, resolution=100_000, threshold=100.0)
    message = str(err.value)
    assert message.startswith("--resolution 100000: a 100000x") and "GB of memory" in message
    assert "\n" not in message
    need = float(message.split("needs about ")[1].split(" GB")[0].replace(",", ""))
    assert need > 1e6  # petabytes: 10 bytes a point on a lattice of ~1e15 points


def test_moderate_resolution_is_checked_against_available_memory(sdf_model, monkeypatch):
    monkeypatch.setattr(marching_cubes, "available_memory", lambda: 10**8)  # 100 MB
    with pytest.raises(FieldsError, match=r"--resolution 300: a 300x\d+x\d+ lattice needs about [\d.]+ GB of "
                                          r"memory, 0.1 GB is available"):
        extract_mesh(*sdf_model, resolution=300, threshold=100.0)
    mesh = extract_mesh(*sdf_model, resolution=40, threshold=100.0)  # 40^3 points x 10 bytes fits
    assert len(mesh.faces) > 1000
