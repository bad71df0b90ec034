"""Lens models: OpenCV's equidistant fisheye (OPENCV_FISHEYE) forward and inverse against each other and against
its definition, and fisheye cameras' rays."""

import math

import numpy as np
import pytest
import torch

from nfields.datasets import Cameras
from nfields.datasets.distortion import (
    fisheye_angles,
    fisheye_directions,
    fisheye_distort,
    fisheye_distort_directions,
    fisheye_undistort,
)

K = [0.08, -0.02, 0.004, -0.0003]  # a wide-angle lens: theta_d(theta) increases up to 110 degrees and beyond


def _params(n, k=K):
    return torch.tensor([k + [0.0, 0.0]], dtype=torch.float64).expand(n, 6)


def _directions(n, max_deg, seed=0):
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(n, generator=g, dtype=torch.float64) * math.radians(max_deg)
    phi = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    return torch.stack([theta.sin() * phi.cos(), theta.sin() * phi.sin(), theta.cos()], dim=-1), theta


def test_fisheye_follows_opencv_definition():
    """cv::fisheye: theta = atan(r), theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8),
    distorted point = theta_d / r * (a, b) for the pinhole point (a, b)."""
    a, b = np.array([0.3, -0.7, 1.2, 0.0]), np.array([0.4, 0.1, -0.9, 0.0])
    r = np.hypot(a, b)
    theta = np.arctan(r)
    theta_d = theta * (1 + K[0] * theta**2 + K[1] * theta**4 + K[2] * theta**6 + K[3] * theta**8)
    scale = np.where(r > 0, theta_d / np.where(r > 0, r, 1), 1.0)
    xd, yd = fisheye_distort(torch.from_numpy(a), torch.from_numpy(b), _params(4))
    np.testing.assert_allclose(xd.numpy(), a * scale, atol=1e-15)
    np.testing.assert_allclose(yd.numpy(), b * scale, atol=1e-15)


def test_fisheye_inverse_inverts_forward_beyond_90_degrees():
    d, theta = _directions(2000, 115)
    xd, yd = fisheye_distort_directions(d, _params(2000))
    torch.testing.assert_close(fisheye_angles(xd, yd, _params(2000)), theta, atol=1e-10, rtol=0)
    torch.testing.assert_close(fisheye_directions(xd, yd, _params(2000)), d, atol=1e-10, rtol=0)
    # ... and the forward model inverts the inverse, from distorted points.
    g = torch.Generator().manual_seed(1)
    xd, yd = (torch.rand(2, 2000, generator=g, dtype=torch.float64) - 0.5) * 3.0
    again = fisheye_distort_directions(fisheye_directions(xd, yd, _params(2000)), _params(2000))
    torch.testing.assert_close(torch.stack(again), torch.stack([xd, yd]), atol=1e-10, rtol=0)


def test_fisheye_undistort_gives_pinhole_coordinates():
    g = torch.Generator().manual_seed(2)
    x, y = (torch.rand(2, 500, generator=g, dtype=torch.float64) - 0.5) * 2.0  # up to ~55 degrees off the axis
    xu, yu = fisheye_undistort(*fisheye_distort(x, y, _params(500)), _params(500))
    torch.testing.assert_close(torch.stack([xu, yu]), torch.stack([x, y]), atol=1e-10, rtol=0)


@pytest.mark.parametrize("k", [K, [0.0, 0.0, 0.0, 0.0]], ids=["distorted", "equidistant"])
def test_fisheye_camera_rays(k):
    """Rays of a fisheye camera (OpenGL axes) leave at the angle the model gives their pixel's distance."""
    c2w = torch.eye(4)[None]
    cam = Cameras(c2w, torch.tensor([[50.0, 50.0]]), torch.tensor([[64.0, 48.0]]), 128, 96,
                  distortion=torch.tensor([k + [0.0, 0.0]]), fisheye=True)
    x = torch.tensor([64.0, 100.0, 64.0, 127.0])
    y = torch.tensor([48.0, 48.0, 5.0, 95.0])
    rays = cam.rays(torch.zeros(4, dtype=torch.long), x, y)
    u, v = (x.double() - 64.0) / 50.0, (y.double() - 48.0) / 50.0
    theta_d, theta = torch.hypot(u, v), fisheye_angles(u, v, _params(4, k))
    t2 = theta**2
    expected_d = theta * (1 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3]))))
    torch.testing.assert_close(expected_d, theta_d, atol=1e-9, rtol=0)
    torch.testing.assert_close(rays.directions[:, 2].double(), -torch.cos(theta), atol=1e-6, rtol=0)  # looks down -z
    assert rays.directions[1, 0] > 0 and rays.directions[2, 1] > 0  # right of centre: +x; above the centre: +y
    torch.testing.assert_close(rays.directions[0], torch.tensor([0.0, 0.0, -1.0]))
