"""Tests for nfields.datasets.ingest.download (no network: file:// URLs and a local http.server)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from nfields.datasets.ingest import download as dl
from nfields.datasets.ingest.download import SOURCES, DownloadError, download_dataset

NAME = "nerf-synthetic"
TRANSFORMS = {"camera_angle_x": 0.69, "frames": [{"file_path": "./train/r_0"}]}


def _make_zip(path: Path, extra: dict[str, bytes] | None = None) -> bytes:
    """Write a small nerf_synthetic-like zip; return its bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("nerf_synthetic/lego/transforms_train.json", json.dumps(TRANSFORMS))
        # some incompressible padding so "half the archive" is a meaningful resume point
        zf.writestr("nerf_synthetic/lego/train/r_0.png", hashlib.sha256(b"x").digest() * 2048)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path.read_bytes()


@pytest.fixture
def archive(tmp_path: Path) -> tuple[str, bytes, str]:
    """(file:// URL, bytes, sha256) of a small test archive outside data_root."""
    src = tmp_path / "src" / "nerf_synthetic.zip"
    src.parent.mkdir()
    data = _make_zip(src)
    return src.as_uri(), data, hashlib.sha256(data).hexdigest()


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return tmp_path / "data"


def _archive_path(data_root: Path) -> Path:
    return data_root / ".downloads" / SOURCES[NAME].archive_name


def _assert_unpacked(out: Path, data_root: Path) -> None:
    assert out == data_root / "nerf_synthetic"
    assert json.loads((out / "lego" / "transforms_train.json").read_text()) == TRANSFORMS
    leftovers = [p.name for p in data_root.iterdir() if p.name.startswith(".unpack-")]
    assert leftovers == []


def test_full_download_checksum_and_unpack(archive, data_root):
    url, data, digest = archive
    out = download_dataset(NAME, data_root, url=url, sha256=digest, progress=False)
    _assert_unpacked(out, data_root)
    assert _archive_path(data_root).read_bytes() == data
    assert not _archive_path(data_root).with_suffix(".zip.part").exists()


