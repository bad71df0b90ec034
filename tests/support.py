"""Test support shared by every test folder: writers of the capture formats (so tests build their inputs
from known poses), points on the procedural scene's surface, Chamfer distance, a field made from its SDF, and a
field's densities and gradients compared between two code paths."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from scipy.spatial import cKDTree

from nfields.datasets.cameras import orbit_poses
from nfields.datasets.colmap import MODEL_IDS
from nfields.datasets.procedural import AABB, procedural_sdf
from nfields.fields.base import Field

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


def rotation_to_qvec(r: np.ndarray) -> np.ndarray:
    """Quaternion (w, x, y, z) of a rotation matrix (Shepperd's method, w >= 0)."""
    w = np.sqrt(max(0.0, 1 + r[0, 0] + r[1, 1] + r[2, 2])) / 2
    x = np.copysign(np.sqrt(max(0.0, 1 + r[0, 0] - r[1, 1] - r[2, 2])) / 2, r[2, 1] - r[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1 - r[0, 0] + r[1, 1] - r[2, 2])) / 2, r[0, 2] - r[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1 - r[0, 0] - r[1, 1] + r[2, 2])) / 2, r[1, 0] - r[0, 1])
    return np.array([w, x, y, z])


def orbit_c2w(n: int, radius: float = 4.0) -> np.ndarray:
    """(n, 4, 4) OpenGL camera-to-world looking at the origin from an orbit tilted by 30 degrees."""
    return orbit_poses(n, radius=radius, elevation_deg=30.0).double().numpy()


def write_images(folder: Path, names: list[str], width: int, height: int, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        iio.imwrite(folder / name, rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def write_colmap_model(folder: Path, c2w: np.ndarray, names: list[str], cameras: dict, image_cameras: list[int],
                       points: np.ndarray, colors: np.ndarray, binary: bool) -> None:
    """cameras: id -> (model, width, height, params). c2w: OpenGL poses of the images."""
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i, pose in enumerate(c2w):
        w2c = np.linalg.inv(pose @ OPENGL_TO_OPENCV)
        images.append((i + 1, rotation_to_qvec(w2c[:3, :3]), w2c[:3, 3], image_cameras[i], names[i]))
    if binary:
        with open(folder / "cameras.bin", "wb") as f:
            f.write(struct.pack("<Q", len(cameras)))
            for cid, (model, w, h, params) in cameras.items():
                f.write(struct.pack("<iiQQ", cid, MODEL_IDS[model], w, h) + struct.pack(f"<{len(params)}d", *params))
        with open(folder / "images.bin", "wb") as f:
            f.write(struct.pack("<Q", len(images)))
            for iid, q, t, cid, name in images:
                f.write(struct.pack("<i7di", iid, *q, *t, cid) + name.encode() + b"\0")
                f.write(struct.pack("<Q", 1) + struct.pack("<ddq", 1.0, 2.0, 1))
        with open(folder / "points3D.bin", "wb") as f:
            f.write(struct.pack("<Q", len(points)))
            for j, (p, c) in enumerate(zip(points, colors)):
                f.write(struct.pack("<Q3d3BdQ", j + 1, *p, *c, 0.5, 1) + struct.pack("<ii", 1, 0))
    else:
        lines = [f"{cid} {model} {w} {h} " + " ".join(repr(float(v)) for v in params)
                 for cid, (model, w, h, params) in cameras.items()]
        (folder / "cameras.txt").write_text("# Camera list\n" + "\n".join(lines) + "\n")
        lines = []
        for iid, q, t, cid, name in images:
            lines += [f"{iid} " + " ".join(repr(float(v)) for v in [*q, *t]) + f" {cid} {name}", "1.0 2.0 1"]
        (folder / "images.txt").write_text("# Image list\n" + "\n".join(lines) + "\n")
        lines = [f"{j + 1} {float(p[0])!r} {float(p[1])!r} {float(p[2])!r} {c[0]} {c[1]} {c[2]} 0.5 1 0"
                 for j, (p, c) in enumerate(zip(points, colors))]
        (folder / "points3D.txt").write_text("\n".join(lines) + "\n")


def write_llff(folder: Path, c2w: np.ndarray, bounds: np.ndarray, width: int, height: int, focal: float) -> None:
    """poses_bounds.npy (LLFF axes: down, right, backwards) and matching images/."""
    rows = []
    for pose, b in zip(c2w, bounds):
        m = np.zeros((3, 5))
        m[:, 0], m[:, 1], m[:, 2], m[:, 3] = -pose[:3, 1], pose[:3, 0], pose[:3, 2], pose[:3, 3]
        m[:, 4] = [height, width, focal]
        rows.append(np.concatenate([m.reshape(-1), b]))
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "poses_bounds.npy", np.array(rows))
    write_images(folder / "images", [f"img_{i:03d}.png" for i in range(len(c2w))], width, height)


def write_transforms(path: Path, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta))


