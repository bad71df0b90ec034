"""Resumable, checksummed downloads of public data sets (``fields download <name>``).

Archives land in ``<data_root>/.downloads/``; an interrupted transfer is kept as
``<archive>.part`` and resumed on the next call (HTTP ``Range`` requests, or a seek
for ``file://`` URLs).  After the sha256 check the archive is unpacked into a
temporary folder inside ``data_root`` and renamed into place, so the data folder
only ever appears complete.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

__all__ = ["DownloadError", "DatasetSource", "SOURCES", "download_dataset"]

_CHUNK = 1 << 20
_TIMEOUT_S = 60


class DownloadError(Exception):
    """A download, checksum or unpack failure, with a message meant for the user."""


@dataclass(frozen=True)
class DatasetSource:
    """Where a data set comes from and what its archive unpacks to."""

    name: str
    url: str
    sha256: str  # of the archive at `url`
    archive_name: str  # saved under <data_root>/.downloads/
    unpacks_to: str  # folder the archive creates inside data_root
    description: str


SOURCES: dict[str, DatasetSource] = {
    "nerf-synthetic": DatasetSource(
        name="nerf-synthetic",
        # Hugging Face mirror pinned to the commit that uploaded the file, so the bytes
        # cannot change under the checksum below.
        url=(
            "https://huggingface.co/datasets/kxic/EscherNet-Dataset/resolve/"
            "95cf734c0c3c892a8bc478a6837e5340c4996ca8/nerf_synthetic.zip"
        ),
        # Git LFS oid (= sha256 of the file) published in that commit's pointer;
        # size 1,276,746,656 bytes, the size of the original Google Drive archive.
        sha256="198495af00e9b9a50f20d4faa6b78cc0f3d1d13b3c34d100fb26ea513d40aaa0",
        archive_name="nerf_synthetic.zip",
        unpacks_to="nerf_synthetic",
        description=(
            "NeRF synthetic Blender scenes (Mildenhall et al., ECCV 2020): chair, drums, "
            "ficus, hotdog, lego, materials, mic, ship; ~1.3 GB. The authors distribute "
            "nerf_synthetic.zip on Google Drive (folder 128yBriW1IG_3NJ5Rp7APSTZsJqdJdfc1), "
            "which needs a browser/gdown; this is the copy in the public Hugging Face dataset "
            "kxic/EscherNet-Dataset (EscherNet, Kong et al. 2024), commit 95cf734, whose LFS "
            "pointer states the sha256. Other mirrors used by public NeRF code, e.g. "
            "huggingface.co/datasets/XayahHina/nerf_synthetic or "
            "huggingface.co/donydchen/matchnerf, can be given with url= and their sha256."
        ),
    ),
}


def download_dataset(
    name: str,
    data_root: Path,
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """Download, verify and unpack data set ``name``; return ``data_root / unpacks_to``.

    Returns at once when the data is already unpacked. A partial ``<archive>.part`` is
    resumed. ``sha256`` overrides the source's checksum; a ``url`` overriding the source
    URL needs it (another URL may serve other bytes). An archive already in ``.downloads/``
    is checked like a new one. Raises DownloadError on an unknown name, a ``url`` without
    ``sha256``, a network/IO failure, a checksum mismatch (the bad archive is deleted) or an
    unsafe/unreadable archive.
    """
    source = SOURCES.get(name)
    if source is None:
        raise DownloadError(
            f"Unknown data set {name!r}. Available: {', '.join(sorted(SOURCES))}."
        )
    data_root = Path(data_root).expanduser()
    target = data_root / source.unpacks_to
    if target.is_dir() and any(target.iterdir()):
        return target

    if url is not None and not sha256:
        raise DownloadError(
            f"--url {url}: give the archive's checksum with --sha256 (another mirror may serve other "
            "bytes); compute it from a copy you trust with `sha256sum FILE` (macOS: `shasum -a 256 FILE`)."
        )
    url, expected = url or source.url, sha256 or source.sha256
    downloads = data_root / ".downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archive = downloads / source.archive_name

    expected = expected.strip().lower()
    if archive.exists() and _sha256_of(archive) == expected:
        _say(f"Using previously downloaded {archive}")
    else:
        archive.unlink(missing_ok=True)  # another mirror's bytes, or damaged: never reused unverified
        _fetch(url, archive, progress)
    digest = _sha256_of(archive)
    if digest != expected:
        archive.unlink()
        raise DownloadError(
            f"Checksum mismatch for {archive.name} from {url}: expected sha256 "
            f"{expected}, got {digest}. The bad file was deleted; run the command "
            "again to re-download, or pass a different URL."
        )
    _unpack(archive, data_root, source.unpacks_to)
    return target


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fetch(url: str, dest: Path, progress: bool = True) -> int:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming it; return bytes read."""
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    stream, offset, total = _open(url, offset)
    if offset:
        _say(f"Resuming download of {dest.name} from byte {offset:,}")
    received = 0
    try:
        with stream, open(part, "ab" if offset else "wb") as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=dest.name, disable=not progress,
        ) as bar:
            while chunk := stream.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, short reads
        raise DownloadError(
            f"Download of {url} interrupted ({exc}); {part} was kept, run the command "
            "again to resume."
        ) from exc
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(
            f"Download of {url} stopped at {size:,} of {total:,} bytes; {part} was kept, "
            "run the command again to resume."
        )
    part.replace(dest)
    return received


