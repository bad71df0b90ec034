"""Volume rendering for any Field. Knows the Field interface, never a concrete backbone."""

from .occupancy import OccupancyGrid
from .render_ops import RenderOps, ops_for
from .torch_ops import PackedSamples
from .volume import RenderOutput, VolumeRenderer

__all__ = ["OccupancyGrid", "PackedSamples", "RenderOps", "RenderOutput", "VolumeRenderer", "ops_for"]
