"""Viewer pieces without a browser: camera conventions, interruptible frames, ports, compute sharing."""

import socket
import threading
import time

import numpy as np
import pytest
import torch
from support import sdf_model

from nfields.datasets import make_procedural_scene
from nfields.errors import FieldsError
from nfields.viewer import ComputeShare, access_hint
from nfields.viewer.ports import free_port
from nfields.viewer.rendering import camera_to_world, frame_size, pinhole, render_frame, viser_pose


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
    return sdf_model(grid_resolution=32)


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


def test_viewer_on_a_taken_port_moves_on_and_says_so(model):
    from nfields.viewer import ViewerServer

    cameras = make_procedural_scene(4, 16).cameras
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        viewer = ViewerServer(*model, cameras, "sdf", port=taken, verbose=False)
        try:
            assert viewer.port != taken
            assert viewer.messages[0] == f"port {taken} is in use; serving on port {viewer.port} instead"
            assert f"http://localhost:{viewer.port}" in viewer.messages[1]
        finally:
            viewer.stop()


def test_cli_view_of_a_missing_run_is_one_line(tmp_path, capsys):
    from nfields.cli import main

    assert main(["view", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"fields view: error: {tmp_path / 'nope'}: run folder does not exist"


def test_live_viewer_follows_training(procedural_dir, tmp_path):
    from nfields.engine.config import TrainConfig
    from nfields.engine.trainer import train
    from nfields.viewer import LiveViewer

    monitor = LiveViewer(port=free_port("127.0.0.1", 8650), refresh_seconds=0.0, verbose=False)
    try:
        result = train(TrainConfig(scene=str(procedural_dir), field="hashgrid", steps=12, output=str(tmp_path / "run"),
                                   samples_per_step=1 << 11, grid_resolution=32, eval_every=1e9, eval_pixels=256,
                                   final_eval_views=1), progress=False, monitor=monitor)
        assert result.step == 12
        assert monitor.server.status.content.startswith("**hashgrid** · step 12")
        assert monitor.share.train_seconds > 0 and not monitor.share._training
    finally:
        monitor.stop()


def test_moving_frames_fit_the_time_budget():
    from nfields.viewer.rendering import MIN_MOVING_HEIGHT, moving_frame_size

    assert moving_frame_size(1.0, 400, None, 0.0, 1 / 15) == (64, 64)  # nothing measured yet
    w, h = moving_frame_size(1.0, 400, 1e-6, 0.02, 1 / 15)  # (1/15 - 0.02) s at 1 us per pixel
    assert abs(w * h - 46_667) < 1000
    assert moving_frame_size(1.0, 400, 1e-9, 0.0, 1 / 15) == (400, 400)  # capped at full resolution
    assert moving_frame_size(2.0, 400, 1e-3, 0.5, 1 / 15)[1] == MIN_MOVING_HEIGHT  # too slow: the floor


class _FakeClient:
    """What a ClientSession uses of a viser client: its camera and a background image sink."""

    def __init__(self, c2w):
        from types import SimpleNamespace

        wxyz, position = viser_pose(c2w)
        self.client_id = 1
        self.camera = SimpleNamespace(wxyz=wxyz, position=position, fov=0.8, aspect=1.0, image_height=128)
        self.sent = []
        self.scene = SimpleNamespace(set_background_image=lambda image, **kw: self.sent.append(image))


def test_session_sends_a_quick_frame_then_a_full_one_and_a_move_interrupts_it(model):
    from contextlib import contextmanager

    from nfields.viewer.session import ClientSession

    class SlowShare(ComputeShare):
        chunks = 0

        @contextmanager
        def render_chunk(self):
            SlowShare.chunks += 1
            time.sleep(0.05)
            yield

    poses = make_procedural_scene(4, 16).cameras.camera_to_world.double().numpy()
    client = _FakeClient(poses[0])
    session = ClientSession(client, *model, SlowShare(), max_height=128, still_after=0.05)
    try:  # a new session renders at once
        still = session.wait_for_frame(lambda f: f.kind == "still", 60)
        assert still is not None and (still.camera.width, still.camera.height) == (128, 128)
        assert session.frames_sent == 2 and len(client.sent) == 2  # one quick frame, then the full one
        assert client.sent[0].shape[:2] == (64, 64)  # the quick frame: 64 rows before anything is measured

        # Move while the next full frame renders (128 rows in two chunks of 64).
        client.camera.position = poses[1][:3, 3]
        client.camera.wxyz = viser_pose(poses[1])[0]
        session.view_changed()
        session.wait_for_frame(lambda f: f is not still and f.kind == "moving", 60)
        start_chunks = SlowShare.chunks
        while SlowShare.chunks < start_chunks + 1:  # the full frame for poses[1] has started
            time.sleep(0.01)
        client.camera.position = poses[2][:3, 3]
        client.camera.wxyz = viser_pose(poses[2])[0]
        session.view_changed()
        final = session.wait_for_frame(
            lambda f: f.kind == "still" and np.allclose(f.camera.camera_to_world[0, :3, 3].numpy(), poses[2][:3, 3],
                                                        atol=1e-5), 60)
        assert final is not None
        kinds = session.frames_sent
        # No full frame of poses[1] was sent: moving(0), still(0), moving(1), moving(2), still(2).
        assert kinds == 5, kinds
    finally:
        session.close()
    assert not session.alive
