"""Sparse point clouds as PLY files (x, y, z float, red, green, blue uchar), via plyfile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement

from .dataset_error import DatasetError


def write_ply_points(path: Path, points: np.ndarray, colors: np.ndarray) -> None:
    """points (P, 3) float, colors (P, 3) uint8 -> binary PLY."""
    vertex = np.empty(len(points), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"),
                                          ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    vertex["x"], vertex["y"], vertex["z"] = points.T.astype(np.float32)
    vertex["red"], vertex["green"], vertex["blue"] = colors.T
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(path))


def read_ply_points(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(P, 3) float64 points and (P, 3) uint8 colours (grey where the file has none)."""
    try:
        vertex = PlyData.read(str(path))["vertex"].data
        points = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1).astype(np.float64)
    except Exception as err:  # plyfile raises PlyParseError, KeyError, ValueError... for bad files
        raise DatasetError(path, f"not a readable PLY point cloud ({err.__class__.__name__}: {err})") from None
    names = vertex.dtype.names
    if all(c in names for c in ("red", "green", "blue")):
        colors = np.stack([vertex["red"], vertex["green"], vertex["blue"]], axis=1).astype(np.uint8)
    else:
        colors = np.full((len(points), 3), 128, dtype=np.uint8)
    return points, colors
