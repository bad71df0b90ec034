"""Viewer pieces without a browser: camera conventions, interruptible frames, ports, compute sharing."""

import socket
import threading
import time

import numpy as np
import pytest
import torch
from geometry import SDFField

from nfields.datasets import make_procedural_scene
from nfields.errors import FieldsError
from nfields.renderers import VolumeRenderer
from nfields.viewer import ComputeShare, access_hint
from nfields.viewer.frames import camera_to_world, frame_size, pinhole, render_frame, viser_pose
from nfields.viewer.ports import free_port


def test_viser_pose_round_trip_and_axes():
    c2w = make_procedural_scene(3, 16).cameras.camera_to_world[1].double().numpy()
    wxyz, position = viser_pose(c2w)
    np.testing.assert_allclose(camera_to_world(wxyz, position), c2w, atol=1e-6)
    # viser (OpenCV) looks down its +z: the same world direction as the OpenGL camera's -z.
    from scipy.spatial.transform import Rotation

    opencv_forward = Rotation.from_quat([*wxyz[1:], wxyz[0]]).as_matrix()[:, 2]
    np.testing.assert_allclose(opencv_forward, -c2w[:3, 2], atol=1e-6)


def test_frame_size_keeps_aspect_and_budget():
    w, h = frame_size(16 / 9, 100_000, 1000)
    assert abs(w / h - 16 / 9) < 0.02 and 90_000 < w * h < 110_000
    assert frame_size(1.0, 1e9, 200) == (200, 200)


@pytest.fixture(scope="module")
def model():
    field = SDFField()
    renderer = VolumeRenderer(field.aabb, near=0.5, grid_resolution=32)
    renderer.update_occupancy(field, 0)
    return field, renderer


def test_frame_matches_the_renderer_and_stops_when_interrupted(model):
    field, renderer = model
    c2w = make_procedural_scene(2, 16).cameras.camera_to_world[0].numpy()
    camera = pinhole(c2w, 0.8, 24, 20)
    image = render_frame(field, renderer, camera, "RGB", ComputeShare(), rows_per_chunk=3)
    rays = camera.image_rays(0)
    reference = renderer.render_chunked(field, rays.origins, rays.directions, torch.ones(3)).rgb.view(20, 24, 3)
    assert np.abs(image.astype(int) - (reference.clamp(0, 1).numpy() * 255 + 0.5).astype(int)).max() <= 1
    assert image.std() > 10  # the scene, not a blank frame
    calls = []
    assert render_frame(field, renderer, camera, "RGB", ComputeShare(), rows_per_chunk=3,
                        interrupted=lambda: calls.append(1) or len(calls) > 2) is None
    assert len(calls) == 3  # stopped between chunks, before finishing the 7 chunks
    depth = render_frame(field, renderer, camera, "Depth", ComputeShare())
    opacity = render_frame(field, renderer, camera, "Opacity", ComputeShare())
    assert depth.shape == opacity.shape == (20, 24, 3) and not np.array_equal(depth, opacity)


def test_port_in_use_picks_the_next_free_one():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        assert free_port("127.0.0.1", taken) > taken
        with pytest.raises(FieldsError, match=f"--port {taken}: this port and the 0 after it are in use"):
            free_port("127.0.0.1", taken, attempts=1)


def test_access_hint_is_local_by_default():
    assert "ssh -N -L 8080:localhost:8080" in access_hint("127.0.0.1", 8080)
    assert "warning" in access_hint("0.0.0.0", 8080)


def test_training_and_rendering_alternate_within_the_share():
    share = ComputeShare(viewer_share=0.25)
    share.set_training(True)
    running, overlaps, stop = [], [], threading.Event()

    def work(kind, seconds):
        while not stop.is_set():
            with share.train_step() if kind == "train" else share.render_chunk():
                running.append(kind)
                overlaps.append(len(running) > 1)
                time.sleep(seconds)
                running.remove(kind)

    threads = [threading.Thread(target=work, args=(kind, 0.01)) for kind in ("train", "render")]
    for t in threads:
        t.start()
    time.sleep(1.0)
    stop.set()
    share.set_training(False)
    for t in threads:
        t.join(2)
    assert not any(overlaps)
    fraction = share.render_seconds / (share.render_seconds + share.train_seconds)
    assert 0.15 < fraction < 0.3, fraction  # neither starves; the viewer keeps to its quarter
