"""Dense feature planes and lines, looked up bilinearly with grid_sample's semantics (align_corners=True,
border padding). `sample_planes` runs the native kernel of the planes' device when there is one and the
coordinates need no gradient; `sample_planes_torch` (F.grid_sample) is its twin and the fallback.
`vm_products` (TensoRF's plane-times-line products) likewise, with `vm_products_torch` its twin."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..cuda import functions
from ..cuda.dispatch import kernels_for

# TensoRF's pairing of axes: planes XY, XZ, YZ with the lines along the remaining axis Z, Y, X.
PLANE_AXES = ((0, 1), (0, 2), (1, 2))
LINE_AXES = (2, 1, 0)


def sample_planes(planes: torch.Tensor, coords: torch.Tensor, sum_planes: bool = False) -> torch.Tensor:
    """Bilinear samples of P planes (P, C, H, W) at coords (P, N, 2) in [-1, 1] (x along W) -> (P, N, C),
    or their sum over the planes (N, C)."""
    kernels = kernels_for(planes.device)
    if kernels is not None and planes.dtype == torch.float32 and not coords.requires_grad:
        return functions.plane_sample(kernels, planes, coords.float(), sum_planes)
    samples = sample_planes_torch(planes, coords)
    return samples.sum(0) if sum_planes else samples


def sample_planes_torch(planes: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """The PyTorch twin of the native lookup: (P, C, H, W) at (P, N, 2) -> (P, N, C), with F.grid_sample."""
    out = F.grid_sample(planes, coords[:, None], mode="bilinear", padding_mode="border", align_corners=True)
    return out[:, :, 0].transpose(1, 2)  # (P, C, 1, N) -> (P, N, C)


def sample_lines(lines: torch.Tensor, coords: torch.Tensor, sample=sample_planes) -> torch.Tensor:
    """Linear samples of P lines (P, C, L, 1) at coords (P, N) in [-1, 1] -> (P, N, C): planes one cell wide,
    looked up with `sample` (`sample_planes` or its twin)."""
    grid = torch.stack([torch.zeros_like(coords), coords], dim=-1)
    return sample(lines, grid)


def plane_coords(x: torch.Tensor) -> torch.Tensor:
    """Projections (3, N, 2) of points x (N, 3) in [-1, 1] onto the XY, XZ and YZ planes."""
    return torch.stack([x[:, list(axes)] for axes in PLANE_AXES])


def line_coords(x: torch.Tensor) -> torch.Tensor:
    """Coordinates (3, N) of points x (N, 3) along the Z, Y and X lines."""
    return torch.stack([x[:, axis] for axis in LINE_AXES])


def vm_products(planes: list[torch.Tensor], lines: list[torch.Tensor], x: torch.Tensor,
                sum_products: bool = False) -> torch.Tensor:
    """TensoRF's vector-matrix products at points x (N, 3) in [-1, 1]: pair m multiplies plane m (1, C, H, W),
    looked up at x's PLANE_AXES[m] coordinates, with line m (1, C, L, 1) at its LINE_AXES[m] coordinate, channel
    by channel -> (N, 3C), the pairs side by side, or with sum_products their sum over pairs and channels (N,).
    The native CPU kernel when x needs no gradient (it is faster still on channels_last factors); otherwise
    one lookup per factor (`sample_planes`)."""
    factors = [*planes, *lines]
    if x.device.type == "cpu" and not x.requires_grad and all(f.dtype == torch.float32 for f in factors):
        kernels = kernels_for(x.device)
        if kernels is not None:
            return functions.vm_products(kernels, planes, lines, x.float(), sum_products)
    return pair_products(planes, lines, x, sum_products, sample_planes)


def vm_products_torch(planes: list[torch.Tensor], lines: list[torch.Tensor], x: torch.Tensor,
                      sum_products: bool = False) -> torch.Tensor:
    """The PyTorch twin of the native `vm_products`, with F.grid_sample."""
    return pair_products(planes, lines, x, sum_products, sample_planes_torch)


def pair_products(planes, lines, x, sum_products, sample) -> torch.Tensor:
    """`vm_products` with `sample(factor, coords)` as the lookup (`sample_planes` or its twin)."""
    pc, lc = plane_coords(x), line_coords(x)
    products = [sample(p, pc[m:m + 1])[0] * sample_lines(v, lc[m:m + 1], sample)[0]
                for m, (p, v) in enumerate(zip(planes, lines))]
    if sum_products:
        return sum(p.sum(-1) for p in products)
    return torch.cat(products, dim=-1)


def resize(tensor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners=True, as TensoRF upsamples) of (P, C, H, W) to (P, C, *size)."""
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=True)


class MultiPlaneGrid(nn.Module):
    """Multi-resolution feature planes over 2-D or 3-D coordinates in [-1, 1].

    dim 2: one plane per level. dim 3: three axis-aligned planes per level whose samples are summed or
    multiplied (K-planes). Levels are concatenated: (N, dim) -> (N, channels * len(resolutions)).
    Product planes start near 1 (U(1 - init_std, 1 + init_std)) so that gradients do not vanish.
    """

    def __init__(self, dim: int, channels: int, resolutions: list[int], aggregate: str = "sum",
                 init_std: float = 0.1, init_mean: float | None = None):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"plane grids cover 2-D or 3-D coordinates, got dim {dim}")
        if aggregate not in ("sum", "product"):
            raise ValueError(f"aggregate must be 'sum' or 'product', got '{aggregate}'")
        self.dim, self.aggregate = dim, aggregate
        self.out_dim = channels * len(resolutions)
        n_planes = 1 if dim == 2 else 3
        mean = init_mean if init_mean is not None else (1.0 if aggregate == "product" else 0.0)
        self.planes = nn.ParameterList(
            nn.Parameter(mean + init_std * (2 * torch.rand(n_planes, channels, r, r) - 1)) for r in resolutions
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coords = x[None] if self.dim == 2 else plane_coords(x)
        features = []
        for planes in self.planes:
            if self.aggregate == "product":
                features.append(sample_planes(planes, coords).prod(0))
            else:
                features.append(sample_planes(planes, coords, sum_planes=True))
        return torch.cat(features, dim=-1)
