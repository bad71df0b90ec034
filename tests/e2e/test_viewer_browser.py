"""The viewer in a real browser: headless Chromium (Debian's package) driven by Playwright.

The page connects, the camera is dragged with the mouse, and the frame that arrives is checked against
the renderer's own output for the camera the server received, both as sent and as shown on the page.
"""

import io
import shutil
import time

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from nfields.viewer.ports import free_port
from nfields.viewer.serve import open_run_viewer

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"{CHROMIUM} is absent: `apt-get install chromium` "
                       "(.ci/run installs it)"),
]
VIEW_W, VIEW_H = 640, 480
# Rows of the page clear of the control panel (top right), notifications (top left) and the axes gizmo.
ROWS = slice(240, 420)


def reference_frame(viewer, camera) -> np.ndarray:
    """The renderer's own RGB (H, W, 3) uint8 for `camera` over white."""
    rays = camera.image_rays(0)
    out = viewer.renderer.render_chunked(viewer.field, rays.origins, rays.directions, torch.ones(3))
    return (out.rgb.clamp(0, 1).view(camera.height, camera.width, 3).numpy() * 255 + 0.5).astype(np.uint8)


def as_page(image: np.ndarray) -> np.ndarray:
    """An image stretched to the page's viewport as the browser draws it (bilinear), float in [0, 1]."""
    t = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    return torch.nn.functional.interpolate(t, size=(VIEW_H, VIEW_W), mode="bilinear")[0].permute(1, 2, 0).numpy()


def screenshot(page) -> np.ndarray:
    return iio.imread(io.BytesIO(page.screenshot()))[..., :3].astype(np.float32) / 255


def settled_frame(session, quiet: float = 1.0, timeout: float = 120):
    """The last frame once the camera has come to rest: a still frame and no new frame for `quiet` seconds.

    viser's camera controls keep gliding for a moment after the mouse is released, so the first still frame
    after a drag need not be the one the page ends up showing.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sent = session.frames_sent
        time.sleep(quiet)
        frame = session.last_frame
        if session.frames_sent == sent and frame is not None and frame.kind == "still":
            return frame
    return None


def shown_error(page, expected: np.ndarray, timeout: float = 10) -> tuple[np.ndarray, float]:
    """The page's pixels and their mean error against `expected`, polled until the browser has drawn it."""
    deadline = time.monotonic() + timeout
    while True:
        shown = screenshot(page)[ROWS]
        error = float(np.abs(shown - as_page(expected)[ROWS]).mean())
        if error < 0.04 or time.monotonic() > deadline:
            return shown, error
        time.sleep(0.5)


def test_browser_connects_moves_and_shows_the_scene(trained_procedural_run):
    from playwright.sync_api import sync_playwright

    viewer = open_run_viewer(trained_procedural_run, port=free_port("127.0.0.1", 8600), verbose=False)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM,
                                        args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
            page = browser.new_page(viewport={"width": VIEW_W, "height": VIEW_H})
            page.goto(viewer.url)
            # Connected: the server has this tab's session and its camera, and a full frame went out.
            session = viewer.wait_for_client(60)
            assert session is not None, "the page never connected"
            first = session.wait_for_frame(lambda f: f.kind == "still", 120)
            assert first is not None, "no full-resolution frame after connecting"
            page.wait_for_function("Array.from(document.querySelectorAll('canvas')).some(c => c.width > 100)")
            page.get_by_label("Training cameras").uncheck()  # frustums off: the canvas shows only the render

            sent_before = session.frames_sent
            page.mouse.move(320, 300)
            page.mouse.down()
            page.mouse.move(470, 280, steps=15)
            page.mouse.up()
            start_pose = first.camera.camera_to_world
            moved = session.wait_for_frame(
                lambda f: f.kind == "still" and not torch.allclose(f.camera.camera_to_world, start_pose, atol=1e-3),
                120)
            assert moved is not None, "no new frame after dragging the camera"
            assert session.frames_sent > sent_before + 1  # quick frame(s) while moving, then the full one
            moved = settled_frame(session)
            assert moved is not None, "the camera never came to rest after the drag"
            turned = torch.dot(moved.camera.camera_to_world[0, :3, 2], first.camera.camera_to_world[0, :3, 2])
            assert turned < 0.995  # the drag turned the view by more than 5 degrees

            # As sent: the renderer's own output for the camera the server received.
            expected = reference_frame(viewer, moved.camera)
            assert np.abs(moved.image.astype(int) - expected.astype(int)).max() <= 1
            assert moved.image.std() > 20  # the scene, not a blank frame
            # As shown: the page's pixels (JPEG, stretched by the browser) against the same render.
            shown, error = shown_error(page, expected)
            error_before_move = np.abs(shown - as_page(first.image)[ROWS]).mean()
            error_blank = np.abs(shown - 1.0).mean()
            print(f"page vs render: {error:.4f}; vs the frame before the move: {error_before_move:.4f}; "
                  f"vs blank: {error_blank:.4f}")
            # Measured: 0.012 against the render, 0.22 against the frame before the move, 0.27 against blank.
            assert error < 0.04, error  # JPEG and the browser's filtering
            assert error < 0.3 * error_before_move and error < 0.2 * error_blank, (error, error_before_move,
                                                                                    error_blank)

            # Keyboard fly: W moves the camera forward, towards the scene.
            distance = np.linalg.norm(session.client.camera.position)
            page.keyboard.down("w")
            page.wait_for_timeout(400)
            page.keyboard.up("w")
            page.wait_for_timeout(300)
            assert np.linalg.norm(session.client.camera.position) < distance - 0.1

            # A second tab gets its own session; closing it frees it.
            second = browser.new_page(viewport={"width": 320, "height": 240})
            second.goto(viewer.url)
            deadline = time.monotonic() + 60
            while len(viewer.sessions) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(viewer.sessions) == 2
            other = next(s for s in viewer.sessions.values() if s is not session)
            assert other.wait_for_frame(lambda f: True, 60) is not None
            second.close()
            while (len(viewer.sessions) > 1 or other.alive) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert list(viewer.sessions.values()) == [session] and not other.alive
            browser.close()
    finally:
        viewer.stop()
