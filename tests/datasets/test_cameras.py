import math

import torch

from nfields.datasets import Cameras, NDCFrame
from nfields.datasets.cameras import look_at
from nfields.outputs.video import orbit_cameras


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


def test_a_world_ray_maps_to_one_ndc_ray_whatever_camera_shoots_it():
    """The NDC frame is the training cameras'; a novel view with another focal length (the viewer's field
    of view, a resized video) must land its rays where the training camera's same world ray lands."""
    frame = NDCFrame.of_camera(18.0, 18.0, 20, 12, near=1.0)
    pose = torch.eye(4)[None]
    pose[0, :3, 3] = torch.tensor([0.2, -0.1, 0.3])
    training = Cameras(pose, torch.tensor([[18.0, 18.0]]), torch.tensor([[10.0, 6.0]]), 20, 12, ndc=frame)
    wide = Cameras(pose, torch.tensor([[7.0, 7.0]]), torch.tensor([[16.0, 9.0]]), 32, 18, ndc=frame)
    x, y = torch.tensor([3.5, 15.0]), torch.tensor([2.5, 10.0])
    # The same world directions in the wide camera's pixels: (x - cx) / fx must agree.
    xw, yw = (x - 10.0) / 18.0 * 7.0 + 16.0, (y - 6.0) / 18.0 * 7.0 + 9.0
    a = training.rays(torch.zeros(2, dtype=torch.long), x, y)
    b = wide.rays(torch.zeros(2, dtype=torch.long), xw, yw)
    assert torch.allclose(a.origins, b.origins, atol=1e-5) and torch.allclose(a.directions, b.directions, atol=1e-5)
    assert torch.allclose(a.origins[:, 2], torch.full((2,), -1.0))  # on the NDC near plane


def test_forward_facing_videos_spiral_in_front_of_the_cameras_in_their_ndc_frame():
    poses = torch.eye(4).repeat(9, 1, 1)
    poses[:, 0, 3] = torch.linspace(-0.5, 0.5, 9)
    poses[:, 1, 3] = torch.linspace(-0.2, 0.2, 9).flip(0)
    frame = NDCFrame.of_camera(18.0, 18.0, 20, 12, near=1.0)
    reference = Cameras(poses, torch.full((9, 2), 18.0), torch.tensor([[10.0, 6.0]]).repeat(9, 1), 20, 12, ndc=frame)
    spiral = orbit_cameras(reference, 12, resolution=40)
    assert spiral.ndc == frame and (spiral.width, spiral.height) == (40, 24)
    positions = spiral.camera_to_world[:, :3, 3]
    assert positions[:, 0].abs().max() <= 0.5 + 1e-5 and positions[:, 0].abs().max() > 0.3  # 90th percentile radii
    assert (spiral.camera_to_world[:, 2, 2] > 0.99).all()  # still looking down -z, at the focus ahead
