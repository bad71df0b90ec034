"""LPIPS's network (Zhang et al. 2018: an AlexNet trunk and the lpips package's v0.1 linear layers), when the
optional `lpips` package and the AlexNet weights are at hand.

The lpips package ships its linear layers; the AlexNet trunk is torchvision's ImageNet weights, fetched once
(233 MB) into torch's hub cache, TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints), where
torchvision looks for them. Without the package, or offline with nothing cached, `load_lpips` prints one line
saying so (and how to get it) and returns None: evaluation then scores PSNR and SSIM only.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
import urllib.request
import warnings
from pathlib import Path
from urllib.parse import urlparse

import torch
from tqdm import tqdm

from .distributed import launch_rank

DOWNLOAD_TIMEOUT = 30  # seconds without an answer or a byte before the weights download is given up
HASH = re.compile(r"-([a-f0-9]{6,})\.")  # torch hub file names carry a SHA-256 prefix: alexnet-owt-7be5be79.pth


def install_line() -> str:
    """The pip line that adds LPIPS and keeps the installed torch: torchvision's builds are made for one torch
    release and build each (PyPI's for PyPI's torch; a CPU or CUDA build from PyTorch's index for its torch)."""
    build = torch.__version__.partition("+")[2]
    index = f" --extra-index-url https://download.pytorch.org/whl/{build}" if build else ""
    return f'pip install lpips==0.1.4 torchvision "torch=={torch.__version__}"{index}'


def notice(message: str) -> None:
    """One line on stderr; under torchrun from rank 0 only (every rank loads the network, one line says it)."""
    if launch_rank() == 0:
        print(f"fields: {message}", file=sys.stderr, flush=True)


def backbone_file(url: str) -> Path:
    """Where torchvision keeps the weights at `url`: the torch hub cache's checkpoints folder."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


@functools.cache
def load_lpips(device: str = "cpu") -> torch.nn.Module | None:
    """lpips.LPIPS(net="alex") in eval mode on `device`; None after a one-line notice when lpips or torchvision is
    missing, torchvision does not import, or the AlexNet weights can be neither fetched nor read. Once per process
    and device."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's image extension, unused here, may warn on import
            import lpips
            from torchvision.models import AlexNet_Weights
    except ModuleNotFoundError as err:
        notice(f"LPIPS not scored (PSNR and SSIM only): the {err.name} package is not installed; to score it: "
               f"{install_line()}")
        return None
    except (ImportError, RuntimeError) as err:  # e.g. PyPI's torchvision (a CUDA build) beside a CPU torch
        notice(f"LPIPS not scored (PSNR and SSIM only): torchvision does not import ({str(err).splitlines()[0]}): "
               f"it is not the build for torch {torch.__version__}; to score it: pip uninstall -y torchvision && "
               f"{install_line()}")
        return None
    url = AlexNet_Weights.IMAGENET1K_V1.url
    cached = backbone_file(url)
    if not cached.is_file():
        try:
            fetch(url, cached)
        except OSError as err:  # urllib's URLError and timeouts are OSErrors
            notice(f"LPIPS not scored (PSNR and SSIM only): cannot fetch the AlexNet weights from {url} "
                   f"({getattr(err, 'reason', err)}); with network access they are fetched once and cached in "
                   f"{cached.parent}")
            return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lpips 0.1.4 asks torchvision for AlexNet by its deprecated `pretrained`
            network = lpips.LPIPS(net="alex", verbose=False)
    except Exception as err:  # torch.load raises many types for a damaged file
        notice(f"LPIPS not scored (PSNR and SSIM only): cannot read the AlexNet weights {cached} "
               f"({str(err).splitlines()[0]}); delete the file to fetch it again")
        return None
    return network.eval().to(device)


def fetch(url: str, target: Path) -> None:
    """Download `url` to `target` (through a temporary file beside it), checking the SHA-256 prefix in its name;
    one notice line once the server answers."""
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
        size = int(response.headers.get("Content-Length") or 0)
        notice(f"LPIPS: fetching the AlexNet weights ({size / 1e6:.0f} MB) from {url} into {target.parent}, once: "
               "they stay cached there")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        digest = hashlib.sha256()
        try:
            with open(partial, "wb") as f, tqdm(total=size, unit="B", unit_scale=True, desc="AlexNet weights",
                                                 disable=not sys.stderr.isatty(), leave=False) as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            expected = HASH.search(target.name)
            if expected and not digest.hexdigest().startswith(expected.group(1)):
                raise OSError(f"the download's SHA-256 does not start with {expected.group(1)}, as its name says")
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
