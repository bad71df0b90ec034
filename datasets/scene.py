"""A loaded scene: cameras, images and the box that holds the content."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .cameras import Cameras


def composite_over(rgba: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Straight-alpha RGBA (..., 4) in [0, 1] over a background broadcastable to (..., 3) -> (..., 3)."""
    return rgba[..., :3] * rgba[..., 3:] + background * (1.0 - rgba[..., 3:])


@dataclass
class SceneData:
    """One split of a scene.

    images: (N, H, W, C) uint8, C = 4 (RGBA, straight alpha) or 3 (RGB).
    aabb: (6,) float32 min xyz then max xyz of the region holding the content.
    bounds: (N, 2) near, far distance per image where the capture states them (LLFF), else None.
    bounded: False for real captures whose content extends beyond aabb (see capture.UNBOUNDED_NOTE).
    scene_type, scene_type_reason: forward-facing, object or unbounded, and why ("" where not decided).
    """

    cameras: Cameras
    images: torch.Tensor
    aabb: torch.Tensor
    name: str = ""
    near: float = 0.0
    bounds: torch.Tensor | None = None
    bounded: bool = True
    scene_type: str = ""
    scene_type_reason: str = ""

    def __post_init__(self):
        n, h, w, _ = self.images.shape
        if n != len(self.cameras) or (h, w) != (self.cameras.height, self.cameras.width):
            raise ValueError("images and cameras disagree in count or size")

    @property
    def has_alpha(self) -> bool:
        return self.images.shape[-1] == 4

    def pixels(self, camera_index: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Pixel values (R, C) float in [0, 1] at integer pixel coordinates."""
        return self.images[camera_index, y, x].float() / 255.0

    def image(self, index: int, background: torch.Tensor | None = None) -> torch.Tensor:
        """Image `index` as (H, W, 3) float in [0, 1], composited over `background` (3,) if RGBA."""
        img = self.images[index].float() / 255.0
        if not self.has_alpha:
            return img
        return composite_over(img, torch.ones(3) if background is None else background)
