"""Meshes by screened Poisson reconstruction (open3d) of the oriented depth-render point cloud, cropped to the
occupied box, with vertex colours and normals."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import trimesh

from ..errors import FieldsError
from .points import PointCloud


def to_trimesh(mesh: o3d.geometry.TriangleMesh, lo: np.ndarray, hi: np.ndarray) -> trimesh.Trimesh:
    """An open3d mesh cropped to the box lo (3,), hi (3,), with vertex normals and uint8 colours."""
    mesh = mesh.crop(o3d.geometry.AxisAlignedBoundingBox(lo.astype(np.float64), hi.astype(np.float64)))
    mesh.remove_unreferenced_vertices()
    mesh.compute_vertex_normals()
    colors = (np.clip(np.asarray(mesh.vertex_colors), 0, 1) * 255 + 0.5).astype(np.uint8)
    return trimesh.Trimesh(np.asarray(mesh.vertices), np.asarray(mesh.triangles), vertex_normals=np.asarray(
        mesh.vertex_normals), vertex_colors=colors if len(colors) else None, process=False)


def poisson_mesh(cloud: PointCloud, lo: np.ndarray, hi: np.ndarray, depth: int = 9, trim: float = 0.1
                 ) -> trimesh.Trimesh:
    """Screened Poisson surface of an oriented cloud (open3d, octree `depth`), without the vertices whose
    density (input points supporting them) lies in the lowest `trim` fraction (0: keep all), cropped to the
    occupied box lo (3,), hi (3,). Colours are open3d's interpolation of the points'."""
    if cloud.normals is None:
        raise FieldsError("poisson: the point cloud has fewer than 3 points, no normals to reconstruct from")
    mesh, density = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(cloud.to_open3d(), depth=depth)
    if trim > 0:
        density = np.asarray(density)
        mesh.remove_vertices_by_mask(density < np.quantile(density, trim))
    return to_trimesh(mesh, lo, hi)
