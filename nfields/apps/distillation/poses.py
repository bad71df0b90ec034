"""Virtual cameras for distillation: new poses every epoch, shaped like the teacher's training cameras.

Cameras around an object (orbits) get PVD-AL's recipe: look at the scene centre from a radius and an
elevation drawn within the range of the real cameras (5th-95th percentile of elevations). Forward-facing
scenes (NDC) get centres uniform in the real centres' box enlarged by 10 % per side, each with a real
camera's orientation turned by a random yaw, pitch and roll of up to pi/20.
"""

from __future__ import annotations

import math

import torch

from ...datasets import Cameras
from ...datasets.cameras import look_at

MAX_TURN = math.pi / 20


def rotation(axis: int, angles: torch.Tensor) -> torch.Tensor:
    """Rotations (N, 3, 3) by `angles` (N,) about coordinate axis 0, 1 or 2."""
    c, s = torch.cos(angles), torch.sin(angles)
    i, j = [a for a in range(3) if a != axis]
    m = torch.zeros(len(angles), 3, 3)
    m[:, axis, axis] = 1.0
    m[:, i, i], m[:, i, j], m[:, j, i], m[:, j, j] = c, -s, s, c
    return m


def turn(camera_to_world: torch.Tensor, generator: torch.Generator, max_angle: float = MAX_TURN) -> torch.Tensor:
    """Poses (N, 4, 4) with R <- Rz(yaw) Rx(roll) Ry(pitch) R, angles ~ U(+-max_angle); centres kept."""
    n = camera_to_world.shape[0]
    yaw, roll, pitch = ((torch.rand(3, n, generator=generator) * 2 - 1) * max_angle).unbind(0)
    turned = camera_to_world.clone()
    turned[:, :3, :3] = rotation(2, yaw) @ rotation(0, roll) @ rotation(1, pitch) @ camera_to_world[:, :3, :3]
    return turned


class VirtualPoses:
    """Draws camera sets like `cameras` (the teacher's training cameras; their images are never read)."""

    def __init__(self, cameras: Cameras, centre: torch.Tensor):
        self.cameras, self.centre = cameras, centre.float()
        eyes = cameras.camera_to_world[:, :3, 3]
        self.forward_facing = cameras.ndc is not None
        up = cameras.camera_to_world[:, :3, 1].mean(0)
        self.up = up / up.norm().clamp(min=1e-8)
        offsets = eyes - self.centre
        radii = offsets.norm(dim=-1)
        elevations = torch.asin(((offsets @ self.up) / radii.clamp(min=1e-8)).clamp(-1, 1))
        self.radius_range = (float(radii.min()), float(radii.max()))
        self.elevation_range = (float(torch.quantile(elevations, 0.05)), float(torch.quantile(elevations, 0.95)))
        lo, hi = eyes.amin(0), eyes.amax(0)
        margin = 0.1 * (hi - lo)
        self.eye_box = (lo - margin, hi + margin)

    def sample(self, n: int, generator: torch.Generator) -> Cameras:
        """n virtual cameras with the intrinsics and image size of random real ones."""
        source = torch.randint(0, len(self.cameras), (n,), generator=generator)
        poses = self._forward_facing(source, generator) if self.forward_facing else self._orbit(n, generator)
        c = self.cameras
        return Cameras(poses, c.focal[source].clone(), c.principal[source].clone(), c.width, c.height,
                       distortion=None, ndc=c.ndc)

    def _orbit(self, n: int, generator: torch.Generator) -> torch.Tensor:
        u = torch.rand(3, n, generator=generator)
        radius = self.radius_range[0] + u[0] * (self.radius_range[1] - self.radius_range[0])
        elevation = self.elevation_range[0] + u[1] * (self.elevation_range[1] - self.elevation_range[0])
        azimuth = u[2] * 2 * math.pi
        # An orthonormal frame (a, b, up) with `up` the real cameras' mean up direction.
        helper = torch.tensor([1.0, 0.0, 0.0]) if abs(float(self.up[0])) < 0.9 else torch.tensor([0.0, 1.0, 0.0])
        a = torch.linalg.cross(self.up, helper)
        a = a / a.norm()
        b = torch.linalg.cross(self.up, a)
        horizontal = torch.cos(azimuth)[:, None] * a + torch.sin(azimuth)[:, None] * b
        directions = torch.cos(elevation)[:, None] * horizontal + torch.sin(elevation)[:, None] * self.up
        eyes = self.centre + radius[:, None] * directions
        return torch.stack([look_at(eye, self.centre, self.up) for eye in eyes])

    def _forward_facing(self, source: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        lo, hi = self.eye_box
        eyes = lo + torch.rand(len(source), 3, generator=generator) * (hi - lo)
        poses = turn(self.cameras.camera_to_world[source], generator)
        poses[:, :3, 3] = eyes
        return poses
