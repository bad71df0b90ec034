"""Test-only writers of the capture formats, so tests build their inputs from known poses."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from nfields.datasets.cameras import orbit_poses
from nfields.datasets.colmap import MODEL_IDS

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