def test_resume_from_truncated_part_file(archive, data_root, capsys):
    url, data, digest = archive
    half = len(data) // 2
    part = _archive_path(data_root).with_name("nerf_synthetic.zip.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:half])

    out = download_dataset(NAME, data_root, url=url, sha256=digest, progress=False)

    _assert_unpacked(out, data_root)
    assert _archive_path(data_root).read_bytes() == data
    assert not part.exists()
    assert f"from byte {half:,}" in capsys.readouterr().err


def test_resume_reads_only_the_rest(archive, tmp_path):
    """A garbage prefix survives a resume, so the first half was not read again."""
    url, data, _ = archive
    half = len(data) // 2
    dest = tmp_path / "out.zip"
    dest.with_name("out.zip.part").write_bytes(b"\0" * half)
    assert dl._fetch(url, dest, progress=False) == len(data) - half
    assert dest.read_bytes() == b"\0" * half + data[half:]


def test_checksum_mismatch_removes_archive(archive, data_root):
    url, _, _ = archive
    with pytest.raises(DownloadError) as err:
        download_dataset(NAME, data_root, url=url, sha256="0" * 64, progress=False)
    assert "0" * 64 in str(err.value) and "expected" in str(err.value)
    assert not _archive_path(data_root).exists()
    assert not (data_root / "nerf_synthetic").exists()
    assert not list(data_root.glob(".unpack-*"))


def test_url_without_sha256_is_refused_before_any_download(archive, data_root):
    url, _, _ = archive
    with pytest.raises(DownloadError) as err:
        download_dataset(NAME, data_root, url=url, progress=False)
    message = str(err.value)
    assert message.startswith(f"--url {url}: give the archive's checksum with --sha256") and "sha256sum" in message
    assert not data_root.exists()


def test_archive_that_fails_its_checksum_is_never_reused(archive, tmp_path, data_root, capsys):
    url, data, digest = archive
    other = tmp_path / "other.zip"
    other_digest = hashlib.sha256(_make_zip(other, {"extra": b"x"})).hexdigest()
    with pytest.raises(DownloadError, match="Checksum mismatch"):  # a mirror serving other bytes
        download_dataset(NAME, data_root, url=other.as_uri(), sha256=digest, progress=False)
    assert not _archive_path(data_root).exists() and not list((data_root / ".downloads").iterdir())
    # An archive found in .downloads/ (another mirror's, or damaged) is fetched again, not used unverified.
    _archive_path(data_root).write_bytes(other.read_bytes())
    capsys.readouterr()
    out = download_dataset(NAME, data_root, url=url, sha256=digest, progress=False)
    _assert_unpacked(out, data_root)
    assert _archive_path(data_root).read_bytes() == data and other_digest != digest
    assert "previously downloaded" not in capsys.readouterr().err


def test_unknown_name_lists_valid_names(data_root):
    with pytest.raises(DownloadError, match="nerf-synthetic"):
        download_dataset("no-such-set", data_root)
    assert not data_root.exists()


@pytest.mark.parametrize("bad", ["../evil", "nerf_synthetic/../../evil", "/abs/evil"])
def test_zip_path_traversal_rejected(tmp_path, data_root, bad):
    src = tmp_path / "bad.zip"
    data = _make_zip(src, {bad: b"pwned"})
    with pytest.raises(DownloadError, match="unsafe"):
        download_dataset(NAME, data_root, url=src.as_uri(),
                         sha256=hashlib.sha256(data).hexdigest(), progress=False)
    assert not (data_root / "nerf_synthetic").exists()
    assert not (tmp_path / "evil").exists() and not (data_root / "evil").exists()
    assert not list(data_root.glob(".unpack-*"))
    assert not _archive_path(data_root).exists()  # refused: deleted, so no later call unpacks it


def test_tar_archive_and_tar_traversal(tmp_path, data_root):
    def make_tar(path: Path, names: list[str]) -> str:
        with tarfile.open(path, "w:gz") as tf:
            for name in names:
                info = tarfile.TarInfo(name)
                payload = json.dumps(TRANSFORMS).encode()
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
        return hashlib.sha256(path.read_bytes()).hexdigest()

    bad = tmp_path / "bad.tar.gz"
    digest = make_tar(bad, ["nerf_synthetic/lego/transforms_train.json", "../evil"])
    with pytest.raises(DownloadError, match="unsafe"):
        download_dataset(NAME, data_root, url=bad.as_uri(), sha256=digest, progress=False)

    assert not _archive_path(data_root).exists()  # the refused archive is deleted
    good = tmp_path / "good.tar.gz"
    digest = make_tar(good, ["nerf_synthetic/lego/transforms_train.json"])
    out = download_dataset(NAME, data_root, url=good.as_uri(), sha256=digest, progress=False)
    _assert_unpacked(out, data_root)


def test_second_call_returns_without_downloading(archive, data_root, monkeypatch):
    url, _, digest = archive
    out = download_dataset(NAME, data_root, url=url, sha256=digest, progress=False)

    def boom(*args, **kwargs):
        raise AssertionError("should not download again")

    monkeypatch.setattr(dl, "_fetch", boom)
    monkeypatch.setattr(dl, "_unpack", boom)
    assert download_dataset(NAME, data_root, url=url, sha256=digest, progress=False) == out


class _RangeServer(http.server.ThreadingHTTPServer):
    """Serves one payload at any path; optionally honours ``Range: bytes=N-``."""

    def __init__(self, payload: bytes, honour_range: bool = True):
        super().__init__(("127.0.0.1", 0), _RangeHandler)
        self.payload, self.honour_range = payload, honour_range
        self.ranges: list[str | None] = []
        self.bytes_sent = 0


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    server: _RangeServer

    def do_GET(self):  # noqa: N802 (http.server API)
        payload, rng = self.server.payload, self.headers.get("Range")
        self.server.ranges.append(rng)
        start = 0
        if rng and self.server.honour_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(payload):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(payload)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
        else:
            self.send_response(200)
        body = payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.bytes_sent += len(body)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def serve():
    servers = []

    def start(payload: bytes, honour_range: bool = True) -> tuple[_RangeServer, str]:
        server = _RangeServer(payload, honour_range)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_address[1]}/nerf_synthetic.zip"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_http_resume_with_range(archive, data_root, serve):
    _, data, digest = archive
    server, url = serve(data)
    half = len(data) // 2
    part = _archive_path(data_root).with_name("nerf_synthetic.zip.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:half])

    out = download_dataset(NAME, data_root, url=url, sha256=digest, progress=False)

    _assert_unpacked(out, data_root)
    assert server.ranges == [f"bytes={half}-"]
    assert server.bytes_sent == len(data) - half
    assert _archive_path(data_root).read_bytes() == data


def test_http_server_ignoring_range_restarts(archive, data_root, serve):
    _, data, digest = archive
    server, url = serve(data, honour_range=False)
    part = _archive_path(data_root).with_name("nerf_synthetic.zip.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 100)  # wrong bytes: only a restart from zero can pass the check

    download_dataset(NAME, data_root, url=url, sha256=digest, progress=False)

    assert server.ranges == ["bytes=100-"] and server.bytes_sent == len(data)
    assert _archive_path(data_root).read_bytes() == data


def test_http_complete_part_file_is_accepted(archive, tmp_path, serve):
    _, data, _ = archive
    server, url = serve(data)
    dest = tmp_path / "out.zip"
    dest.with_name("out.zip.part").write_bytes(data)
    assert dl._fetch(url, dest, progress=False) == 0
    assert dest.read_bytes() == data and server.bytes_sent == 0


def test_unreachable_server_is_user_facing(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match=f"127.0.0.1:{port}"):
        dl._fetch(f"http://127.0.0.1:{port}/x.zip", tmp_path / "x.zip", progress=False)


def test_real_source_is_well_formed():
    src = SOURCES[NAME]
    assert src.url.startswith("https://") and src.archive_name == "nerf_synthetic.zip"
    assert src.unpacks_to == "nerf_synthetic"
    assert src.sha256 is None or len(src.sha256) == 64


def test_cli_download_then_scene_is_found_through_the_data_root(archive, data_root, capsys, monkeypatch):
    from nfields.cli import main
    from nfields.datasets import resolve_scene_dir

    url, _, digest = archive
    assert main(["download", NAME, "--data-root", str(data_root), "--url", url, "--sha256", digest]) == 0
    assert "nerf_synthetic" in capsys.readouterr().out
    monkeypatch.setenv("FIELDS_DATA_ROOT", str(data_root))
    assert resolve_scene_dir("lego") == data_root / "nerf_synthetic" / "lego"
    assert main(["download", NAME, "--data-root", str(data_root), "--url", url, "--sha256", "0" * 64]) == 0
