import torch

from nfields.datasets import make_procedural_scene
from nfields.datasets.procedural import procedural_sdf, trace


def test_traced_hits_lie_on_the_signed_distance_zero_set():
    scene = make_procedural_scene(n_views=2, resolution=32)
    rays = scene.cameras.image_rays(0)
    rgba = trace(rays.origins, rays.directions)
    hit = rgba[:, 3] > 0
    assert 0.1 < hit.float().mean() < 0.9
    # March each hit ray to its surface by sphere tracing the SDF and compare with the tracer's alpha.
    t = torch.zeros(len(rays))
    for _ in range(200):
        t = t + procedural_sdf(rays.origins + t[:, None] * rays.directions).clamp(min=0)
    surface = procedural_sdf(rays.origins + t[:, None] * rays.directions).abs() < 1e-3
    assert torch.equal(surface, hit)


def test_images_are_rgba_with_transparent_background():
    scene = make_procedural_scene(n_views=3, resolution=16)
    assert scene.images.shape == (3, 16, 16, 4) and scene.images.dtype == torch.uint8
    assert set(scene.images[..., 3].unique().tolist()) <= {0, 255}
