"""The maths that losses and metrics share: observation log-densities and SSIM.

Plain tensor functions with no argument checks and no batch reductions: each caller checks
its inputs under its own names (``input``/``target`` in a loss, ``x``/``y`` in a metric) and
reduces its own way. One implementation serves :mod:`vaekit.distributions`,
:mod:`vaekit.losses` and :mod:`vaekit.metrics`, so a loss and the metric of the same name
cannot drift apart, and metrics never import losses (the layer table is in
``vaekit/__init__.py``). This module imports nothing from vaekit.

Log-densities, elementwise, in nats; ``logvar`` is a log-*variance* for both families (a
Laplace with scale b has variance 2b²):

    Gaussian   log N(x; m, σ²)    = -0.5 (log 2π + log σ² + (x - m)² / σ²)
    Laplace    log Lap(x; m, b)   = -log 2b - |x - m| / b
    Bernoulli  log Bern(x; p)     = x log p + (1 - x) log(1 - p)   (each log floored at -100,
                                                                    as torch's BCE does)

SSIM: Wang, Bovik, Sheikh & Simoncelli 2004; MS-SSIM: Wang, Simoncelli & Bovik 2003, with
pytorch-msssim's per-level statistics ("valid" Gaussian filtering, window 11, σ 1.5,
k1 = 0.01, k2 = 0.03 by default).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

__all__ = [
    "LOG_2",
    "LOG_2PI",
    "bernoulli_log_prob",
    "float32_island",
    "gaussian_log_prob",
    "gaussian_window",
    "laplace_log_prob",
    "logvar_of_scale",
    "ms_ssim",
    "ssim",
    "upcast_half",
]

LOG_2 = math.log(2.0)
LOG_2PI = math.log(2.0 * math.pi)
_CS_FLOOR = 1e-6  # keeps x ** w (w < 1) differentiable where SSIM/cs would be <= 0


# -- precision --------------------------------------------------------------------------------
def upcast_half(x: torch.Tensor) -> torch.Tensor:
    """fp16/bf16 -> float32; float32 and float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def float32_island(like: torch.Tensor) -> torch.autocast:
    """Disable autocast so the maths stays in float32 (convolutions, FFTs, powers)."""
    return torch.autocast(device_type=like.device.type, enabled=False)


# -- observation log-densities ----------------------------------------------------------------
def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise ``log N(x; mean, exp(logvar))`` in nats, float32 or float64 (broadcasts)."""
    x, mean, logvar = upcast_half(x), upcast_half(mean), upcast_half(logvar)
    return -0.5 * (LOG_2PI + logvar + (x - mean).square() * torch.exp(-logvar))


def laplace_log_prob(x: torch.Tensor, loc: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise ``log Laplace(x; loc, b)`` in nats with ``2 b² = exp(logvar)`` (broadcasts)."""
    x, loc, logvar = upcast_half(x), upcast_half(loc), upcast_half(logvar)
    log_b = 0.5 * (logvar - LOG_2)
    return -(LOG_2 + log_b + (x - loc).abs() * torch.exp(-log_b))


def bernoulli_log_prob(x: torch.Tensor, p: torch.Tensor, *, logits: bool = False) -> torch.Tensor:
    """Elementwise ``log Bernoulli(x; p)`` in nats; ``p`` holds logits when ``logits=True``.

    ``x`` may be any value in [0, 1] (the usual relaxation for grey images). Runs in float32
    under autocast (``F.binary_cross_entropy`` refuses fp16).
    """
    with float32_island(p):
        if logits:
            return -F.binary_cross_entropy_with_logits(p, x, reduction="none")
        return -F.binary_cross_entropy(p, x, reduction="none")


def logvar_of_scale(family: str, scale: float) -> float:
    """The log-variance of a fixed scale: Gaussian σ -> log σ², Laplace b -> log 2b²."""
    return 2.0 * math.log(scale) + (LOG_2 if family == "laplace" else 0.0)


# -- SSIM -------------------------------------------------------------------------------------
def gaussian_window(
    window_size: int, window_sigma: float, side: int, like: torch.Tensor
) -> torch.Tensor:
    """pytorch-msssim's 1-D Gaussian window, one per channel of ``like``.

    A window larger than the image (``side``: its shortest side) shrinks to the largest odd
    size that fits, where pytorch-msssim would skip the filtering.
    """
    size = min(window_size, side if side % 2 == 1 else side - 1)
    win = _fspecial_gauss_1d(size, window_sigma).to(device=like.device, dtype=like.dtype)
    return win.repeat(like.shape[1], 1, 1, 1)


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float,
    window_size: int,
    window_sigma: float,
    k1: float,
    k2: float,
) -> torch.Tensor:
    """SSIM per image, averaged over channels and window positions: ``(B, C, H, W) -> (B,)``.

    Computed with autocast off, in the inputs' dtype (upcast fp16/bf16 first).
    """
    with float32_island(x):
        win = gaussian_window(window_size, window_sigma, min(x.shape[-2:]), x)
        ssim_per_channel, _ = _ssim(x, y, data_range=data_range, win=win, K=(k1, k2))
        return ssim_per_channel.mean(1)


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float,
    window_size: int,
    window_sigma: float,
    k1: float,
    k2: float,
    exponents: Sequence[float],
) -> torch.Tensor:
    """MS-SSIM per image over ``len(exponents)`` levels (finest first): ``(B, C, H, W) -> (B,)``.

    Each level halves the image (2x2 average pool, padded on odd sides). The contrast terms
    (and the last level's SSIM) are floored at a small positive value before the fractional
    power, so negative structure never gives NaN values or gradients.
    """
    levels = len(exponents)
    with float32_island(x):
        win = gaussian_window(window_size, window_sigma, min(x.shape[-2:]), x)
        value = torch.ones(x.shape[:2], device=x.device, dtype=x.dtype)
        for level, exponent in enumerate(exponents):
            ssim_per_channel, cs = _ssim(x, y, data_range=data_range, win=win, K=(k1, k2))
            last = level == levels - 1
            term = ssim_per_channel if last else cs
            value = value * term.clamp_min(_CS_FLOOR) ** exponent
            if not last:
                padding = [s % 2 for s in x.shape[2:]]
                x = F.avg_pool2d(x, kernel_size=2, padding=padding)
                y = F.avg_pool2d(y, kernel_size=2, padding=padding)
        return value.mean(1)
