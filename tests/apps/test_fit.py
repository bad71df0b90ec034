"""`fields fit-image` and `fields fit-sdf`: short fits beat stated thresholds; bad input fails clearly."""

import imageio.v3 as iio
import numpy as np
import pytest
import trimesh

from nfields.apps.fitting.fit_image import fit_image, load_image
from nfields.apps.fitting.fit_sdf import fit_sdf
from nfields.apps.fitting.meshes import NotWatertightWarning, load_mesh
from nfields.cli import main
from nfields.errors import FieldsError


def procedural_image(size: int = 48) -> np.ndarray:
    """(size, size, 3) uint8: colour gradients, a disc and a bar with sharp edges."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    image = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x * y)], axis=-1)
    disc = (x - 0.35) ** 2 + (y - 0.4) ** 2 < 0.2**2
    image[disc] = [0.9, 0.2, 0.1]
    image[(np.abs(x - 0.7) < 0.08) & (y > 0.3)] = [0.1, 0.1, 0.8]
    return (image * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("image") / "pattern.png"
    iio.imwrite(path, procedural_image())
    return path


@pytest.fixture(scope="module")
def sphere_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("mesh") / "sphere.obj"
    trimesh.creation.icosphere(subdivisions=3).export(path)
    return path


# Measured at 100 steps (a constant image scores about 11 dB): rbf 29.3, triplane 39.1, cam 26.6 dB.
@pytest.mark.parametrize("field,threshold", [("rbf", 26.0), ("triplane", 32.0), ("cam", 22.0)])
def test_fit_image_reaches_psnr(image_path, field, threshold):
    result = fit_image(load_image(image_path), field, steps=100, batch=1024, progress=False)
    assert result.reconstruction.shape == (48, 48, 3)
    assert result.psnr > threshold, result.psnr


def test_fit_sdf_of_a_sphere(sphere_path):
    # Measured: IoU 0.931, Chamfer 0.0094, median radius 1.005.
    result = fit_sdf(sphere_path, "rbf", steps=100, batch=2048, n_points=1 << 14, resolution=48, progress=False)
    assert result.watertight
    assert result.iou > 0.9, result.iou
    assert result.chamfer < 0.03, result.chamfer  # the sphere's radius is 0.55 in the normalised frame
    radius = np.linalg.norm(result.mesh.vertices, axis=1)  # back in the input frame: unit sphere
    assert abs(np.median(radius) - 1.0) < 0.05


def test_cli_fit_image_and_sdf_write_outputs(image_path, sphere_path, tmp_path, capsys):
    assert main(["fit-image", str(image_path), "--field", "rbf", "--steps", "30", "--batch", "2048",
                 "--output", str(tmp_path / "fit.png")]) == 0
    assert iio.imread(tmp_path / "fit.png").shape == (48, 48, 3)
    assert main(["fit-sdf", str(sphere_path), "--field", "rbf", "--steps", "30", "--batch", "2048",
                 "--points", "8192", "--resolution", "48", "--output", str(tmp_path / "sphere.obj")]) == 0
    assert len(trimesh.load(tmp_path / "sphere.obj", force="mesh").faces) > 0
    out = capsys.readouterr().out
    assert "PSNR" in out and "IoU" in out


def test_open_mesh_warns_and_still_gets_signs(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=3)
    sphere.update_faces(np.arange(len(sphere.faces)) != 0)  # punch a hole
    path = tmp_path / "open.obj"
    sphere.export(path)
    with pytest.warns(NotWatertightWarning, match="not watertight"):
        mesh = load_mesh(path)
    assert not mesh.watertight
    from nfields.apps.fitting.meshes import DistanceQuery
    inside = DistanceQuery(mesh).inside(np.array([[0.0, 0.0, 0.0], [0.9, 0.9, 0.9]], dtype=np.float32))
    assert inside.tolist() == [True, False]


def test_bad_inputs_name_the_file(tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(FieldsError, match="notes.png"):
        load_image(text)
    empty = tmp_path / "empty.obj"
    empty.write_text("# no geometry\n")
    with pytest.raises(FieldsError, match="empty.obj"):
        load_mesh(empty)
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(b"ply\nformat nonsense\n\x00\x01")
    with pytest.raises(FieldsError, match="garbage.ply"):
        load_mesh(garbage)
    assert main(["fit-sdf", str(tmp_path / "missing.obj")]) == 2
    assert main(["fit-image", str(text), "--field", "nope"]) == 2
    err = capsys.readouterr().err
    assert "missing.obj" in err and "notes.png" in err and "Traceback" not in err


def test_fit_image_output_without_an_image_suffix_is_refused_before_fitting(image_path, tmp_path, capsys):
    assert main(["fit-image", str(image_path), "--steps", "100000", "--output", str(tmp_path / "recon")]) == 2
    err = capsys.readouterr().err
    assert "recon" in err and "image file name" in err and "Traceback" not in err
    assert not (tmp_path / "recon").exists()


def test_unknown_backbone_for_fitting_lists_valid_ones(image_path):
    with pytest.raises(FieldsError, match="valid names: .*rbf"):
        fit_image(load_image(image_path), "nope", steps=1)
