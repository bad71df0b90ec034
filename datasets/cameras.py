"""Pinhole cameras (OpenGL convention: +x right, +y up, looking down -z) and ray generation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .distortion import fisheye_directions, undistort


@dataclass
class RayBundle:
    """A batch of rays. origins, directions: (R, 3) float32; directions have unit length."""

    origins: torch.Tensor
    directions: torch.Tensor

    def __len__(self) -> int:
        return self.origins.shape[0]

    def to(self, device) -> "RayBundle":
        return RayBundle(self.origins.to(device), self.directions.to(device))


@dataclass(frozen=True)
class NDCFrame:
    """Normalised device coordinates of a forward-facing scene (Mildenhall et al. 2020, eq. 25): near plane at
    z = -near, far plane at infinity. The frame is fixed by the training cameras' intrinsics; novel views
    (videos, the viewer) map their rays with that same frame, whatever their own resolution or focal length."""

    ax: float  # -2 fx / width of the training cameras
    ay: float  # -2 fy / height
    near: float

    @classmethod
    def of_camera(cls, fx: float, fy: float, width: float, height: float, near: float) -> "NDCFrame":
        return cls(-2.0 * fx / width, -2.0 * fy / height, near)

    def rays(self, origins: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World rays (R, 3) looking down -z to NDC origins (on the near plane) and unnormalised directions."""
        t = -(self.near + origins[:, 2]) / directions[:, 2]
        o = origins + t[:, None] * directions
        ox, oy, oz = o.unbind(-1)
        dx, dy, dz = directions.unbind(-1)
        o_ndc = torch.stack([self.ax * ox / oz, self.ay * oy / oz, 1.0 + 2.0 * self.near / oz], dim=-1)
        d_ndc = torch.stack([self.ax * (dx / dz - ox / oz), self.ay * (dy / dz - oy / oz), -2.0 * self.near / oz],
                            dim=-1)
        return o_ndc, d_ndc


