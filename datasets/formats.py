"""Which format a path holds, and loading any of them as a normalised Capture or a SceneData split."""

from __future__ import annotations

from pathlib import Path

from .blender import read_blender_capture
from .canonical import is_canonical, read_canonical
from .capture import Capture, capture_scene, prescaled_dirs
from .colmap import colmap_capture, find_model_dir, read_colmap_model
from .dataset_error import DatasetError
from .llff import list_images, read_llff_capture
from .scene import SceneData
from .scene_type import check_scene_type, decide, normalise_as
from .transforms import is_instant_ngp, normalise_instant_ngp, read_json, read_transforms_capture

POSED_FORMATS = ("canonical", "blender", "nerfstudio", "instant-ngp", "colmap", "llff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif")
FORMATS = POSED_FORMATS + ("images", "video")


def detect_format(path: str | Path) -> str:
    """One of FORMATS, from the files present; DatasetError when none fits."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(path, "does not exist")
    if path.is_file():
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return "video"
        if path.name == "poses_bounds.npy":
            return "llff"
        if path.name.startswith("transforms_") and path.suffix == ".json":
            return "blender"
        if path.suffix == ".json":
            return "canonical" if is_canonical(path) else _transforms_kind(path)
        raise DatasetError(path, "unknown input: expected a folder, a transforms.json, a poses_bounds.npy or a video")
    if is_canonical(path):
        return "canonical"
    if (path / "transforms_train.json").is_file():
        return "blender"
    if (path / "transforms.json").is_file():
        return _transforms_kind(path / "transforms.json")
    if (path / "poses_bounds.npy").is_file():
        return "llff"
    if find_model_dir(path) is not None:
        return "colmap"
    if list_images(path) or list_images(path / "images"):
        return "images"
    raise DatasetError(path, "no known format found: expected transforms.json, transforms_train.json, "
                             "poses_bounds.npy, a COLMAP model (sparse/0/cameras.bin), images or a video",
                       "Name the format with --from.")


def _transforms_kind(json_path: Path) -> str:
    return "instant-ngp" if is_instant_ngp(read_json(json_path)) else "nerfstudio"


def _transforms_path(path: Path) -> Path:
    return path if path.is_file() else path / "transforms.json"


def read_capture(path: str | Path, fmt: str | None = None, image_dir: str | Path | None = None,
                 scene_type: str = "auto") -> Capture:
    """A posed capture in scene coordinates (normalised into its box). fmt: one of POSED_FORMATS or None (detect).

    image_dir: a folder the user names: a COLMAP model's images (default: <path>/images); for the other formats,
    a folder outside the capture its files may lie in. Every file a capture names must lie inside the capture
    folder or image_dir, symlinks followed (see paths.capture_file).
    scene_type: "auto" (from the cameras, see scene_type.py; a converted scene keeps the type it was converted
    as) or one of SCENE_TYPES to force it. Blender scenes stay bounded objects (box +-1.5) unless forced
    otherwise; instant-ngp files keep their box for an object.
    """
    path = Path(path)
    fmt = fmt or detect_format(path)
    allowed = (Path(image_dir),) if image_dir else ()
    check_scene_type(scene_type)
    if fmt == "canonical":
        capture = read_canonical(path, allowed)
        if scene_type in ("auto", capture.scene_type):
            return capture
        return normalise_as(capture, decide(capture, scene_type), _transforms_path(path))
    if fmt == "blender":
        folder = path.parent if path.is_file() else path
        capture = read_blender_capture(folder, allowed)
        decision = decide(capture, scene_type)
        if decision.kind != "object":
            return normalise_as(capture, decision, folder / "transforms_train.json")
        capture.scene_type = "object"
        capture.scene_type_reason = ("synthetic renders with alpha (Blender): a bounded object in the box +-1.5 "
                                     f"(cameras: {decision.reason})")
        return capture
    if fmt in ("nerfstudio", "instant-ngp"):
        json_path = _transforms_path(path)
        capture, meta = read_transforms_capture(json_path, allowed)
        capture.image_dirs = prescaled_dirs(capture, json_path.parent, json_path, allowed)
        decision = decide(capture, scene_type)
        if fmt == "instant-ngp" and decision.kind == "object":
            out = normalise_instant_ngp(capture, meta, json_path)
            out.scene_type, out.scene_type_reason = "object", f"{decision.reason}; the file's instant-ngp box kept"
            return out
        capture.source = fmt
        return normalise_as(capture, decision, json_path)
    if fmt == "colmap":
        folder = path.parent if path.is_file() else path
        model_dir = find_model_dir(folder)
        if model_dir is None:
            raise DatasetError(folder, "no COLMAP model here (looked for cameras.bin / cameras.txt in ., sparse/0, "
                                       "sparse, colmap/sparse/0)")
        images = Path(image_dir) if image_dir else folder / "images"
        capture = colmap_capture(read_colmap_model(model_dir), images, folder.name, folder, allowed)
        capture.image_dirs = prescaled_dirs(capture, folder, model_dir, allowed)
        return normalise_as(capture, decide(capture, scene_type), model_dir)
    if fmt == "llff":
        folder = path.parent if path.is_file() else path
        capture = read_llff_capture(folder, allowed)
        capture.image_dirs = prescaled_dirs(capture, folder, folder / "poses_bounds.npy", allowed)
        return normalise_as(capture, decide(capture, scene_type), folder / "poses_bounds.npy")
    if fmt in ("images", "video"):
        raise DatasetError(path, f"a {fmt} input has no camera poses yet",
                           f"Convert it first: `fields convert {path} --out DIR` (runs COLMAP).")
    raise DatasetError(path, f"unknown format '{fmt}' (known: {', '.join(FORMATS)})")


def load_dataset(path: str | Path, split: str = "train", downscale: int = 1, fmt: str | None = None,
                 scene_type: str = "auto") -> SceneData:
    """One split of a scene in any posed format, ready for training (scene_type: see read_capture)."""
    return capture_scene(read_capture(path, fmt, scene_type=scene_type), split, downscale)
