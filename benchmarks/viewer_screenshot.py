"""A screenshot of the viewer on a run, from outside the training cameras: the render, the frustums with their
photos and the sparse points, as headless Chromium (Debian's package, driven by Playwright) shows the page.

    python benchmarks/viewer_screenshot.py RUN --out docs/viewer_real_scene.png [--crop X0 Y0 Z0 X1 Y1 Z1]

The camera is put behind and above the first training camera, at `--distance` times the cameras' mean
distance from the scene centre, looking at the centre. --crop: the tab's crop box is switched on with these
corners (the renderer's `crop`), as the "Crop box" panel would.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from nfields.viewer.ports import free_port
from nfields.viewer.rendering import viser_pose
from nfields.viewer.serve import open_run_viewer

CHROMIUM = "/usr/bin/chromium"


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenGL camera-to-world (4, 4) at `eye` looking at `target`."""
    z = (eye - target) / np.linalg.norm(eye - target)
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    c2w[:3, 3] = eye
    return c2w


def overview_pose(camera_to_world: torch.Tensor, distance: float, height: float) -> np.ndarray:
    positions = camera_to_world[:, :3, 3].double().numpy()
    radius = float(np.linalg.norm(positions, axis=1).mean())
    direction = positions[0] / np.linalg.norm(positions[0])
    eye = direction * distance * radius + np.array([0.0, 0.0, height * radius])
    return look_at(eye, np.zeros(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--out", required=True)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--distance", type=float, default=2.2)
    parser.add_argument("--elevation", type=float, default=1.2, help="height above the first camera, in radii")
    parser.add_argument("--crop", type=float, nargs=6, default=None)
    parser.add_argument("--max-height", type=int, default=None, help="the still frame's rows (default: the photos')")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from playwright.sync_api import sync_playwright

    viewer = open_run_viewer(args.run, port=free_port("127.0.0.1", 8650), verbose=False)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM,
                                        args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.goto(viewer.url)
            session = viewer.wait_for_client(120)
            assert session is not None, "the page never connected"
            if args.max_height is not None:
                session.max_height = args.max_height
            if args.crop is not None:
                session.crop = torch.tensor(args.crop, dtype=torch.float32)
            wxyz, position = viser_pose(overview_pose(viewer.cameras.camera_to_world, args.distance, args.elevation))
            with session.client.atomic():
                session.client.camera.wxyz, session.client.camera.position = wxyz, position
            session.view_changed()
            start = time.monotonic()
            frame = session.wait_for_frame(
                lambda f: f.kind == "still" and np.allclose(f.camera.camera_to_world[0, :3, 3].numpy(), position,
                                                            atol=1e-3), 900)
            assert frame is not None, "no still frame of the overview camera"
            print(f"still frame {frame.camera.width}x{frame.camera.height} after {time.monotonic() - start:.0f} s "
                  f"(render {frame.seconds:.1f} s)")
            page.wait_for_timeout(3000)  # the browser draws the new background and the thumbnails
            page.screenshot(path=args.out)
            print(f"wrote {args.out}")
            browser.close()
    finally:
        viewer.stop()


if __name__ == "__main__":
    main()
