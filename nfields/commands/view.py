"""`fields view`: the interactive viewer of a run in the browser."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .options import add_options, build
from .shared import RUN_FOLDER, ViewerAddress, add_shared, set_threads, shared


@dataclass
class ViewOptions:
    run: str = dataclasses.field(metadata=RUN_FOLDER)


def add_parser(sub) -> None:
    p = sub.add_parser("view", help="interactive viewer of a run in the browser")
    add_options(p, ViewOptions)
    add_options(p, ViewerAddress)
    add_shared(p, "threads", "data_root", "device")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..viewer import serve_run

    set_threads(args)
    address, s = build(ViewerAddress, args), shared(args)
    serve_run(build(ViewOptions, args).run, host=address.host, port=address.port, device=s["device"],
              data_root=s["data_root"])
    return 0
