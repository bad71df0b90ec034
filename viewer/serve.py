"""`fields view RUN`: serve a trained run until Ctrl-C."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import torch

from ..datasets import Cameras, DatasetError
from ..engine.runs import load_run
from ..engine.scenes import load_scene
from ..errors import FieldsError
from .rendering import pinhole
from .scene_layers import load_layers
from .server import ViewerServer


def open_run_viewer(run_folder, host: str = "127.0.0.1", port: int = 8080, device: str = "auto",
                    data_root: str | None = None, verbose: bool = True) -> ViewerServer:
    """A ViewerServer over a trained run (its training cameras and their photos, the capture's sparse points,
    backbone, step and final PSNR). The cameras, photos and points are read from the run's recorded data
    path; where that is gone, the view starts outside the scene box without them, and one line says so."""
    run = load_run(run_folder, device)
    try:
        scene = load_scene(run.config, "train", data_root)
        cameras, images = scene.cameras, scene.images
    except (DatasetError, FieldsError) as err:
        if run.config.scene_type == "forward-facing":  # its NDC frame comes from the cameras
            raise
        cameras, images = outside_view(run.renderer.aabb.cpu()), None
        print(f"viewer: the run's scene data cannot be read ({err}): no training cameras, photos or sparse "
              "points; the view starts outside the scene box", flush=True)
    metrics = run.folder / "metrics.json"
    psnr = None
    if metrics.is_file():
        psnr = json.loads(metrics.read_text()).get("psnr")
    return ViewerServer(run.field, run.renderer, cameras, run.checkpoint["field_name"], host, port,
                        run_folder=run.folder, step=int(run.checkpoint["step"]), psnr=psnr, verbose=verbose,
                        layers=(lambda: load_layers(run.config, images, data_root)) if images is not None else None,
                        draw_cameras=images is not None)


def outside_view(aabb: torch.Tensor, size: int = 512, fov_y: float = math.radians(50)) -> Cameras:
    """One size x size camera looking at the box (6,)'s centre from outside it, from -y and above (z up)."""
    centre, side = 0.5 * (aabb[:3] + aabb[3:]), float((aabb[3:] - aabb[:3]).max())
    eye = centre.double().numpy() + side * np.array([0.0, -1.2, 0.6])
    back = eye - centre.double().numpy()  # OpenGL cameras look down -z
    z = back / np.linalg.norm(back)
    x = np.cross([0.0, 0.0, 1.0], z)
    x /= np.linalg.norm(x)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    c2w[:3, 3] = eye
    return pinhole(c2w, fov_y, size, size)


def serve_run(run_folder, host: str = "127.0.0.1", port: int = 8080, device: str = "auto",
              data_root: str | None = None) -> None:
    viewer = open_run_viewer(run_folder, host, port, device, data_root)
    print("Ctrl-C to stop", flush=True)
    serve_until_interrupted(viewer)


def serve_until_interrupted(viewer) -> None:
    """Keep the process (and the viewer's threads) alive until Ctrl-C, then stop the viewer."""
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()
