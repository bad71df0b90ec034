"""Oriented, coloured point clouds from depth renders of the training cameras, with an outlier filter."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d
import torch
from tqdm import tqdm

from ..datasets import Cameras
from ..engine.evaluation import view_indices
from ..engine.pictures import to_uint8
from ..fields import Field
from ..renderers import VolumeRenderer

BLACK = torch.zeros(3)
NORMAL_NEIGHBOURS = 30  # points fitting each normal's plane (open3d's estimate_normals)
OUTLIER_NEIGHBOURS = 20  # neighbours of the statistical outlier filter (nerfstudio's and open3d's example)


@dataclass
class PointCloud:
    """points (P, 3) float64, colors (P, 3) uint8, normals (P, 3) float64 unit length (None: not estimated)."""

    points: np.ndarray
    colors: np.ndarray
    normals: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.points)

    def subset(self, keep: np.ndarray) -> "PointCloud":
        return PointCloud(self.points[keep], self.colors[keep], None if self.normals is None else self.normals[keep])

    def to_open3d(self) -> o3d.geometry.PointCloud:
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(self.points))
        cloud.colors = o3d.utility.Vector3dVector(self.colors / 255.0)
        if self.normals is not None:
            cloud.normals = o3d.utility.Vector3dVector(self.normals)
        return cloud


@torch.no_grad()
def depth_points(field: Field, renderer: VolumeRenderer, cameras: Cameras, views: int | None = 20,
                 min_opacity: float = 0.9, progress: bool = False) -> tuple[PointCloud, np.ndarray]:
    """One point per ray at least `min_opacity` opaque, at its expected termination depth, from depth renders
    of `views` evenly spaced cameras; colour un-premultiplied by the opacity. Also each point's ray origin
    (P, 3), the side its surface faces."""
    device = renderer.aabb.device
    points, colors, eyes = [], [], []
    for i in tqdm(view_indices(len(cameras), views), desc="depth renders", unit="view", disable=not progress):
        rays = cameras.image_rays(i).to(device)
        out = renderer.render_chunked(field, rays.origins, rays.directions, BLACK.to(device))
        hit = out.opacity > min_opacity
        t = out.depth[hit] / out.opacity[hit]
        points.append((rays.origins[hit] + rays.directions[hit] * t[:, None]).cpu())
        colors.append((out.rgb[hit] / out.opacity[hit, None]).clamp(0, 1).cpu())
        eyes.append(rays.origins[hit].cpu())
    rgb = to_uint8(torch.cat(colors))
    return PointCloud(torch.cat(points).double().numpy(), rgb), torch.cat(eyes).double().numpy()


def oriented_normals(points: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    """Unit normals (P, 3) of points (P, 3) by open3d's local plane fit, each turned towards the ray origin that
    saw its point (eyes (P, 3)): outward for a surface seen from outside."""
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(NORMAL_NEIGHBOURS))
    normals = np.asarray(cloud.normals).copy()
    normals[((eyes - points) * normals).sum(axis=1) < 0] *= -1
    return normals


def inliers(points: np.ndarray, std_ratio: float) -> np.ndarray:
    """Indices (K,) of the points (P, 3) open3d's statistical filter keeps: those whose mean distance to their
    OUTLIER_NEIGHBOURS nearest neighbours is within `std_ratio` standard deviations of the average."""
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    _, keep = cloud.remove_statistical_outlier(OUTLIER_NEIGHBOURS, std_ratio)
    return np.asarray(keep, dtype=np.int64)


def extract_points(field: Field, renderer: VolumeRenderer, cameras: Cameras, views: int | None = 20,
                   min_opacity: float = 0.9, max_points: int = 1_000_000, outlier_std: float | None = 2.0,
                   seed: int = 0, progress: bool = False) -> PointCloud:
    """`depth_points`, at most `max_points` of them (a random subset), outliers removed (`inliers`; None or 0:
    kept), with oriented normals."""
    cloud, eyes = depth_points(field, renderer, cameras, views, min_opacity, progress)
    if len(cloud) > max_points:
        keep = np.random.default_rng(seed).choice(len(cloud), max_points, replace=False)
        cloud, eyes = cloud.subset(keep), eyes[keep]
    if outlier_std and len(cloud) > OUTLIER_NEIGHBOURS:
        keep = inliers(cloud.points, outlier_std)
        cloud, eyes = cloud.subset(keep), eyes[keep]
    if len(cloud) >= 3:
        cloud.normals = oriented_normals(cloud.points, eyes)
    return cloud
