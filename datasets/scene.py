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

    images: (N, H, W, C) uint8, C = 4 (RGBA, straight alpha) or 3 (RGB). Images of different sizes (cameras.sizes)
        lie in the top-left corner of the largest size, the rest zero (masks False, depths 0 there too).
    aabb: (6,) float32 min xyz then max xyz of the region holding the content.
    bounds: (N, 2) near, far distance per image where the capture states them (LLFF), else None.
    bounded: False for real captures whose content extends beyond aabb (see capture.UNBOUNDED_NOTE).
    masks: (N, H, W) bool where the capture gives masks (nerfstudio's mask_path): True for pixels to train on,
        False for pixels to leave out of the loss; None: every pixel counts.
    depths: (N, H, W) float32 z-depth (along each camera's viewing axis) in scene units where the capture gives
        depth maps (nerfstudio's depth_file_path); 0 where a map has no value. None: no depth.
    scene_type, scene_type_reason: forward-facing, object or unbounded, and why ("" where not decided).
    """

    cameras: Cameras
    images: torch.Tensor
    aabb: torch.Tensor
    name: str = ""
    near: float = 0.0
    bounds: torch.Tensor | None = None
    bounded: bool = True
    masks: torch.Tensor | None = None
    depths: torch.Tensor | None = None
    scene_type: str = ""
    scene_type_reason: str = ""

    def __post_init__(self):
        n, h, w, _ = self.images.shape
        if n != len(self.cameras) or (h, w) != (self.cameras.height, self.cameras.width):
            raise ValueError("images and cameras disagree in count or size")
        sizes = self.cameras.sizes
        if sizes is not None and (tuple(sizes.shape) != (n, 2) or sizes[:, 0].max() > w or sizes[:, 1].max() > h):
            raise ValueError(f"camera sizes {tuple(sizes.shape)} do not fit the images ({n}, {h}, {w})")
        for name in ("masks", "depths"):
            extra = getattr(self, name)
            if extra is not None and tuple(extra.shape) != (n, h, w):
                raise ValueError(f"{name} {tuple(extra.shape)} do not match the images ({n}, {h}, {w})")

    @property
    def has_alpha(self) -> bool:
        return self.images.shape[-1] == 4

    def pixels(self, camera_index: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Pixel values (R, C) float in [0, 1] at integer pixel coordinates."""
        return self.images[camera_index, y, x].float() / 255.0

    def image(self, index: int, background: torch.Tensor | None = None) -> torch.Tensor:
        """Image `index` at its own size as (H, W, 3) float in [0, 1], composited over `background` (3,) if RGBA."""
        w, h = self.cameras.size_of(index)
        img = self.images[index, :h, :w].float() / 255.0
        if not self.has_alpha:
            return img
        return composite_over(img, torch.ones(3) if background is None else background)
