"""`fields export`'s writers: a mesh by one of three methods, or a point cloud, in the capture's or the scene's
coordinates, as PLY / OBJ / GLB."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open3d as o3d
import trimesh

from ..datasets import Cameras, Normalization
from ..errors import FieldsError
from ..fields import Field
from ..renderers import VolumeRenderer
from .frames import flips_winding, to_capture
from .marching_cubes import extract_mesh, occupied_box
from .points import PointCloud, extract_points
from .poisson import poisson_mesh
from .tsdf import tsdf_mesh

MESH_FORMATS = ("ply", "obj", "glb")
MESH_METHODS = ("marching-cubes", "poisson", "tsdf")


@dataclass
class ExportReport:
    path: Path
    vertices: int
    faces: int
    seconds: float

    def summary(self) -> str:
        faces = f", {self.faces} faces" if self.faces else ""
        return f"{self.path}: {self.vertices} vertices{faces} in {self.seconds:.1f} s"


@dataclass
class MeshSettings:
    """How each method builds its mesh (see docs/exports.md for the defaults' reasons)."""

    resolution: int = 256  # marching cubes: lattice points, tsdf: voxels, along the occupied box's longest side
    threshold: float = 10.0  # marching cubes: density of the surface
    views: int | None = 20  # poisson, tsdf: evenly spaced training cameras rendered
    min_opacity: float = 0.9  # poisson, tsdf: pixels at least this opaque give depth
    max_points: int = 1_000_000  # poisson: points reconstructed from
    outlier_std: float | None = 2.0  # poisson: statistical outlier filter (None or 0: off)
    poisson_depth: int = 9  # poisson: octree depth
    trim: float = 0.1  # poisson: fraction of lowest-density vertices removed
    truncation: float = 4.0  # tsdf: truncation distance in voxels


def build_mesh(method: str, field: Field, renderer: VolumeRenderer, cameras: Cameras | None,
               settings: MeshSettings, progress: bool = False) -> trimesh.Trimesh:
    """The mesh (scene coordinates) of `method`, one of MESH_METHODS; cameras: the training cameras (poisson, tsdf)."""
    s = settings
    if method == "marching-cubes":
        return extract_mesh(field, renderer, s.resolution, s.threshold, progress)
    if method not in MESH_METHODS:
        raise FieldsError(f"--method {method}: not one of {', '.join(MESH_METHODS)}")
    if cameras is None:
        raise FieldsError(f"--method {method}: renders the training cameras, none were given")
    if method == "poisson":
        _, lo, hi = occupied_box(renderer)
        cloud = extract_points(field, renderer, cameras, s.views, s.min_opacity, s.max_points, s.outlier_std,
                               progress=progress)
        return poisson_mesh(cloud, lo.numpy(), hi.numpy(), s.poisson_depth, s.trim)
    return tsdf_mesh(field, renderer, cameras, s.views, s.resolution, s.truncation, s.min_opacity, progress=progress)


def mesh_in_capture(mesh: trimesh.Trimesh, norm: Normalization) -> trimesh.Trimesh:
    """`mesh` moved from scene to capture coordinates (normals turned, faces reversed under a reflection)."""
    vertices, normals = to_capture(norm, mesh.vertices, mesh.vertex_normals)
    faces = mesh.faces[:, ::-1] if flips_winding(norm) else mesh.faces
    colors = mesh.visual.vertex_colors if mesh.visual.kind == "vertex" else None
    return trimesh.Trimesh(vertices, np.ascontiguousarray(faces), vertex_normals=normals, vertex_colors=colors,
                           process=False)


def export_mesh(field: Field, renderer: VolumeRenderer, out_path: Path, method: str = "marching-cubes",
                cameras: Cameras | None = None, norm: Normalization | None = None,
                settings: MeshSettings | None = None, progress: bool = True) -> ExportReport:
    """Write the `method` mesh as PLY, OBJ or GLB (by extension); norm: write it in capture coordinates
    (None: the scene's)."""
    fmt = out_path.suffix.lstrip(".").lower()
    if fmt not in MESH_FORMATS:
        raise FieldsError(f"{out_path}: mesh format '{fmt}' is not one of {', '.join(MESH_FORMATS)}")
    start = time.perf_counter()
    mesh = build_mesh(method, field, renderer, cameras, settings or MeshSettings(), progress)
    if norm is not None:
        mesh = mesh_in_capture(mesh, norm)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(out_path)
    return ExportReport(out_path, len(mesh.vertices), len(mesh.faces), time.perf_counter() - start)


def write_points(cloud: PointCloud, out_path: Path) -> None:
    """A binary PLY of points with colours and (where estimated) normals."""
    if not o3d.io.write_point_cloud(str(out_path), cloud.to_open3d()):
        raise FieldsError(f"{out_path}: open3d could not write the point cloud")


def export_points(field: Field, renderer: VolumeRenderer, cameras: Cameras, out_path: Path, views: int | None = 20,
                  min_opacity: float = 0.9, max_points: int = 1_000_000, outlier_std: float | None = 2.0,
                  norm: Normalization | None = None, progress: bool = True) -> ExportReport:
    """Write `extract_points` (points, colours, normals) as a PLY; norm: in capture coordinates (None: scene)."""
    if out_path.suffix.lower() != ".ply":
        raise FieldsError(f"{out_path}: point clouds are written as .ply")
    start = time.perf_counter()
    cloud = extract_points(field, renderer, cameras, views, min_opacity, max_points, outlier_std, progress=progress)
    if len(cloud) == 0:
        raise FieldsError(f"no ray reached opacity {min_opacity:g}: the field is empty from these cameras")
    if norm is not None:
        points, normals = to_capture(norm, cloud.points, cloud.normals)
        cloud = PointCloud(points, cloud.colors, normals)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_points(cloud, out_path)
    return ExportReport(out_path, len(cloud), 0, time.perf_counter() - start)
