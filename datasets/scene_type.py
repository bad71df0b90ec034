"""What kind of scene a capture is, from its camera geometry (and sparse points): forward-facing, object, unbounded.

- forward-facing: every camera looks about the same way and moves little along that direction (LLFF's
  fern, trex, flower: view directions within 10-20 degrees of their mean). Trained in NDC, which needs the
  depth of the nearest content: LLFF's per-image bounds, else the sparse points' depths.
- object: the cameras surround a central subject: their optical axes meet at a point in front of them
  (mip-NeRF 360's scenes, a hand-held capture around a cup). Centred on that point; the background beyond the
  cameras is contracted.
- unbounded: anything else (cameras looking outward, a walk-through). Centred on the cameras.

The file format says nothing of this: mip-NeRF 360's scenes and many phone captures ship LLFF's
poses_bounds.npy without being forward-facing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .capture import Capture, normalise_captured
from .dataset_error import DatasetError
from .llff import normalise_forward_facing

SCENE_TYPES = ("forward-facing", "object", "unbounded")
SCENE_TYPE_CHOICES = ("auto",) + SCENE_TYPES

# Forward-facing: the 90th percentile of the angles between the view directions and their mean. LLFF's
# forward-facing scenes stay within 10-20 degrees; 360-degree captures reach 90 and more, hand-held captures
# around an object 60-80 (the beer capture: 62).
FORWARD_SPREAD_DEG = 40.0
# Forward-facing: the cameras' travel along the mean view direction, as a fraction of the nearest content
# depth. NDC places one near plane for every camera: a capture walking into its scene does not fit one.
FORWARD_TRAVEL = 0.5
# Object: the point nearest every optical axis lies in front of at least this share of the cameras...
OBJECT_IN_FRONT = 0.9
# ...and the median camera looks within this angle of it (a ring looking at its centre: 0; the beer: 5).
OBJECT_MISS_DEG = 25.0
# Axes whose directions barely differ meet nowhere: the smallest eigenvalue of mean(I - d d^T) below this.
PARALLEL_EIGEN = 0.02
MAX_POINTS = 20000  # sparse points used for depths (a regular subsample of larger models)
MIN_POINTS_SEEN = 10  # points a camera must see for its own near/far depths
DEPTH_PERCENTILES = (0.1, 99.9)  # near and far depth of a camera's points, as LLFF's imgs2poses takes them


@dataclass
class Geometry:
    """What classify measures. Angles in degrees; distances in the capture's units unless said otherwise."""

    n: int
    spread_p90: float  # view directions' angle from their mean, 90th percentile
    spread_max: float
    mean_direction: np.ndarray  # (3,) unit mean view direction
    travel: float  # extent of the camera centres along the mean view direction
    radius: float  # mean distance of the camera centres from their centroid
    focus: np.ndarray | None  # the point nearest every optical axis (None: the axes are parallel)
    in_front: int  # cameras with the focus in front of them
    miss_deg: float  # median angle between a camera's view direction and the direction to the focus
    focus_distance: float  # median distance from the cameras to the focus along their axes, in camera radii
    depths: np.ndarray | None  # (N, 2) near, far depth per image (LLFF bounds, else sparse points), or None
    depth_source: str  # "LLFF bounds", "sparse points" or ""


@dataclass
class SceneType:
    kind: str  # one of SCENE_TYPES
    reason: str  # one line, with the measured numbers
    geometry: Geometry | None = None


def view_directions(c2w: np.ndarray) -> np.ndarray:
    """(N, 3) unit view directions of OpenGL camera-to-world matrices (cameras look down their -z)."""
    d = -c2w[:, :3, 2]
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def axes_focus(origins: np.ndarray, directions: np.ndarray) -> np.ndarray | None:
    """The point nearest (least squares) to every line origins + t directions; None when they are parallel.

    Solved again without the cameras it lies behind (once), so a few stray views do not pull it away."""
    def solve(o, d):
        m = np.eye(3)[None] - d[:, :, None] * d[:, None, :]  # projections onto each axis' normal plane
        a = m.mean(0)
        if np.linalg.eigvalsh(a)[0] < PARALLEL_EIGEN:
            return None
        return np.linalg.solve(a, (m @ o[:, :, None]).mean(0)[:, 0])

    focus = solve(origins, directions)
    if focus is None:
        return None
    front = ((focus - origins) * directions).sum(1) > 0
    if 2 * front.sum() >= len(origins) and not front.all() and front.sum() >= 2:
        refined = solve(origins[front], directions[front])
        focus = focus if refined is None else refined
    return focus


