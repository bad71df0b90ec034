"""The viewer server: viser serves the page, each tab gets a ClientSession, training cameras are frustums."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import viser

from ..datasets import Cameras
from ..engine.evaluation import view_indices
from ..errors import FieldsError
from ..fields import Field
from ..outputs.camera_path import PATH_FORMATS, CameraPath, Keyframe, save_in_run
from ..renderers import VolumeRenderer
from .crop_box import CropBox
from .ports import free_port
from .rendering import OUTPUTS, camera_to_world, viser_pose
from .scene_layers import SceneLayers
from .session import ClientSession
from .share import ComputeShare

MAX_FRUSTUMS = 300
THUMBNAIL_QUALITY = 80  # JPEG
POINT_SIZE = 0.004  # of the scene box's longest side


def access_hint(host: str, port: int) -> str:
    """How to open the viewer, locally or through an SSH tunnel."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return (f"viewer: http://localhost:{port}  (bound to {host}: this machine only; from another machine "
                f"tunnel it with `ssh -N -L {port}:localhost:{port} USER@THIS_HOST` and open http://localhost:{port})")
    return (f"viewer: http://{host}:{port}  (warning: bound to {host}, reachable by anyone who can reach this "
            "machine; use the default --host 127.0.0.1 and an SSH tunnel to keep it private)")


