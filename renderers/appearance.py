"""Per-image appearance: a learned colour transform per training photo (exposure, white balance).

Real photos of one scene differ in exposure and white balance (phones set both per frame). A field fitted
to all of them either averages the differences into view-dependent colour or paints them into floaters.
As in NeRF-W and nerfacto, each training image gets its own appearance parameters; here they act on the
rendered pixel, so every backbone has them without a change to its colour decoder: image i's pixel is
A_i @ rgb + b_i (a 3x3 colour matrix and an offset, starting at the identity), like a camera's colour
pipeline. The transforms are kept centred on the identity (their mean is the identity by construction): the
field learns the average photo's colours, so a view rendered without any transform (the viewer, a video) looks
like the capture; without the centring, the transforms and the field's colours trade a common factor (a run
on beer learnt washed-out colours and transforms that saturated them again).
Held-out views have no parameters of their own; two protocols score them:
  "mean": the mean transform of the training images, the identity (nerfstudio's choice, its average
          appearance embedding);
  "half": NeRF-W's: the transform is fitted on the left half of the held-out image (here in closed form,
          by least squares) and the right half is scored.
"""

from __future__ import annotations

import torch
from torch import nn

PROTOCOLS = ("mean", "half")


class PerImageAppearance(nn.Module):
    """Colour transforms (N, 3, 4) of N training images, [A | b] with A (3, 3), b (3,); identity at start."""

    def __init__(self, n_images: int):
        super().__init__()
        identity = torch.cat([torch.eye(3), torch.zeros(3, 1)], dim=1)
        self.transforms = nn.Parameter(identity.repeat(n_images, 1, 1))

    def centred(self) -> torch.Tensor:
        """The transforms (N, 3, 4) shifted so that their mean is the identity."""
        identity = torch.eye(3, 4, dtype=self.transforms.dtype, device=self.transforms.device)
        return self.transforms - self.transforms.mean(dim=0) + identity

    def forward(self, rgb: torch.Tensor, image_indices: torch.Tensor) -> torch.Tensor:
        """rgb (R, 3) rendered for rays of training images image_indices (R,) -> as photographed (R, 3)."""
        return apply_transform(self.centred()[image_indices], rgb)

    def transform(self, index: int) -> torch.Tensor:
        """(3, 4): training image `index`'s transform."""
        return self.centred().detach()[index]

    def mean_transform(self) -> torch.Tensor:
        """(3, 4): the training images' mean transform (the identity), for held-out views ("mean" protocol)."""
        return self.centred().detach().mean(dim=0)


def apply_transform(transform: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
    """[A | b] (3, 4) or per pixel (R, 3, 4) applied to rgb (R, 3)."""
    if transform.dim() == 2:
        return rgb @ transform[:, :3].T + transform[:, 3]
    return torch.einsum("rij,rj->ri", transform[..., :3], rgb) + transform[..., 3]


def fit_transform(rendered: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """(3, 4) least-squares [A | b] taking rendered colours (P, 3) to the photo's (P, 3) ("half" protocol)."""
    design = torch.cat([rendered, torch.ones_like(rendered[:, :1])], dim=1).double()
    solution = torch.linalg.lstsq(design, photo.double()).solution  # (4, 3)
    return solution.T.to(rendered.dtype)