def _open(url: str, offset: int):
    """Open ``url`` at byte ``offset``; return (stream, actual offset, total size or None)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        path = Path(urllib.request.url2pathname(parsed.path))
        try:
            total = path.stat().st_size
            stream = open(path, "rb")
        except OSError as exc:
            raise DownloadError(f"Cannot read {url}: {exc}. Check the path.") from exc
        offset = offset if offset <= total else 0  # a longer .part is stale: restart
        stream.seek(offset)
        return stream, offset, total
    if parsed.scheme not in ("http", "https"):
        raise DownloadError(f"Unsupported URL {url!r}: use http(s):// or file://.")

    headers = {"User-Agent": "nfields-downloader"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        request = urllib.request.Request(url, headers=headers)
        resp = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # range past the end: .part complete, or stale
            complete = exc.headers.get("Content-Range", "") == f"bytes */{offset}"
            return (_Empty(), offset, offset) if complete else _open(url, 0)
        raise DownloadError(f"Download of {url} failed: HTTP {exc.code} {exc.reason}.") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(
            f"Cannot reach {url} ({exc}). Check the network, or pass another URL."
        ) from exc

    length = resp.headers.get("Content-Length")
    if offset and resp.status == 206 and resp.headers.get("Content-Range", "").startswith(
        f"bytes {offset}-"
    ):
        return resp, offset, offset + int(length) if length else None
    if offset:
        _say(f"Server ignored the range request for {url}; restarting from zero.")
    return resp, 0, int(length) if length else None


class _Empty:
    """Stand-in stream for a transfer that has nothing left to read."""

    def read(self, _n: int) -> bytes:
        return b""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_member(name: str, archive: Path) -> None:
    """Reject members that would land outside the extraction folder."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise DownloadError(
            f"Refusing to unpack {archive}: unsafe member path {name!r}. "
            "The archive was deleted; download it from a trusted source."
        )


def _unpack(archive: Path, data_root: Path, folder: str) -> None:
    """Extract into a temp folder inside ``data_root``, then rename to ``data_root/folder``."""
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=data_root))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    _check_member(member, archive)
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                for member in tf.getmembers():
                    _check_member(member.name, archive)
                    if member.issym() or member.islnk():
                        _check_member(member.linkname, archive)
                    if member.isdev():
                        raise DownloadError(
                            f"Refusing to unpack {archive}: device file {member.name!r}. The archive was deleted."
                        )
                tf.extractall(tmp, filter="data")
        else:
            raise DownloadError(
                f"{archive} is neither a zip nor a tar archive; it was deleted, retry with another URL."
            )
        src = tmp / folder
        (src if src.is_dir() else tmp).rename(data_root / folder)  # no top folder: use all
    except DownloadError:  # refused: an archive that will be refused again is not kept
        archive.unlink(missing_ok=True)
        raise
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
        raise DownloadError(f"Could not unpack {archive}: {exc}. Delete it and retry.") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
