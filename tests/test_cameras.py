import math

import torch

from nfields.datasets import Cameras
from nfields.datasets.cameras import look_at


def test_rays_match_hand_computed_pinhole():
    # Camera at (0, 0, 4) looking down -z (identity rotation), 4x2 image, fx = fy = 2, centre (2, 1).
    c2w = torch.eye(4)
    c2w[2, 3] = 4.0
    cams = Cameras(c2w[None], torch.tensor([[2.0, 2.0]]), torch.tensor([[2.0, 1.0]]), width=4, height=2)
    rays = cams.image_rays(0)
    assert torch.allclose(rays.origins, torch.tensor([0.0, 0.0, 4.0]).expand(8, 3))
    # Pixel (0, 0) centre is (0.5, 0.5): direction ((0.5-2)/2, -(0.5-1)/2, -1) normalised.
    expected = torch.tensor([-0.75, 0.25, -1.0])
    assert torch.allclose(rays.directions[0], expected / expected.norm(), atol=1e-6)
    # Pixel (3, 1) centre (3.5, 1.5): (0.75, -0.25, -1).
    expected = torch.tensor([0.75, -0.25, -1.0])
    assert torch.allclose(rays.directions[7], expected / expected.norm(), atol=1e-6)


def test_rotated_camera_and_fov():
    eye = torch.tensor([4.0, 0.0, 0.0])
    c2w = look_at(eye, torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]))
    cams = Cameras.from_fov_x(c2w[None], fov_x=math.pi / 2, width=100, height=100)
    assert math.isclose(cams.focal[0, 0].item(), 50.0, rel_tol=1e-6)
    centre = cams.rays(torch.tensor([0]), torch.tensor([50.0]), torch.tensor([50.0]))
    assert torch.allclose(centre.directions[0], torch.tensor([-1.0, 0.0, 0.0]), atol=1e-6)
    # The left image edge is 45 degrees off axis with a 90 degree field of view.
    edge = cams.rays(torch.tensor([0]), torch.tensor([0.0]), torch.tensor([50.0]))
    angle = torch.rad2deg(torch.acos((edge.directions[0] * centre.directions[0]).sum()))
    assert abs(angle.item() - 45.0) < 1e-3
    # Image up (smaller y) is world +z for this camera.
    top = cams.rays(torch.tensor([0]), torch.tensor([50.0]), torch.tensor([0.0]))
    assert top.directions[0, 2] > 0.5