@dataclass
class Cameras:
    """N pinhole cameras, each with its own intrinsics and, where `sizes` is given, its own image size.

    camera_to_world: (N, 4, 4) float32, OpenGL axes. focal: (N, 2) fx, fy in pixels.
    principal: (N, 2) cx, cy in pixels (pixel centres lie at integer + 0.5).
    width, height: the image size; where cameras differ in size, the largest width and height of any.
    sizes: (N, 2) long width, height of each camera's image where they differ; None: all width x height.
    distortion: (N, 6) k1, k2, k3, k4, p1, p2 (OpenCV model, see distortion.py) or None; rays are undistorted.
    fisheye: the cameras follow OpenCV's equidistant fisheye model (COLMAP's OPENCV_FISHEYE) with k1..k4 of
        `distortion` (None: the plain equidistant projection) instead of the pinhole model.
    ndc: when set, rays are mapped into this forward-facing scene's normalised device coordinates, as in
        NeRF's LLFF scenes (see NDCFrame).
    """

    camera_to_world: torch.Tensor
    focal: torch.Tensor
    principal: torch.Tensor
    width: int
    height: int
    distortion: torch.Tensor | None = None
    ndc: NDCFrame | None = None
    fisheye: bool = False
    sizes: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.camera_to_world.shape[0]

    def size_of(self, index: int) -> tuple[int, int]:
        """(width, height) of camera `index`'s image."""
        if self.sizes is None:
            return self.width, self.height
        w, h = self.sizes[index].tolist()
        return int(w), int(h)

    def random_pixels(self, n: int, generator: torch.Generator | None = None):
        """n uniformly random pixels of all the images together (a camera drawn in proportion to its pixel
        count): camera indices, x, y (n,) long, each pixel inside its own camera's image."""
        if self.sizes is None:
            cam = torch.randint(0, len(self), (n,), generator=generator)
            x = torch.randint(0, self.width, (n,), generator=generator)
            y = torch.randint(0, self.height, (n,), generator=generator)
            return cam, x, y
        widths, pixels = self.sizes[:, 0], self.sizes[:, 0] * self.sizes[:, 1]
        ends = torch.cumsum(pixels, 0)
        flat = torch.randint(0, int(ends[-1]), (n,), generator=generator)
        cam = torch.searchsorted(ends, flat, right=True)
        local = flat - (ends[cam] - pixels[cam])
        return cam, local % widths[cam], local // widths[cam]

    @classmethod
    def from_fov_x(cls, camera_to_world: torch.Tensor, fov_x: float, width: int, height: int) -> "Cameras":
        """Cameras with a horizontal field of view in radians, square pixels, centred principal point."""
        n = camera_to_world.shape[0]
        f = 0.5 * width / torch.tan(torch.tensor(0.5 * fov_x, dtype=torch.float64))
        focal = torch.full((n, 2), float(f), dtype=torch.float32)
        principal = torch.tensor([[width / 2.0, height / 2.0]], dtype=torch.float32).expand(n, 2).clone()
        return cls(camera_to_world.float(), focal, principal, width, height)

    def resized(self, width: int | None) -> "Cameras":
        """The same cameras at another image width (same aspect and field of view); None: unchanged."""
        if not width or width == self.width:
            return self
        s = width / self.width
        sizes = None if self.sizes is None else (self.sizes * s).round().long().clamp(min=1)
        return dataclasses.replace(self, focal=self.focal * s, principal=self.principal * s, width=width,
                                   height=max(1, round(self.height * s)), sizes=sizes)

    def rays(self, camera_index: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> RayBundle:
        """Rays through pixel positions.

        camera_index: (R,) long. x, y: (R,) float pixel coordinates (x + 0.5 is a pixel centre).
        Returns unit-direction rays in world space.
        """
        c2w = self.camera_to_world.index_select(0, camera_index)  # (R, 4, 4); index_select: faster than [ ]
        fx, fy = self.focal.index_select(0, camera_index).unbind(-1)
        cx, cy = self.principal.index_select(0, camera_index).unbind(-1)
        u, v = (x - cx) / fx, (y - cy) / fy  # normalised image coordinates, y down (OpenCV)
        params = None if self.distortion is None else self.distortion.index_select(0, camera_index)
        if self.fisheye:
            if params is None:
                params = u.new_zeros(len(u), 6)
            d_cv = fisheye_directions(u, v, params)  # OpenCV camera axes: y down, looking along +z
            d_cam = torch.stack([d_cv[:, 0], -d_cv[:, 1], -d_cv[:, 2]], dim=-1)
        else:
            if params is not None:
                u, v = undistort(u, v, params)
            # OpenGL camera: image y grows downwards, camera y upwards, camera looks along -z.
            d_cam = torch.stack([u, -v, -torch.ones_like(x)], dim=-1)
        d_world = torch.einsum("rij,rj->ri", c2w[:, :3, :3], d_cam)
        origins = c2w[:, :3, 3]
        if self.ndc is not None:
            origins, d_world = self.ndc.rays(origins, d_world)
        d_world = d_world / d_world.norm(dim=-1, keepdim=True)
        return RayBundle(origins.contiguous(), d_world.contiguous())

    def distances_of_z_depths(self, camera_index: torch.Tensor, directions: torch.Tensor,
                              z_depth: torch.Tensor) -> torch.Tensor:
        """Distances (R,) along unit world rays (R, 3) of cameras `camera_index` (R,) to the points at z-depth
        `z_depth` (R,) (along each camera's viewing axis): z / cos(angle to the axis), as nerfstudio's depth losses
        scale z-depth by the camera-space direction's length. 0 where z_depth is 0 or the ray does not look
        forward (a wide fisheye's edge)."""
        if self.ndc is not None:
            raise ValueError("z-depth has no distance along a ray in NDC space")
        axis = -self.camera_to_world[camera_index, :3, 2]
        cos = (directions * axis).sum(-1) / axis.norm(dim=-1)
        forward = cos > 1e-6
        return torch.where(forward, z_depth / torch.where(forward, cos, 1.0), torch.zeros_like(z_depth))

    def image_rays(self, index: int) -> RayBundle:
        """All rays of camera `index` (its own size_of), row-major through pixel centres: (H*W, 3) each."""
        width, height = self.size_of(index)
        ys, xs = torch.meshgrid(
            torch.arange(height, dtype=torch.float32) + 0.5,
            torch.arange(width, dtype=torch.float32) + 0.5,
            indexing="ij",
        )
        cam = torch.full((height * width,), index, dtype=torch.long)
        return self.rays(cam, xs.reshape(-1), ys.reshape(-1))


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """OpenGL camera-to-world (4, 4) placed at `eye`, looking at `target`."""
    forward = target - eye
    forward = forward / forward.norm()
    right = torch.linalg.cross(forward, up)
    right = right / right.norm()
    true_up = torch.linalg.cross(right, forward)
    c2w = torch.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, -forward, eye
    return c2w


def orbit_poses(n: int, radius: float, elevation_deg: float, target=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """n camera-to-world matrices (n, 4, 4) on a circle around +z, looking at `target`."""
    target_t = torch.tensor(target, dtype=torch.float32)
    elevation = torch.deg2rad(torch.tensor(elevation_deg))
    poses = []
    for angle in torch.linspace(0, 2 * torch.pi, n + 1)[:-1]:
        eye = target_t + radius * torch.stack(
            [torch.cos(angle) * torch.cos(elevation), torch.sin(angle) * torch.cos(elevation), torch.sin(elevation)]
        )
        poses.append(look_at(eye, target_t, torch.tensor([0.0, 0.0, 1.0])))
    return torch.stack(poses)
