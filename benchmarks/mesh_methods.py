"""The three mesh methods of `fields export` on one run: vertices, faces and seconds for each, and one picture
of the three meshes side by side (matplotlib, no OpenGL). Usage:

    python benchmarks/mesh_methods.py runs/lego-hashgrid --out docs/mesh_methods.png
    python benchmarks/mesh_methods.py RUN --resolution 128 --views 10 --width 200 --threads 2

Meshes are built in the run's scene coordinates (the picture's frame) and written under --mesh-dir if given.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import open3d as o3d  # noqa: E402
import torch  # noqa: E402
from mpl_toolkits.mplot3d.art3d import Poly3DCollection  # noqa: E402
from real_captures import cpu_name  # noqa: E402

from nfields.engine.runs import load_run  # noqa: E402
from nfields.engine.scenes import load_scene  # noqa: E402
from nfields.outputs.export import MESH_METHODS, MeshSettings, build_mesh  # noqa: E402

LIGHT = np.array([0.4, -0.3, 0.85]) / np.linalg.norm([0.4, -0.3, 0.85])
MAX_DRAWN_FACES = 60_000  # matplotlib draws every polygon: larger meshes are decimated for the picture


def draw(ax, mesh, title: str, lo: np.ndarray, hi: np.ndarray) -> None:
    """The mesh's faces, coloured by their vertices' colours and shaded by a fixed light."""
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    vertex_colors = np.asarray(mesh.visual.vertex_colors)[:, :3] / 255
    if len(faces) > MAX_DRAWN_FACES:  # quadric decimation keeps the shape (a random subset of faces would not)
        o3d_mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices), o3d.utility.Vector3iVector(faces))
        o3d_mesh.vertex_colors = o3d.utility.Vector3dVector(vertex_colors)
        o3d_mesh = o3d_mesh.simplify_quadric_decimation(MAX_DRAWN_FACES)
        vertices, faces = np.asarray(o3d_mesh.vertices), np.asarray(o3d_mesh.triangles)
        vertex_colors = np.asarray(o3d_mesh.vertex_colors)
    triangles = vertices[faces]
    normal = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True).clip(min=1e-12)
    colors = np.clip(vertex_colors[faces].mean(axis=1), 0, 1)
    shade = 0.35 + 0.65 * np.clip(normal @ LIGHT, 0, 1)
    ax.add_collection3d(Poly3DCollection(triangles, facecolors=colors * shade[:, None], linewidths=0))
    ax.set_xlim(lo[0], hi[0]), ax.set_ylim(lo[1], hi[1]), ax.set_zlim(lo[2], hi[2])
    ax.set_box_aspect(hi - lo)
    ax.view_init(elev=25, azim=-60)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--out", default="docs/mesh_methods.png")
    p.add_argument("--mesh-dir", default=None, help="also write mesh-<method>.ply here")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--threshold", type=float, default=10.0)
    p.add_argument("--views", type=int, default=20)
    p.add_argument("--width", type=int, default=None, help="render width of the poisson / tsdf views")
    p.add_argument("--data-root", default=None)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = load_run(args.run)
    cameras = load_scene(run.config, "train", args.data_root).cameras.resized(args.width)
    settings = MeshSettings(resolution=args.resolution, threshold=args.threshold, views=args.views)
    print(f"CPU: {cpu_name()}; {torch.get_num_threads()} threads; run {args.run}; resolution {args.resolution}, "
          f"{args.views} views at {cameras.width}x{cameras.height}")
    meshes = {}
    for method in MESH_METHODS:
        start = time.perf_counter()
        mesh = build_mesh(method, run.field, run.renderer, cameras, settings, progress=True)
        seconds = time.perf_counter() - start
        meshes[method] = mesh
        print(f"{method:15s} {len(mesh.vertices):9,d} vertices {len(mesh.faces):9,d} faces {seconds:8.1f} s")
        if args.mesh_dir:
            Path(args.mesh_dir).mkdir(parents=True, exist_ok=True)
            mesh.export(Path(args.mesh_dir) / f"mesh-{method}.ply")
    lo = np.min([m.bounds[0] for m in meshes.values()], axis=0)
    hi = np.max([m.bounds[1] for m in meshes.values()], axis=0)
    fig = plt.figure(figsize=(4 * len(meshes), 4.2), dpi=120)
    for i, (method, mesh) in enumerate(meshes.items()):
        draw(fig.add_subplot(1, len(meshes), i + 1, projection="3d"), mesh,
             f"{method}: {len(mesh.vertices):,} vertices", lo, hi)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"picture: {args.out}")


if __name__ == "__main__":
    main()
