"""Sparse point clouds as binary little-endian PLY files via trimesh: x, y, z float, red, green, blue (alpha) uchar."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset_error import DatasetError

GREY = 128


def write_ply_points(path: Path, points: np.ndarray, colors: np.ndarray) -> None:
    """points (P, 3) float, colors (P, 3) uint8 -> binary PLY (trimesh adds an opaque alpha)."""
    import trimesh  # on use: it takes most of a second to import, and `fields --help` needs none of it

    cloud = trimesh.PointCloud(np.asarray(points, dtype=np.float32), colors=np.asarray(colors, dtype=np.uint8))
    cloud.export(str(path), file_type="ply")


def read_ply_points(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(P, 3) float64 points and (P, 3) uint8 colours (grey where the file has none)."""
    import trimesh

    try:
        cloud = trimesh.load(str(path), file_type="ply", process=False)
        points = np.asarray(cloud.vertices, dtype=np.float64).reshape(-1, 3)
    except Exception as err:  # trimesh raises ValueError, KeyError, AttributeError... for bad files
        raise DatasetError(path, f"not a readable PLY point cloud ({err.__class__.__name__}: {err})") from None
    if isinstance(cloud, trimesh.PointCloud):
        rgba = np.asarray(cloud.colors)
    else:  # a mesh: its vertices, with colours only where the file stores them per vertex
        rgba = np.asarray(cloud.visual.vertex_colors) if cloud.visual.kind == "vertex" else np.empty((0, 4))
    if len(rgba) != len(points):
        return points, np.full((len(points), 3), GREY, dtype=np.uint8)
    return points, rgba[:, :3].astype(np.uint8)
