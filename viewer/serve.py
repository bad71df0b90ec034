"""`fields view RUN`: serve a trained run until Ctrl-C."""

from __future__ import annotations

import json
import time

from ..engine.runs import load_run
from ..engine.scenes import load_scene
from .server import ViewerServer


def open_run_viewer(run_folder, host: str = "127.0.0.1", port: int = 8080, device: str = "auto",
                    data_root: str | None = None, verbose: bool = True) -> ViewerServer:
    """A ViewerServer over a trained run (its training cameras, backbone, step and final PSNR)."""
    run = load_run(run_folder, device)
    cameras = load_scene(run.config, "train", data_root).cameras
    metrics = run.folder / "metrics.json"
    psnr = None
    if metrics.is_file():
        psnr = json.loads(metrics.read_text()).get("psnr")
    return ViewerServer(run.field, run.renderer, cameras, run.checkpoint["field_name"], host, port,
                        run_folder=run.folder, step=int(run.checkpoint["step"]), psnr=psnr, verbose=verbose)


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
