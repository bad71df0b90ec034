"""OpenCV-style lens distortion (radial k1..k4, tangential p1, p2) and its iterative inverse in torch.

Coordinates are normalised image coordinates (x right, y down, z = 1), as in OpenCV and COLMAP.
params: (..., 6) in nerfstudio's order k1, k2, k3, k4, p1, p2; k4 multiplies r^8.
"""

from __future__ import annotations

import torch

PARAM_NAMES = ("k1", "k2", "k3", "k4", "p1", "p2")


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
