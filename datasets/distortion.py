"""Lens models in torch: OpenCV's radial-tangential distortion (k1..k4, p1, p2) with its iterative inverse, and
OpenCV's equidistant fisheye (k1..k4, `cv::fisheye`, COLMAP's OPENCV_FISHEYE) with its inverse.

Coordinates are normalised image coordinates (x right, y down, z = 1), as in OpenCV and COLMAP.
params: (..., 6) in nerfstudio's order k1, k2, k3, k4, p1, p2; in the radial-tangential model k4 multiplies r^8;
in the fisheye model k1..k4 multiply theta^2..theta^8 and p1, p2 must be zero.
"""

from __future__ import annotations

import math

import torch

PARAM_NAMES = ("k1", "k2", "k3", "k4", "p1", "p2")
OPENCV, OPENCV_FISHEYE = "OPENCV", "OPENCV_FISHEYE"
MODELS = (OPENCV, OPENCV_FISHEYE)


def distort(x: torch.Tensor, y: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distorted coordinates of undistorted normalised points x, y (R,); params (R, 6)."""
    k1, k2, k3, k4, p1, p2 = params.unbind(-1)
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * (k3 + r2 * k4)))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def _residual_and_jacobian(x, y, xd, yd, params):
    k1, k2, k3, k4, p1, p2 = params.unbind(-1)
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * (k3 + r2 * k4)))
    d_radial = k1 + r2 * (2 * k2 + r2 * (3 * k3 + r2 * 4 * k4))  # d radial / d r2
    fx = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x) - xd
    fy = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y - yd
    fx_x = radial + 2 * x * x * d_radial + 2 * p1 * y + 6 * p2 * x
    fx_y = 2 * x * y * d_radial + 2 * p1 * x + 2 * p2 * y
    fy_x = 2 * x * y * d_radial + 2 * p1 * x + 2 * p2 * y
    fy_y = radial + 2 * y * y * d_radial + 6 * p1 * y + 2 * p2 * x
    return fx, fy, fx_x, fx_y, fy_x, fy_y


def undistort(xd: torch.Tensor, yd: torch.Tensor, params: torch.Tensor,
              iterations: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Undistorted normalised coordinates (R,) of distorted ones, by Newton's method from x = xd.

    Computed in float64; stops once no point moves by more than 1e-12 (a few steps for real lenses).
    """
    dtype = xd.dtype
    if xd.numel() == 0:
        return xd, yd
    xd, yd, params = xd.double(), yd.double(), params.double()
    x, y = xd.clone(), yd.clone()
    for _ in range(iterations):
        fx, fy, fx_x, fx_y, fy_x, fy_y = _residual_and_jacobian(x, y, xd, yd, params)
        det = fx_x * fy_y - fx_y * fy_x
        det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
        step_x, step_y = (fx * fy_y - fy * fx_y) / det, (fy * fx_x - fx * fy_x) / det
        x, y = x - step_x, y - step_y
        if max(step_x.abs().max().item(), step_y.abs().max().item()) < 1e-12:
            break
    return x.to(dtype), y.to(dtype)


# ----- equidistant fisheye (OpenCV's cv::fisheye model) -----
# A camera-space direction at angle theta from the optical axis lands at distance
#     theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8)
# from the principal point, in normalised coordinates, along the direction's azimuth.

def _fisheye_radius(theta: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """theta_d(theta) and its derivative."""
    k1, k2, k3, k4 = params[..., :4].unbind(-1)
    t2 = theta * theta
    theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
    slope = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
    return theta_d, slope


def fisheye_distort_directions(directions: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distorted normalised coordinates (R,) of camera-space directions (R, 3) (OpenCV axes: z forward; any
    angle from the axis up to pi)."""
    d = directions.double()
    r = torch.sqrt(d[:, 0] ** 2 + d[:, 1] ** 2)
    theta = torch.atan2(r, d[:, 2])
    theta_d, _ = _fisheye_radius(theta, params.double())
    scale = torch.where(r > 1e-12, theta_d / r.clamp(min=1e-12), torch.ones_like(r))  # on the axis: theta_d / r -> 1
    return (d[:, 0] * scale).to(directions.dtype), (d[:, 1] * scale).to(directions.dtype)


def fisheye_distort(x: torch.Tensor, y: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distorted coordinates of undistorted (pinhole) normalised points x, y (R,), i.e. directions (x, y, 1)."""
    return fisheye_distort_directions(torch.stack([x, y, torch.ones_like(x)], dim=-1), params)


def fisheye_angles(xd: torch.Tensor, yd: torch.Tensor, params: torch.Tensor,
                   iterations: int = 20) -> torch.Tensor:
    """theta (R,) float64 of distorted normalised points: theta_d(theta) = |(xd, yd)| solved by Newton's method
    from theta = theta_d, kept in [0, pi]."""
    theta_d = torch.sqrt(xd.double() ** 2 + yd.double() ** 2)
    params = params.double()
    theta = theta_d.clamp(max=math.pi).clone()
    for _ in range(iterations):
        value, slope = _fisheye_radius(theta, params)
        slope = torch.where(slope.abs() < 1e-12, torch.full_like(slope, 1e-12), slope)
        step = (value - theta_d) / slope
        theta = (theta - step).clamp(0.0, math.pi)
        if step.numel() == 0 or step.abs().max().item() < 1e-12:
            break
    return theta


def fisheye_directions(xd: torch.Tensor, yd: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Unit camera-space directions (R, 3) (OpenCV axes: x right, y down, z forward) of distorted normalised
    points; angles from the axis may exceed 90 degrees."""
    theta = fisheye_angles(xd, yd, params)
    theta_d = torch.sqrt(xd.double() ** 2 + yd.double() ** 2)
    # sin(theta) / theta_d along (xd, yd); at the centre theta / theta_d -> 1 (theta_d'(0) = 1).
    ratio = torch.where(theta_d > 1e-12, torch.sin(theta) / theta_d.clamp(min=1e-12), torch.ones_like(theta_d))
    out = torch.stack([xd.double() * ratio, yd.double() * ratio, torch.cos(theta)], dim=-1)
    return out.to(xd.dtype)


def fisheye_undistort(xd: torch.Tensor, yd: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Undistorted (pinhole) normalised coordinates of distorted ones (angles below 90 degrees only)."""
    d = fisheye_directions(xd.double(), yd.double(), params)
    return (d[:, 0] / d[:, 2]).to(xd.dtype), (d[:, 1] / d[:, 2]).to(xd.dtype)
