"""Posing a sequence again when its pose model breaks into pieces.

pose_checks.pose_breaks finds where neighbouring frames of a sequence jump far and turn sharply: COLMAP matched
frames far apart in time wrongly (repeating texture such as floor tiles) and registered stretches of frames in the
wrong place. Posing the frames again with each matched to its next few frames only (colmap_plan's `neighbours`
matcher) cannot make such a join: on the shared beer capture, whose author's model and every other matcher break
at three places, it poses 71 of 71 frames in one piece. The new model replaces the broken one only when it has no
break and poses at least MIN_REPOSED of the images; otherwise the capture keeps its poses, with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import Capture, DatasetError
from ..colmap import colmap_capture, read_colmap_model
from ..llff import list_images
from ..paths import capture_files
from ..pose_checks import pose_breaks
from ..scene_type import decide, normalise_as
from .colmap_run import colmap_backend, run_colmap

MIN_REPOSED = 0.9  # share of the images the new model must pose to replace the broken one


@dataclass
class PoseRepair:
    """What became of a capture whose poses break: `capture` is the one to use (posed again, or the original)."""

    capture: Capture
    model_dir: Path | None  # the new COLMAP model; None: the original poses are kept
    note: str  # one line for the user: what was done and why


def _names(capture: Capture) -> list[str]:
    return [p.name for p in capture.image_paths]


def _not_reposable(capture: Capture) -> str | None:
    """Why the capture's images cannot simply be posed again, or None."""
    if capture.mask_paths is not None or capture.depth_paths is not None:
        return "it has masks or depth maps, which a new pose model would not carry"
    if len({p.parent for p in capture.image_paths}) != 1:
        return "its images lie in several folders"
    return None


def repair_broken_poses(capture: Capture, work: Path, scene_type: str = "auto", repose: bool = True,
                        progress: bool = True) -> PoseRepair | None:
    """None when the capture's poses have no break; else a PoseRepair: the images of the capture's folder posed
    again with the `neighbours` matcher into work/ (unless not `repose`) when that gives a model without breaks
    that poses at least MIN_REPOSED of the capture's images, else the capture as it is."""
    breaks = pose_breaks(capture.camera_to_world, _names(capture))
    if not breaks:
        return None
    where = f"the poses jump between neighbouring frames at {len(breaks)} place(s) ({'; '.join(breaks)})"
    kept = (": the pose model is likely broken into pieces registered inconsistently (repeating texture such as "
            "floor tiles misleads COLMAP), and training on it gives ghosts and poor held-out views")
    why_not = "--keep-poses" if not repose else _not_reposable(capture)
    if why_not is None:
        try:
            colmap_backend()
        except DatasetError as err:
            why_not = str(err).splitlines()[0]
    if why_not is not None:
        return PoseRepair(capture, None, f"{where}{kept}. Not posed again: {why_not}.")
    image_dir = capture.image_paths[0].parent
    capture_files(image_dir, list_images(image_dir), image_dir)  # COLMAP reads every image there: none from outside
    model_dir = run_colmap(image_dir, work, matcher="neighbours", progress=progress)
    reposed = colmap_capture(read_colmap_model(model_dir), image_dir, capture.name)
    new_breaks = pose_breaks(reposed.camera_to_world, _names(reposed))
    posed = f"{len(reposed)} of {len(capture)} images"
    if new_breaks or len(reposed) < MIN_REPOSED * len(capture):
        problem = f"it jumps too ({'; '.join(new_breaks)})" if new_breaks else f"it posed only {posed}"
        return PoseRepair(capture, None, f"{where}{kept}. Posed again with each frame matched to its next few only, "
                                         f"but {problem}: the capture's own poses are kept.")
    return PoseRepair(normalise_as(reposed, decide(reposed, scene_type), model_dir), model_dir,
                      f"{where}, a pose model broken into pieces (repeating texture such as floor tiles misleads "
                      f"COLMAP): posed the images again with each frame matched to its next few only: {posed}, "
                      "no jumps (--keep-poses keeps the capture's own poses)")
