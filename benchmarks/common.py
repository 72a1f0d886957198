"""Shared pieces of the benchmark suite: the machine, versions, peers, timing, data.

Every peer is an ordinary PyPI package (``pip install -e ".[bench]"``), never vendored code.
A peer that is missing is reported as a row that says why, not dropped.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("VAEKIT_BENCH_CACHE", HERE / ".cache"))

# name -> (import name, distribution name, what the benchmark uses it for)
PEERS: dict[str, tuple[str, str, str]] = {
    "pythae": (
        "pythae",
        "pythae",
        "VAE + MNIST ResNet/conv nets + BaseTrainer; GaussianMixture and TwoStageVAE samplers",
    ),
    "diffusers": ("diffusers", "diffusers", "AutoencoderKL"),
    "pytorch-msssim": ("pytorch_msssim", "pytorch-msssim", "SSIM / MS-SSIM"),
    "piq": ("piq", "piq", "SSIM / MS-SSIM"),
    "kornia": ("kornia", "kornia", "SSIM / MS-SSIM"),
    "lpips": ("lpips", "lpips", "LPIPS"),
    "focal-frequency-loss": ("focal_frequency_loss", "focal-frequency-loss", "focal frequency"),
    "monai": ("monai", "monai", "perceptual (ResNet-50) and spectral (Jukebox) losses"),
}
# Peers known not to install next to this torch; filled from what `pip install --dry-run`
# said on the benchmark machine (empty: every peer above installed with torch 2.14.1).
NOT_INSTALLABLE: dict[str, str] = {}
_EXCLUDED: set[str] = set()  # --without NAME: behave as if the peer were missing


@dataclass(frozen=True)
class PeerStatus:
    name: str
    available: bool
    version: str | None
    reason: str | None  # why it is unavailable


def exclude_peers(names: list[str]) -> None:
    unknown = sorted(set(names) - set(PEERS))
    if unknown:
        raise SystemExit(f"--without: unknown peer(s) {unknown}; known: {sorted(PEERS)}")
    _EXCLUDED.update(names)


_STATUS: dict[str, PeerStatus] = {}


def peer_status(name: str) -> PeerStatus:
    """Whether a peer can be used here; imports it once to be sure."""
    if name in _STATUS:
        return _STATUS[name]
    module, dist, _ = PEERS[name]
    version = None
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        version = importlib.metadata.version(dist)
    if name in _EXCLUDED:
        status = PeerStatus(name, False, version, "excluded with --without")
    elif name in NOT_INSTALLABLE:
        status = PeerStatus(name, False, None, f"not installable here: {NOT_INSTALLABLE[name]}")
    elif version is None:
        status = PeerStatus(name, False, None, 'not installed here (pip install -e ".[bench]")')
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importlib.import_module(module)
            status = PeerStatus(name, True, version, None)
        except Exception as err:  # a broken install is reported, not fatal
            status = PeerStatus(name, False, version, f"import fails: {type(err).__name__}: {err}")
    _STATUS[name] = status
    return status


def require(name: str) -> None:
    """Raise PeerUnavailable when a peer cannot be used."""
    status = peer_status(name)
    if not status.available:
        raise PeerUnavailable(f"{name}: {status.reason}")


class PeerUnavailable(RuntimeError):
    """A peer package is missing; the row is reported with this message."""


# -- machine -----------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict:
    info = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "device": str(device),
        "load_average": [round(v, 2) for v in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def versions() -> dict[str, str | None]:
    import vaekit

    out: dict[str, str | None] = {
        "vaekit": vaekit.__version__,
        "torch": torch.__version__,
    }
    for dist in ("torchvision", "numpy"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    for name in PEERS:
        out[name] = peer_status(name).version
    return out


# -- timing ------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(
    step: Callable[[], object], repeats: int, device: torch.device, warmup: int = 1
) -> float:
    """Median wall-clock seconds of ``step`` after ``warmup`` calls."""
    return interleaved_seconds([step], repeats, device, warmup=warmup)[0]


def interleaved_seconds(
    steps: list[Callable[[], object]], repeats: int, device: torch.device, warmup: int = 1
) -> list[float]:
    """Median seconds of each step, timed round-robin so machine load hits all alike."""
    for step in steps:
        for _ in range(warmup):
            step()
    sync(device)
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(repeats):
        for step, bucket in zip(steps, times):
            t = time.perf_counter()
            step()
            sync(device)
            bucket.append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


def matmul_flops(device: torch.device, n: int = 2048, seconds: float = 1.0) -> float:
    """Dense fp32 matmul FLOP/s of this machine (bf16 on CUDA), best of a short run."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    n = 8192 if device.type == "cuda" else n
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds or best == float("inf"):
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


# -- data --------------------------------------------------------------------------------------
def fashion_mnist(split: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST padded to 32x32 (the Debian package, via vk.data)."""
    import vaekit as vk

    return vk.data.load_fashion_mnist(split, pad_to=32, limit=limit)


def crop28(x: torch.Tensor) -> torch.Tensor:
    """The 28x28 content of a 32x32 zero-padded Fashion-MNIST image."""
    return x[..., 2:30, 2:30] if x.shape[-1] == 32 else x


def pad32(x: torch.Tensor) -> torch.Tensor:
    """Zero border back around 28x28 content (what the FD classifier was trained on)."""
    return torch.nn.functional.pad(crop28(x), (2, 2, 2, 2))


def _status_mib(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def current_rss_mib() -> float:
    """Resident memory of this process now (MiB)."""
    return _status_mib("VmRSS")


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark (Linux >= 4.0); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """Peak resident memory of this process (MiB) since start or the last reset.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork + exec, so a child of
    a big parent would report the parent's peak.
    """
    return _status_mib("VmHWM")
