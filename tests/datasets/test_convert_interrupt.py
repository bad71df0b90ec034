"""`kill` during a conversion's COLMAP run: the partial folder is removed and no glog stack dump is printed."""

import signal
import subprocess
import sys
import textwrap
import time

import imageio.v3 as iio
import numpy as np
import pytest

from nfields.datasets.ingest.colmap_run import pycolmap_available

# What `fields convert` runs once the CLI's main is inside sigterm_as_interrupt (see nfields/interrupts.py).
SCRIPT = textwrap.dedent("""
    import sys
    from nfields.datasets.ingest import colmap_run
    from nfields.datasets.ingest.convert import convert
    from nfields.interrupts import sigterm_as_interrupt

    colmap_run.shutil.which = lambda name: None  # the pycolmap backend, whose import installs glog's handler
    try:
        with sigterm_as_interrupt():
            convert(sys.argv[1], sys.argv[2], "images", progress=False)
    except KeyboardInterrupt:
        print("fields convert: interrupted")
        sys.exit(130)
""")


@pytest.mark.skipif(not pycolmap_available(), reason="needs pycolmap")
def test_sigterm_during_colmap_leaves_no_partial_folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    base = (np.random.default_rng(0).random((240, 240, 3)) * 255).astype(np.uint8)
    for i in range(16):
        iio.imwrite(images / f"{i:02d}.png", np.roll(base, 4 * i, axis=1))
    out = tmp_path / "converted"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(images), str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".converted.partial-*/.work/colmap/database.db")) and time.time() < deadline:
        time.sleep(0.05)  # until COLMAP has started on the features
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert stdout == "fields convert: interrupted\n"
    assert "SIGTERM" not in stderr and "Aborted" not in stderr  # glog's failure handler did not run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]  # nothing partial, no output