def point_depths(c2w: np.ndarray, intrinsics: np.ndarray, width: int, height: int,
                 points: np.ndarray | None) -> np.ndarray | None:
    """(N, 2) near and far depth of the sparse points each camera sees (LLFF's 0.1 and 99.9 percentiles);
    cameras seeing fewer than MIN_POINTS_SEEN take the median of the others. None without enough points."""
    if points is None:
        return None
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) < MIN_POINTS_SEEN:
        return None
    points = points[:: max(1, len(points) // MAX_POINTS)]
    depths = np.full((len(c2w), 2), np.nan)
    for i, (pose, (fx, fy, cx, cy)) in enumerate(zip(c2w, intrinsics)):
        cam = (points - pose[:3, 3]) @ pose[:3, :3]  # camera axes (OpenGL: looking down -z)
        z = -cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u, v = fx * cam[:, 0] / z + cx, -fy * cam[:, 1] / z + cy
        seen = (z > 0) & (u >= 0) & (u <= width) & (v >= 0) & (v <= height)
        if seen.sum() >= MIN_POINTS_SEEN:
            depths[i] = np.percentile(z[seen], DEPTH_PERCENTILES)
    known = np.isfinite(depths[:, 0])
    if not known.any():
        return None
    depths[~known] = np.median(depths[known], axis=0)
    return depths


def measure(c2w: np.ndarray, bounds: np.ndarray | None = None, points: np.ndarray | None = None,
            intrinsics: np.ndarray | None = None, width: int = 0, height: int = 0) -> Geometry:
    """The camera geometry classify decides on. bounds: LLFF's (N, 2) near, far; points: (P, 3) sparse points."""
    directions = view_directions(c2w)
    origins = c2w[:, :3, 3]
    mean = directions.mean(0)
    norm = np.linalg.norm(mean)
    mean = mean / norm if norm > 1e-9 else np.array([0.0, 0.0, -1.0])
    angles = np.degrees(np.arccos(np.clip(directions @ mean, -1.0, 1.0)))
    along = origins @ mean
    radius = float(np.linalg.norm(origins - origins.mean(0), axis=1).mean())
    focus = axes_focus(origins, directions) if len(c2w) >= 2 else None
    in_front, miss, distance = 0, 180.0, 0.0
    if focus is not None:
        to_focus = focus - origins
        t = (to_focus * directions).sum(1)
        perp = np.linalg.norm(to_focus - t[:, None] * directions, axis=1)
        in_front = int((t > 0).sum())
        miss = float(np.median(np.degrees(np.arctan2(perp, t))))
        distance = float(np.median(t)) / max(radius, 1e-12)
    depths, source = None, ""
    if bounds is not None:
        depths, source = np.asarray(bounds, dtype=np.float64), "LLFF bounds"
    elif intrinsics is not None:
        depths = point_depths(c2w, intrinsics, width, height, points)
        source = "sparse points" if depths is not None else ""
    return Geometry(len(c2w), float(np.percentile(angles, 90)), float(angles.max()), mean,
                    float(along.max() - along.min()), radius, focus, in_front, miss, distance, depths, source)


def classify(c2w: np.ndarray, bounds: np.ndarray | None = None, points: np.ndarray | None = None,
             intrinsics: np.ndarray | None = None, width: int = 0, height: int = 0) -> SceneType:
    """The kind of scene (see the module's docstring) and one line saying why, with the numbers measured."""
    g = measure(c2w, bounds, points, intrinsics, width, height)
    spread = f"view directions spread {g.spread_p90:.0f} deg (p90) from their mean"
    if g.spread_p90 <= FORWARD_SPREAD_DEG:
        if g.depths is None:
            first = (f"{spread}, <= {FORWARD_SPREAD_DEG:.0f}, but neither LLFF bounds nor sparse points give the "
                     "depths NDC needs: not trained forward-facing")
        else:
            near = float(g.depths[:, 0].min())
            travel = g.travel / max(near, 1e-12)
            moved = f"the cameras travel {travel:.2g}x the nearest depth ({g.depth_source}) along it"
            if travel <= FORWARD_TRAVEL:
                return SceneType("forward-facing", f"{spread}, <= {FORWARD_SPREAD_DEG:.0f}, and {moved}, <= "
                                 f"{FORWARD_TRAVEL:g}: forward-facing (NDC)", g)
            first = f"{spread}, <= {FORWARD_SPREAD_DEG:.0f}, but {moved}, > {FORWARD_TRAVEL:g}: not forward-facing"
    else:
        first = f"{spread}, > {FORWARD_SPREAD_DEG:.0f}: not forward-facing"
    kind, second = object_or_unbounded(g)
    return SceneType(kind, f"{first}; {second}", g)


def object_or_unbounded(g: Geometry) -> tuple[str, str]:
    """("object" or "unbounded", why) from where the optical axes meet."""
    if g.focus is None:
        return "unbounded", "optical axes (nearly) parallel, meeting nowhere: unbounded"
    if g.radius <= 1e-9 * max(1.0, float(np.abs(g.focus).max())):
        return "unbounded", "cameras share one position (a panorama): unbounded"
    share = f"{g.in_front} of {g.n} cameras"
    if g.in_front < OBJECT_IN_FRONT * g.n:
        return "unbounded", (f"optical axes meet behind {g.n - g.in_front} of {g.n} cameras (in front of fewer than "
                             f"{OBJECT_IN_FRONT:.0%}): no central subject, unbounded")
    if g.miss_deg > OBJECT_MISS_DEG:
        return "unbounded", (f"optical axes pass {g.miss_deg:.0f} deg (median) from their nearest common point, "
                             f"> {OBJECT_MISS_DEG:.0f}: they do not converge, unbounded")
    return "object", (f"optical axes meet {g.focus_distance:.2g} camera-radii in front of the cameras ({share}, "
                      f"median miss {g.miss_deg:.0f} deg): object-centred")


# ---------- captures ----------
def classify_capture(capture: Capture) -> SceneType:
    """classify() of a capture's cameras, LLFF bounds and sparse points."""
    return classify(capture.camera_to_world, capture.bounds, capture.points, capture.intrinsics, capture.width,
                    capture.height)


def check_scene_type(scene_type: str) -> None:
    if scene_type not in SCENE_TYPE_CHOICES:
        raise DatasetError("--scene-type", f"unknown scene type '{scene_type}' (known: "
                           f"{', '.join(SCENE_TYPE_CHOICES)})")


def decide(capture: Capture, scene_type: str = "auto") -> SceneType:
    """The kind a capture is normalised as: classified ("auto") or the one asked for, with why."""
    check_scene_type(scene_type)
    measured = classify_capture(capture)
    if scene_type == "auto":
        return measured
    return SceneType(scene_type, f"{scene_type} as asked (--scene-type; measured: {measured.reason})",
                     measured.geometry)


def normalise_as(capture: Capture, decision: SceneType, origin: Path | str) -> Capture:
    """The capture normalised as decision.kind, which it records with the reason:

    forward-facing: llff.normalise_forward_facing (LLFF bounds, else the sparse points' depths); object: centred
    on the point the optical axes meet, cameras inside [-1, 1]^3, background contracted; unbounded:
    capture.normalise_captured (centred on the cameras). origin: the file named by errors."""
    g = decision.geometry or classify_capture(capture).geometry
    if decision.kind == "forward-facing":
        if g.depths is None:
            raise DatasetError(origin, "cannot be trained forward-facing (NDC): NDC needs the depth of the nearest "
                               "content, and this capture has neither LLFF bounds (poses_bounds.npy) nor sparse "
                               "points to measure it from",
                               "Use --scene-type auto, object or unbounded, or give the capture its sparse points.")
        out = normalise_forward_facing(replace(capture, bounds=g.depths))
    elif decision.kind == "object":
        if g.focus is None:
            raise DatasetError(origin, "cannot be trained as an object: the cameras' optical axes are (nearly) "
                               "parallel, so there is no point they meet to centre the scene on",
                               "Use --scene-type auto, forward-facing or unbounded.")
        out = normalise_captured(capture, center=g.focus)
    else:
        out = normalise_captured(capture)
    out.scene_type, out.scene_type_reason = decision.kind, decision.reason
    return out
