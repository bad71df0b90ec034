"""`fields download`: fetch a public data set into the data root (resumable, checksummed)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .options import add_options, build
from .shared import add_shared, shared


@dataclass
class DownloadOptions:
    name: str = dataclasses.field(metadata={"positional": True, "help": "data set name, e.g. nerf-synthetic"})
    url: str | None = None  # another mirror of the same archive
    sha256: str | None = None  # expected checksum when using --url


def add_parser(sub) -> None:
    p = sub.add_parser("download", help="fetch a public data set into the data root (resumable, checksummed)")
    add_options(p, DownloadOptions)
    add_shared(p, "data_root", help={"data_root": "where to put it; None: $FIELDS_DATA_ROOT or ~/.cache/fields/data"})
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..datasets.data_root import download_root
    from ..datasets.ingest.download import download_dataset

    o = build(DownloadOptions, args)
    folder = download_dataset(o.name, download_root(shared(args)["data_root"]), url=o.url, sha256=o.sha256)
    print(f"{o.name} is in {folder}")
    return 0
