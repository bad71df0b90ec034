"""Shape data sets for tri-plane fitting: discovery, a fixed stratified validation split, loading point
clouds (PCD) and meshes (OBJ, OFF, PLY, STL), normalisation, and corrupt files reported by name.

Layout: ``<dataset>/<class>/train/*`` and optionally ``<dataset>/<class>/test/*``. Per class, a fixed seeded
share of ``train`` becomes the validation split (it selects the classifier's epoch); the test split is the
``test`` folders when they exist, else another fixed share of ``train`` that nothing selects on.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...datasets.data_root import ENV_VAR, default_data_roots
from ...datasets.dataset_error import DatasetError
from ...errors import FieldsError

POINT_SUFFIXES = (".pcd",)
MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl")
SPLITS = ("train", "val", "test", "all")
DEFAULT_DATASET = "modelnet10_pcd"
NORMALISED_HALF_EXTENT = 0.9  # the longest bounding-box side spans [-0.9, 0.9] after normalising


class ShapeError(FieldsError):
    """A shape file that cannot be used; the message names it."""


class CorruptShapeWarning(UserWarning):
    pass


@dataclass(frozen=True)
class ShapeRecord:
    path: Path  # the file
    relpath: str  # path relative to the data set folder, e.g. chair/train/chair_0001.pcd
    label: int
    class_name: str
    split: str  # train | val | test


@dataclass
class Shape:
    record: ShapeRecord
    points: np.ndarray  # (N, 3) float32 surface points in the normalised frame [-0.9, 0.9]^3


def resolve_dataset(dataset: str | Path = DEFAULT_DATASET, data_root: str | Path | None = None) -> Path:
    """A data set folder: an existing path as it is, else ``<data root>/<dataset>`` for the first root holding it
    (``data_root``, else $FIELDS_DATA_ROOT, ../shared/data, ~/.cache/fields/data)."""
    if Path(dataset).expanduser().is_dir():
        return Path(dataset).expanduser()
    roots = [Path(data_root).expanduser()] if data_root is not None else default_data_roots()
    tried = [root / str(dataset) for root in roots]
    for candidate in tried:
        if candidate.is_dir():
            return candidate
    raise DatasetError(
        tried[0], f"shape data set '{dataset}' not found. Looked in: " + ", ".join(str(t) for t in tried),
        f"Point --data-root or ${ENV_VAR} at a folder holding {dataset}/<class>/train/*.pcd (or meshes: "
        f"{', '.join(MESH_SUFFIXES)}). ModelNet10 is at https://modelnet.cs.princeton.edu (OFF meshes: usable "
        "as they are in the same <class>/train, <class>/test layout).")


VAL_FRACTION = 0.10  # of each class's train files: selects the classifier's epoch
TEST_FRACTION = 0.15  # of each class's train files when the data set has no test folders: reported only


def carve_splits(n: int, label: int, val_fraction: float, test_fraction: float, seed: int) -> list[str]:
    """The split of each of a class's n sorted train files: ``round(fraction * n)`` files (at least 1 when
    n >= 3 and the fraction is positive) go to test, then as many to val, by a permutation seeded with
    (seed, class label), the same on every call and machine; the rest stay in train."""
    def count(fraction: float) -> int:
        return max(1, int(round(fraction * n))) if fraction > 0 and n >= 3 else 0

    n_test, n_val = count(test_fraction), count(val_fraction)
    splits = ["train"] * n
    order = np.random.default_rng([seed, label]).permutation(n)
    for i in order[:n_test]:
        splits[i] = "test"
    for i in order[n_test:n_test + n_val]:
        splits[i] = "val"
    return splits


def discover_shapes(folder: Path, val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION,
                    seed: int = 0) -> list[ShapeRecord]:
    """All shapes of a data set folder, sorted by relative path, each with its split (train | val | test).

    Per class, ``carve_splits`` draws val (and test, unless the class has a ``test`` folder, whose files are the
    test split) out of the sorted ``train`` files.
    """
    folder = Path(folder)
    suffixes = POINT_SUFFIXES + MESH_SUFFIXES
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and (d / "train").is_dir()) \
        if folder.is_dir() else []
    if not classes:
        raise DatasetError(folder, "no class folders with a train/ subfolder",
                           "Expected <dataset>/<class>/train/<shape>.pcd (or .obj, .off, .ply, .stl).")
    records = []
    for label, name in enumerate(classes):
        train, test = [sorted(f for f in (folder / name / split).glob("*") if f.suffix.lower() in suffixes)
                       for split in ("train", "test")]
        splits = carve_splits(len(train), label, val_fraction, 0.0 if test else test_fraction, seed)
        for f, split in [*zip(train, splits), *((f, "test") for f in test)]:
            records.append(ShapeRecord(f, f.relative_to(folder).as_posix(), label, name, split))
    if not any(r.split == "train" for r in records):
        raise DatasetError(folder, "class folders hold no shape files (.pcd, .obj, .off, .ply, .stl)")
    return sorted(records, key=lambda r: r.relpath)


def class_names(records: list[ShapeRecord]) -> list[str]:
    """Class names indexed by label."""
    return [name for _, name in sorted({(r.label, r.class_name) for r in records})]


def select_split(records: list[ShapeRecord], split: str) -> list[ShapeRecord]:
    """The records of one split (train | val | test | all); test must exist in the data."""
    if split not in SPLITS:
        raise FieldsError(f"split '{split}': expected one of {', '.join(SPLITS)}")
    if split == "all":
        return list(records)
    chosen = [r for r in records if r.split == split]
    if split == "test" and not chosen:
        raise FieldsError("split 'test': no test shapes (no <class>/test folders, and test_fraction is 0)")
    return chosen


def limit_per_class(records: list[ShapeRecord], n: int | None) -> list[ShapeRecord]:
    """The first n records of each (class, split), for quick runs; all when n is None."""
    if n is None:
        return records
    counts: dict = {}
    kept = []
    for r in records:
        counts[(r.label, r.split)] = counts.get((r.label, r.split), 0) + 1
        if counts[(r.label, r.split)] <= n:
            kept.append(r)
    return kept


def normalise(points: np.ndarray) -> np.ndarray:
    """Centre the bounding box at the origin and scale its longest side to [-0.9, 0.9]: (N, 3) -> (N, 3)."""
    lo, hi = points.min(0), points.max(0)
    extent = float((hi - lo).max())
    return ((points - (lo + hi) / 2) * (2 * NORMALISED_HALF_EXTENT / extent)).astype(np.float32)


def _read_points(path: Path) -> np.ndarray:
    import open3d as o3d

    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        cloud = o3d.io.read_point_cloud(str(path), format="pcd")
    points = np.asarray(cloud.points)
    if len(points) == 0:
        raise ShapeError(f"{path}: not a readable PCD point cloud (open3d read no points)")
    return points


def _read_mesh_points(path: Path, n_points: int, seed: int) -> np.ndarray:
    import trimesh

    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as err:
        raise ShapeError(f"{path}: not a readable mesh ({err.__class__.__name__}: {str(err)[:80]})") from None
    if isinstance(mesh, trimesh.Trimesh) and len(mesh.faces) > 0 and mesh.area > 0:
        return np.asarray(mesh.sample(n_points, seed=seed))
    vertices = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))))
    if len(vertices) == 0:
        raise ShapeError(f"{path}: mesh has no vertices and no triangles")
    return vertices  # a PLY point cloud


def load_shape(record: ShapeRecord, mesh_points: int = 1024, seed: int = 0) -> Shape:
    """Read and normalise one shape: a point cloud's points, or ``mesh_points`` surface samples of a mesh."""
    if record.path.suffix.lower() in POINT_SUFFIXES:
        points = _read_points(record.path)
    else:
        points = _read_mesh_points(record.path, mesh_points, seed)
    if not np.isfinite(points).all():
        raise ShapeError(f"{record.path}: coordinates are not finite (NaN or inf)")
    if len(points) < 3 or float((points.max(0) - points.min(0)).max()) == 0:
        raise ShapeError(f"{record.path}: points are degenerate (fewer than 3, or all at one place)")
    return Shape(record, normalise(points))


def load_shapes(records: list[ShapeRecord], mesh_points: int = 1024, seed: int = 0
                ) -> tuple[list[Shape], list[str]]:
    """Load shapes, skipping unusable files: (shapes, one message per skipped file). Each skip is warned."""
    shapes, skipped = [], []
    for record in records:
        try:
            shapes.append(load_shape(record, mesh_points, seed))
        except ShapeError as err:
            skipped.append(str(err))
            warnings.warn(f"skipped {err}", CorruptShapeWarning, stacklevel=2)
    return shapes, skipped
