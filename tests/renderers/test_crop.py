"""The renderer's crop box: space outside it renders as empty, on the native kernels and their PyTorch twins."""

import pytest
import torch
from support import SDFField

from nfields.cuda.dispatch import kernels_for
from nfields.datasets import make_procedural_scene
from nfields.renderers import VolumeRenderer

CROP = torch.tensor([-0.5, -0.5, -0.4, 0.5, 0.5, 0.6])  # the central sphere, without the floor slab
WHITE = torch.ones(3)


class ZeroOutside(SDFField):
    """The SDF field with zero density outside a box: what a crop box must render like."""

    def __init__(self, box: torch.Tensor):
        super().__init__()
        self.box = box

    def density(self, positions):
        sigma, feature = super().density(positions)
        inside = ((positions >= self.box[:3]) & (positions <= self.box[3:])).all(-1)
        return torch.where(inside, sigma, torch.zeros_like(sigma)), feature


# The cascaded PyTorch twin takes minutes here; the crop is the same Python code on either set of kernels.
@pytest.mark.parametrize("kernels, cascades", [("native", 1), ("native", 2), ("torch", 1)],
                         ids=["native-bounded", "native-cascaded", "torch-bounded"])
def test_crop_box_empties_space_outside_and_keeps_pixels_inside(kernels, cascades, monkeypatch):
    if kernels == "torch":
        monkeypatch.setenv("FIELDS_KERNELS", "torch")
    elif kernels_for("cpu") is None:
        pytest.skip("no native CPU kernels here")
    field = SDFField()
    renderer = VolumeRenderer(torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5]), near=0.5, grid_resolution=32,
                              cascades=cascades, cone_angle=1 / 256 if cascades > 1 else 0.0)
    renderer.update_occupancy(field, 0)
    camera = make_procedural_scene(3, 40).cameras
    rays = [camera.image_rays(i) for i in range(3)]
    origins, directions = torch.cat([r.origins for r in rays]), torch.cat([r.directions for r in rays])

    full = renderer.render_chunked(field, origins, directions, WHITE)
    cropped = renderer.render_chunked(field, origins, directions, WHITE, crop=CROP)
    zeroed = renderer.render_chunked(ZeroOutside(CROP), origins, directions, WHITE)

    # The same picture as a field with zero density outside the box, in fewer field samples.
    assert torch.allclose(cropped.rgb, zeroed.rgb, atol=1e-5) and torch.allclose(cropped.opacity, zeroed.opacity,
                                                                                  atol=1e-5)
    assert cropped.n_samples < full.n_samples
    # Rays that only cross space outside the box: nothing at all, where the full render shows the scene.
    t0, t1 = (CROP[:3] - origins) / directions, (CROP[3:] - origins) / directions
    near, far = torch.minimum(t0, t1).amax(-1).clamp(min=0), torch.maximum(t0, t1).amin(-1)
    outside = far <= near
    assert (full.opacity[outside] > 0.5).sum() > 20  # the test can fail: these rays hit the scene uncropped
    assert (cropped.opacity[outside] == 0).all() and (cropped.rgb[outside] == 1).all()
    # Rays that meet nothing before entering the box and turn opaque inside it (in the zeroed field): unchanged.
    before = origins[:, None] + (near[:, None, None] * torch.linspace(0, 1, 400)[:, None]) * directions[:, None]
    clear = field.density(before.view(-1, 3))[0].view(len(origins), -1).amax(-1) < 1e-3
    inside = clear & (zeroed.opacity > 0.999)
    assert inside.sum() > 20
    assert (cropped.rgb[inside] - full.rgb[inside]).abs().max() < 2e-3
