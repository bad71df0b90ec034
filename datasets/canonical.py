"""The canonical layout `fields convert` writes and `fields train --data` reads.

    transforms.json   nerfstudio-style: OpenGL camera-to-world per frame, per-frame intrinsics
                      (fl_x, fl_y, cx, cy, k1..k4, p1, p2), w, h (per frame where images differ in size),
                      camera_model (PINHOLE, OPENCV or OPENCV_FISHEYE), {train,val,test}_filenames,
                      per-frame mask_path / depth_file_path, and a `fields` block (box, near, bounded, NDC,
                      per-frame near/far bounds, the capture -> scene normalisation, downscales, source,
                      scene_type: the kind of scene and why)
    images/           full-size images;  images_2/, images_4/, ...: area-averaged copies
    masks/, depths/   where the capture has them: single-channel 0/255 PNG masks, and float32 .npy z-depth
                      in thousandths of scene units (nerfstudio's default depth_unit_scale_factor, 1e-3,
                      reads them in scene units); masks_<k>/, depths_<k>/ beside images_<k>/
    sparse_pc.ply     sparse points in scene coordinates (where the capture has them)

Poses, points and depth share the scene coordinates, so nerfstudio's dataparser, which moves poses and points by
its own orientation and scale (and points, besides, by any applied_scale), loads them in agreement: the file
carries no applied_transform / applied_scale (the capture -> scene similarity is fields.normalization).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from .capture import UNBOUNDED_NOTE, Capture, Normalization
from .dataset_error import DatasetError
from .distortion import PARAM_NAMES
from .frame_data import downscale_depth, downscale_mask, read_depth, read_mask
from .images import downscale_image, read_image
from .paths import capture_file
from .pointcloud import write_ply_points
from .scene_type import SCENE_TYPES
from .transforms import DEPTH_UNIT, read_transforms_capture

FORMAT_VERSION = 1
PLY_NAME = "sparse_pc.ply"


def is_canonical(path: Path) -> bool:
    """A folder (or transforms.json) written by `fields convert`."""
    json_path = path / "transforms.json" if path.is_dir() else path
    if not json_path.is_file():
        return False
    try:
        return "fields" in json.loads(json_path.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False


def _image_names(capture: Capture) -> list[str]:
    """Unique output names: the source names, prefixed by their folder where two share a name."""
    names = [p.name for p in capture.image_paths]
    if len(set(names)) == len(names):
        return names
    return [f"{p.parent.name}_{p.name}" for p in capture.image_paths]


def _frame(capture: Capture, i: int, name: str) -> dict:
    fx, fy, cx, cy = capture.intrinsics[i].tolist()
    frame = {"file_path": f"images/{name}", "transform_matrix": capture.camera_to_world[i].tolist(),
             "fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy}
    if capture.sizes is not None:  # images of several sizes: each frame its own (nerfstudio reads per-frame w, h)
        frame["w"], frame["h"] = capture.size(i)
    frame.update(dict(zip(PARAM_NAMES, capture.distortion[i].tolist())))
    if capture.bounds is not None:
        frame["near_far"] = capture.bounds[i].tolist()
    return frame


def _write_frame_data(capture: Capture, out: Path, names: list[str], downscales: tuple[int, ...]) -> list[dict]:
    """Masks and depth maps into masks/, depths/ (and masks_<k>/, depths_<k>/): per frame, the fields naming them.

    Masks become single-channel 0/255 PNGs; depth maps float32 .npy in thousandths of scene units."""
    entries = [{} for _ in names]
    stems = [Path(n).stem for n in names]
    stems = stems if len(set(stems)) == len(stems) else list(names)
    for kind, paths in (("mask", capture.mask_paths), ("depth", capture.depth_paths)):
        if paths is None:
            continue
        folder = "masks" if kind == "mask" else "depths"
        for sub in [folder] + [f"{folder}_{k}" for k in downscales]:
            (out / sub).mkdir()
        for i, (src, stem) in enumerate(zip(paths, stems)):
            if kind == "mask":
                mask = read_mask(src, capture.records[i], capture.size(i))
                name = f"{stem}.png"
                for sub, k in [(folder, 1)] + [(f"{folder}_{k}", k) for k in downscales]:
                    iio.imwrite(out / sub / name, downscale_mask(mask, k).astype(np.uint8) * 255)
                entries[i]["mask_path"] = f"{folder}/{name}"
            else:
                depth = read_depth(src, capture.records[i], capture.size(i), capture.depth_unit / DEPTH_UNIT)
                name = f"{stem}.npy"
                for sub, k in [(folder, 1)] + [(f"{folder}_{k}", k) for k in downscales]:
                    np.save(out / sub / name, downscale_depth(depth, k))
                entries[i]["depth_file_path"] = f"{folder}/{name}"
    return entries


def write_canonical(capture: Capture, out: Path, downscales: tuple[int, ...] = (), progress=None) -> dict:
    """Write a normalised capture into the existing, empty folder `out`; returns the transforms.json content.

    Images are copied byte for byte into images/; images_<k>/ hold area-averaged copies (same names).
    progress: optional callable(int) told of each image written.
    """
    names = _image_names(capture)
    for folder in ["images"] + [f"images_{k}" for k in downscales]:
        (out / folder).mkdir()
    for i, (src, name) in enumerate(zip(capture.image_paths, names)):
        if not src.is_file():
            raise DatasetError(src, f"image is missing (named by {capture.records[i]})")
        shutil.copyfile(src, out / "images" / name)
        if downscales:
            img = read_image(src, capture.records[i])
            for k in downscales:
                iio.imwrite(out / f"images_{k}" / name, downscale_image(img, k))
        if progress:
            progress(1)
    norm = capture.normalization
    distorted = bool(np.abs(capture.distortion).max() > 0)
    frame_data = _write_frame_data(capture, out, names, downscales)
    meta = {
        "camera_model": "OPENCV_FISHEYE" if capture.fisheye else "OPENCV" if distorted else "PINHOLE",
        **({"w": capture.width, "h": capture.height} if capture.sizes is None else {}),
        "frames": [{**_frame(capture, i, name), **frame_data[i]} for i, name in enumerate(names)],
        **{f"{s}_filenames": [f"images/{names[i]}" for i in capture.splits.get(s, [])]
           for s in ("train", "val", "test")},
        # No applied_transform / applied_scale: nerfstudio multiplies the ply's points (not the poses) by
        # applied_scale, and older releases moved the points (not the poses) by applied_transform.
        "fields": {
            "format_version": FORMAT_VERSION, "source": capture.source, "name": capture.name,
            "aabb": capture.aabb.tolist(), "near": capture.near, "bounded": capture.bounded,
            "ndc_near": capture.ndc_near, "normalization": norm.to_json(), "downscales": list(downscales),
            "scene_type": {"kind": capture.scene_type or recorded_kind(capture),
                           "reason": capture.scene_type_reason},
        },
    }
    if not capture.bounded:
        meta["fields"]["note"] = UNBOUNDED_NOTE
    if capture.depth_paths is not None:
        meta["depth_unit_scale_factor"] = DEPTH_UNIT
    if capture.points is not None and len(capture.points):
        write_ply_points(out / PLY_NAME, capture.points, capture.colors)
        meta["ply_file_path"] = PLY_NAME
    (out / "transforms.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def recorded_kind(capture: Capture) -> str:
    """The scene type a normalised capture was trained as before scene types were recorded."""
    if capture.ndc_near is not None:
        return "forward-facing"
    return "object" if capture.bounded else "unbounded"


def _scene_type(path: Path, block: dict, capture: Capture) -> tuple[str, str]:
    """fields.scene_type (kind, reason); files written before it existed: from bounded / ndc_near."""
    entry = block.get("scene_type")
    if entry is None:
        kind = recorded_kind(capture)
        field = "ndc_near" if capture.ndc_near is not None else "bounded"
        return kind, f"converted before scene types were recorded: {kind}, from its fields.{field}"
    if not isinstance(entry, dict) or entry.get("kind") not in SCENE_TYPES or not isinstance(entry.get("reason", ""),
                                                                                            str):
        raise DatasetError(path, f"fields.scene_type must be {{\"kind\": one of {', '.join(SCENE_TYPES)}, "
                                 f"\"reason\": text}}, got {entry!r}",
                           "Not written by `fields convert`, or edited since: re-run the conversion.")
    return entry["kind"], entry.get("reason", "")


def _field(path: Path, block: dict, key: str, kind, optional: bool = False):
    value = block.get(key)
    if value is None and optional:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise DatasetError(path, f"fields.{key} is missing or malformed (got {value!r})",
                           "Not written by `fields convert`, or edited since: re-run the conversion.") from None


def read_canonical(path: str | Path, allowed: tuple[Path, ...] = ()) -> Capture:
    """A converted scene (folder or its transforms.json), in scene coordinates.

    allowed: folders outside the scene its files may lie in (see paths.capture_file)."""
    path = Path(path)
    json_path = path / "transforms.json" if path.is_dir() else path
    capture, meta = read_transforms_capture(json_path, allowed)
    block = meta.get("fields")
    if not isinstance(block, dict):
        raise DatasetError(json_path, "field 'fields' is missing: not a scene written by `fields convert`")
    aabb = _field(json_path, block, "aabb", lambda v: np.asarray(v, dtype=np.float64))
    if aabb.shape != (6,) or not np.isfinite(aabb).all() or (aabb[3:] <= aabb[:3]).any():
        raise DatasetError(json_path, f"fields.aabb must be min xyz then max xyz, got {block.get('aabb')!r}")
    norm_block = block.get("normalization") if isinstance(block.get("normalization"), dict) else {}
    capture.normalization = Normalization(
        center=_field(json_path, norm_block, "center", lambda v: np.asarray(v, dtype=np.float64).reshape(3)),
        scale=_field(json_path, norm_block, "scale", float),
        rotation=_field(json_path, norm_block, "rotation", lambda v: np.asarray(v, dtype=np.float64).reshape(3, 3)),
    )
    capture.aabb, capture.near = aabb, _field(json_path, block, "near", float)
    capture.bounded = bool(block.get("bounded", True))
    capture.ndc_near = _field(json_path, block, "ndc_near", float, optional=True)
    capture.source = str(block.get("source", "canonical"))
    capture.scene_type, capture.scene_type_reason = _scene_type(json_path, block, capture)
    capture.name = str(block.get("name", json_path.parent.name))
    frames = meta["frames"]
    if all("near_far" in f for f in frames):
        capture.bounds = _field(json_path, {"near_far": [f["near_far"] for f in frames]}, "near_far",
                                lambda v: np.asarray(v, dtype=np.float64).reshape(len(frames), 2))
    for k in block.get("downscales", []) if isinstance(block.get("downscales"), list) else []:
        if isinstance(k, int) and (json_path.parent / f"images_{k}").is_dir():
            capture.image_dirs[k] = json_path.parent / f"images_{k}"
            for i, src in enumerate(capture.image_paths):  # capture_scene reads images_<k>/<name> in their place
                capture_file(json_path.parent, f"images_{k}/{src.name}", json_path,
                             f"frames[{i}] downscaled by {k}", allowed)
    return capture
