"""Interactive web viewer (viser): `fields view RUN`, and live during `fields train --view`."""

from .live import LiveViewer
from .serve import serve_run, serve_until_interrupted
from .server import ViewerServer, access_hint
from .share import ComputeShare

__all__ = ["ComputeShare", "LiveViewer", "ViewerServer", "access_hint", "serve_run", "serve_until_interrupted"]