class ViewerServer:
    """Serves an interactive view of `field` in the browser.

    cameras: the training cameras (the view starts at the first; all are drawn as clickable frustums).
    share: how renders share the machine with a trainer (see share.py); a fresh one when None.
    layers: called once, when the first tab connects, for the sparse points and the frustums' thumbnails
    (None: neither is drawn). draw_cameras: False when `cameras` is only a starting view, not training cameras.
    """

    def __init__(self, field: Field, renderer: VolumeRenderer, cameras: Cameras, backbone: str,
                 host: str = "127.0.0.1", port: int = 8080, share: ComputeShare | None = None,
                 run_folder: Path | None = None, step: int | None = None, psnr: float | None = None,
                 verbose: bool = True, layers: Callable[[], SceneLayers] | None = None,
                 draw_cameras: bool = True):
        self.field, self.renderer, self.cameras = field, renderer, cameras
        self.verbose, self.draw_cameras = verbose, draw_cameras
        self._layers_loader, self._layers, self._layers_lock = layers, None, threading.Lock()
        self.share = share or ComputeShare()
        self.run_folder = run_folder or Path(".")
        self.backbone, self.step, self.psnr = backbone, step, psnr
        self.sessions: dict[int, ClientSession] = {}
        self._lock = threading.Lock()
        self._connected = threading.Condition(self._lock)
        self.requested_port = port
        self.port = free_port(host, port)
        self.host = host
        self.messages = []
        if self.port != port:
            self.messages.append(f"port {port} is in use; serving on port {self.port} instead")
        self.messages.append(access_hint(host, self.port))
        self.started_at = time.perf_counter()
        self.server = viser.ViserServer(host=host, port=self.port, label="fields", verbose=False)
        self.port = self.server.get_port()
        self._setup_scene()
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)
        if verbose:
            for line in self.messages:
                print(line, flush=True)

    # ----- scene -----
    @property
    def fov_y(self) -> float:
        return 2 * math.atan(self.cameras.height / (2 * float(self.cameras.focal[0, 1])))

    def _setup_scene(self) -> None:
        start = self.cameras.camera_to_world[0].double().numpy()
        eye, forward = start[:3, 3], -start[:3, 2]
        self.server.initial_camera.position = tuple(eye)
        self.server.initial_camera.look_at = tuple(eye + forward * max(float(-eye @ forward), 0.1))
        self.server.initial_camera.up = (0.0, 0.0, 1.0)
        self.server.initial_camera.fov = self.fov_y
        self.status = self.server.gui.add_markdown(self._status_text())

    def _status_text(self) -> str:
        parts = [f"**{self.backbone}**"]
        if self.step is not None:
            parts.append(f"step {self.step}")
        if self.psnr is not None:
            parts.append(f"val PSNR {self.psnr:.2f} dB")
        return " · ".join(parts)

    def set_training_status(self, step: int, psnr: float | None) -> None:
        """Show the trainer's progress and have every tab render the new weights."""
        self.step, self.psnr = step, psnr if psnr is not None else self.psnr
        self.status.content = self._status_text()
        for session in list(self.sessions.values()):
            session.field_changed()

    def layers(self) -> SceneLayers:
        """The sparse points and thumbnails, loaded on first use (their notes printed once)."""
        with self._layers_lock:
            if self._layers is None:
                self._layers = self._layers_loader() if self._layers_loader else SceneLayers()
                if self.verbose:
                    for line in self._layers.notes:
                        print(line, flush=True)
            return self._layers

    def _add_frustums(self, client, thumbnails: list[np.ndarray] | None) -> list[tuple]:
        """Clickable frustums of (at most MAX_FRUSTUMS) training cameras with their photos: (handle, thumbnail)."""
        positions = self.cameras.camera_to_world[:, :3, 3]
        scale = 0.06 * float(positions.norm(dim=-1).mean())
        handles = []
        for i in view_indices(len(self.cameras), MAX_FRUSTUMS) if self.draw_cameras else []:
            c2w = self.cameras.camera_to_world[i].double().numpy()
            wxyz, position = viser_pose(c2w)
            thumbnail = thumbnails[i] if thumbnails is not None else None
            frustum = client.scene.add_camera_frustum(
                f"/training_cameras/{i}", fov=self.fov_y, aspect=self.cameras.width / self.cameras.height,
                scale=scale, thickness=1.5, thickness_units="screen", wxyz=wxyz, position=position,
                color=(40, 90, 200), image=thumbnail, format="jpeg", jpeg_quality=THUMBNAIL_QUALITY)
            frustum.on_click(lambda event, c2w=c2w: self._jump(event.client, c2w))
            handles.append((frustum, thumbnail))
        return handles

    def _add_points(self, client, layers: SceneLayers) -> None:
        """The sparse points with a toggle and a size slider (nothing where the capture has none)."""
        if layers.points is None:
            return
        side = float((self.renderer.aabb[3:] - self.renderer.aabb[:3]).max())
        size = POINT_SIZE * side
        cloud = client.scene.add_point_cloud("/sparse_points", layers.points, layers.colors, point_size=size,
                                             point_shape="rounded")
        with client.gui.add_folder("Sparse points", expand_by_default=False):
            show = client.gui.add_checkbox("Show points", initial_value=True)
            slider = client.gui.add_slider("Point size", min=0.0, max=10 * size, step=size / 20,
                                           initial_value=size)
            client.gui.add_markdown(f"{len(layers.points):,} points")
        show.on_update(lambda _: setattr(cloud, "visible", show.value))
        slider.on_update(lambda _: setattr(cloud, "point_size", slider.value))

    @staticmethod
    def _jump(client, c2w: np.ndarray) -> None:
        wxyz, position = viser_pose(c2w)
        with client.atomic():
            client.camera.wxyz = wxyz
            client.camera.position = position

    # ----- clients -----
    def _connect(self, client) -> None:
        session = ClientSession(client, self.field, self.renderer, self.share, max_height=self.cameras.height,
                                ndc=self.cameras.ndc)
        layers = self.layers()
        frustums = self._add_frustums(client, layers.thumbnails)
        self._add_controls(client, session, frustums)
        self._add_points(client, layers)
        self._add_crop_box(client, session)
        client.camera.on_update(lambda _: session.view_changed())
        with self._lock:
            self.sessions[client.client_id] = session
            self._connected.notify_all()

    def _disconnect(self, client) -> None:
        with self._lock:
            session = self.sessions.pop(client.client_id, None)
        if session is not None:
            session.close()

    def _add_crop_box(self, client, session: ClientSession) -> CropBox | None:
        if self.cameras.ndc is not None:  # the renderer's space is NDC there, not the scene's
            with client.gui.add_folder("Crop box", expand_by_default=False):
                client.gui.add_markdown("Not for forward-facing scenes (rendered in NDC).")
            return None
        return CropBox(client, session, self.renderer.aabb.cpu().double().numpy())

    def _add_controls(self, client, session: ClientSession, frustums: list[tuple]) -> None:
        gui = client.gui
        output = gui.add_dropdown("Output", OUTPUTS, initial_value="RGB")
        resolution = gui.add_slider("Max resolution", min=32, max=2048, step=16,
                                    initial_value=self.cameras.height)
        show = gui.add_checkbox("Training cameras", initial_value=True)
        photos = gui.add_checkbox("Photos on cameras", initial_value=True,
                                  disabled=not any(thumbnail is not None for _, thumbnail in frustums))
        stats = gui.add_markdown("frame: -")

        @output.on_update
        def _(_) -> None:
            session.output = output.value
            session.view_changed()

        @resolution.on_update
        def _(_) -> None:
            session.max_height = int(resolution.value)
            session.view_changed()

        @show.on_update
        def _(_) -> None:
            for frustum, _thumbnail in frustums:
                frustum.visible = show.value

        @photos.on_update
        def _(_) -> None:
            for frustum, thumbnail in frustums:
                frustum.image = thumbnail if photos.value else None

        session.on_frame = lambda f: setattr(
            stats, "content", f"frame: {f.camera.width}x{f.camera.height} {f.kind}, {1000 * f.seconds:.0f} ms")
        self._add_path_editor(client)

    def _add_path_editor(self, client) -> None:
        gui = client.gui
        keyframes: list[Keyframe] = []
        with gui.add_folder("Camera path", expand_by_default=False):
            add = gui.add_button("Add keyframe (current view)")
            clear = gui.add_button("Clear keyframes")
            frames = gui.add_number("Frames", initial_value=120, min=2, step=1)
            fps = gui.add_number("FPS", initial_value=24, min=1, step=1)
            name = gui.add_text("File", initial_value="camera_path.json")
            path_format = gui.add_dropdown("Format", PATH_FORMATS, initial_value=PATH_FORMATS[0])
            save = gui.add_button("Save path")
            info = gui.add_markdown("0 keyframes")

        @add.on_click
        def _(_) -> None:
            keyframes.append(Keyframe(camera_to_world(client.camera.wxyz, client.camera.position),
                                      math.degrees(client.camera.fov)))
            info.content = f"{len(keyframes)} keyframes"

        @clear.on_click
        def _(_) -> None:
            keyframes.clear()
            info.content = "0 keyframes"

        @save.on_click
        def _(_) -> None:
            if len(keyframes) < 2:
                info.content = f"{len(keyframes)} keyframes: add at least 2 to save"
                return
            camera_path = CameraPath(list(keyframes), self.cameras.width, self.cameras.height, int(fps.value),
                                     int(frames.value))
            try:
                path = save_in_run(camera_path, self.run_folder, name.value, path_format.value)
            except FieldsError as err:
                info.content = str(err)
                return
            info.content = (f"{len(keyframes)} keyframes saved to {path}; render: "
                            f"`fields render {self.run_folder} --path {path}`")

    # ----- lifetime -----
    def wait_for_client(self, timeout: float) -> ClientSession | None:
        with self._lock:
            self._connected.wait_for(lambda: bool(self.sessions), timeout)
            return next(iter(self.sessions.values()), None)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        for session in list(self.sessions.values()):
            session.close()
        self.sessions.clear()
        self.server.stop()
