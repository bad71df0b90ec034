"""Where scenes live: a data root chosen by flag, environment variable or default."""

from __future__ import annotations

import os
from pathlib import Path

from .dataset_error import DatasetError

ENV_VAR = "FIELDS_DATA_ROOT"
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_data_roots() -> list[Path]:
    """Candidate data roots, most specific first: $FIELDS_DATA_ROOT, ../shared/data, ~/.cache/fields/data."""
    roots = []
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]).expanduser())
    roots += [
        Path.cwd().parent / "shared" / "data",
        _PROJECT_ROOT.parent / "shared" / "data",
        Path.home() / ".cache" / "fields" / "data",
    ]
    unique = []
    for root in roots:
        if root.resolve() not in [r.resolve() for r in unique]:
            unique.append(root)
    return unique


def download_root(data_root: str | Path | None = None) -> Path:
    """The data root a download writes into: the flag, else $FIELDS_DATA_ROOT, else ~/.cache/fields/data."""
    if data_root is not None:
        return Path(data_root).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return Path.home() / ".cache" / "fields" / "data"


def resolve_scene_dir(scene: str, data_root: str | Path | None = None) -> Path:
    """Find a NeRF-Synthetic scene folder (`<root>/nerf_synthetic/<scene>` or `<root>/<scene>`).

    A scene given as an existing path is used as it is; one written as a path (absolute, or with a folder or
    `~`) that does not exist is reported as such, not looked up in the data roots.
    """
    path = Path(scene).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or len(path.parts) > 1 or scene.startswith(("~", ".")):
        raise DatasetError(path, "scene folder does not exist")
    roots = [Path(data_root).expanduser()] if data_root is not None else default_data_roots()
    tried = []
    for root in roots:
        for candidate in (root / "nerf_synthetic" / scene, root / scene):
            if candidate not in tried:
                tried.append(candidate)
            if (candidate / "transforms_train.json").is_file():
                return candidate
    raise DatasetError(
        tried[0],
        f"scene '{scene}' not found. Looked in: " + ", ".join(str(t) for t in tried),
        f"Get the data with `fields download nerf-synthetic` (writes to $"
        f"{ENV_VAR} or ~/.cache/fields/data), or point --data-root / ${ENV_VAR} at a folder holding "
        f"nerf_synthetic/{scene}/transforms_train.json.",
    )