def torch_poses(c2w: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(c2w).float()


def surface_points(n: int, seed: int = 0) -> np.ndarray:
    """About n points on the zero set of the procedural SDF (random points projected along the gradient)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=g) * 2 - 1
    for _ in range(20):
        x = x.detach().requires_grad_(True)
        d = procedural_sdf(x)
        (grad,) = torch.autograd.grad(d.sum(), x)
        x = x - d[:, None] * grad / grad.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    x = x.detach()
    return x[procedural_sdf(x).abs() < 1e-4].numpy()


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric mean nearest-neighbour distance between point sets (N, 3) and (M, 3)."""
    return 0.5 * (cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean())


class SDFField(Field):
    """A field whose density is a sharp sigmoid of the procedural SDF (200 inside, 0 outside) and whose
    colour is (x+1)/2 of the position: geometry known exactly."""

    name = "sdf"

    def __init__(self):
        super().__init__(torch.tensor(AABB), None)

    def density(self, positions):
        sdf = procedural_sdf(positions)
        return 200 * torch.sigmoid(-sdf / 0.005), (positions + 1) / 2

    def color(self, features, directions):
        return features.clamp(0, 1)


def sdf_model(grid_resolution: int):
    """An SDFField and a renderer whose occupancy grid has seen it once: (field, renderer)."""
    from nfields.renderers import VolumeRenderer

    field = SDFField()
    renderer = VolumeRenderer(field.aabb, near=0.5, grid_resolution=grid_resolution)
    renderer.update_occupancy(field, 0)
    return field, renderer


def install_fake_colmap(script: str, bin_dir: Path, monkeypatch) -> None:
    """Put an executable `colmap` running `script` (Python source) first on PATH for the test."""
    import os
    import stat

    bin_dir.mkdir()
    exe = bin_dir / "colmap"
    exe.write_text(script)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def density_and_gradients(field: Field, positions: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """The field's densities and features at positions (N, 3), and every parameter's gradient of a loss of both
    (None for a parameter the densities do not reach), by name."""
    sigma, features = field.density(positions)
    loss = (sigma * torch.linspace(0, 1, len(sigma))).sum() + features.square().sum()
    grads = torch.autograd.grad(loss, list(field.parameters()), allow_unused=True)
    names = [name for name, _ in field.named_parameters()]
    return {"sigma": sigma, "features": features, **dict(zip(names, grads))}


def assert_same_outputs(a: dict, b: dict, rtol: float, atol: float) -> None:
    """Two `density_and_gradients` results equal, entry by entry (None where the other is None)."""
    assert a.keys() == b.keys()
    for name in a:
        if a[name] is None or b[name] is None:
            assert a[name] is None and b[name] is None, name
            continue
        torch.testing.assert_close(a[name], b[name], rtol=rtol, atol=atol, msg=lambda m, name=name: f"{name}: {m}")
