"""Interactive web viewer (viser): `fields view RUN`, and live during `fields train --view`."""

from .serve import serve_run
from .server import ViewerServer, access_hint
from .share import ComputeShare
from .live import LiveViewer

__all__ = ["ComputeShare", "LiveViewer", "ViewerServer", "access_hint", "serve_run"]
