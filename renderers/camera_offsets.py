"""Camera refinement: a learned pose correction per training camera (SO3 x R3, as nerfstudio's).

COLMAP's poses are good to about a pixel; where they are not, a field trained on them blurs. Each training
camera gets a rotation (axis-angle, 3) and a translation (3), both zero at start and learned with the field;
a ray of camera i is turned about its origin by the rotation and moved by the translation, in world axes.
Held-out cameras keep their poses.
"""

from __future__ import annotations

import torch
from torch import nn


def axis_angle_to_matrix(v: torch.Tensor) -> torch.Tensor:
    """Rotations (N, 3, 3) of axis-angle vectors (N, 3) (Rodrigues; exact and differentiable at zero)."""
    theta2 = (v * v).sum(-1, keepdim=True)[..., None]  # (N, 1, 1)
    k = torch.zeros(len(v), 3, 3, dtype=v.dtype, device=v.device)
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    k = k - k.transpose(1, 2)
    small = theta2 < 1e-8
    theta = theta2.clamp(min=1e-8).sqrt()
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp(min=1e-8))
    return torch.eye(3, dtype=v.dtype, device=v.device) + a * k + b * (k @ k)


class CameraOffsets(nn.Module):
    """Pose corrections (N, 6) of N training cameras: axis-angle rotation, then translation."""

    def __init__(self, n_cameras: int):
        super().__init__()
        self.offsets = nn.Parameter(torch.zeros(n_cameras, 6))

    def forward(self, origins: torch.Tensor, directions: torch.Tensor, camera_indices: torch.Tensor):
        """Rays (R, 3) of cameras camera_indices (R,) -> corrected origins, directions (R, 3)."""
        offsets = self.offsets[camera_indices]
        rotations = axis_angle_to_matrix(offsets[:, :3])
        return origins + offsets[:, 3:], torch.einsum("rij,rj->ri", rotations, directions)

    def magnitudes(self) -> tuple[float, float]:
        """Largest rotation (degrees) and translation (scene units) learned so far."""
        with torch.no_grad():
            rotation = self.offsets[:, :3].norm(dim=-1).max().item() if len(self.offsets) else 0.0
            translation = self.offsets[:, 3:].norm(dim=-1).max().item() if len(self.offsets) else 0.0
        return rotation * 180 / torch.pi, translation
