"""Structural similarity losses: ``1 - SSIM`` and ``1 - MS-SSIM``.

SSIM: Wang, Bovik, Sheikh & Simoncelli 2004; MS-SSIM: Wang, Simoncelli & Bovik 2003. The
per-level statistics come from pytorch-msssim (Gaussian window 11, sigma 1.5, K = (0.01,
0.03)), so on images that library accepts the values agree with it.

Small images. pytorch-msssim's MS-SSIM asserts a side > 160 px (5 levels of an 11-px window).
Here the number of levels is the largest ``L <= len(weights)`` for which the coarsest level
(each level halves the side, rounding up) is still at least ``win_size`` pixels, and the
first ``L`` weights are rescaled to the sum of all the weights (~1; see :func:`ms_ssim_levels`): 28 and 32 px
give 2 levels, 64 px 3, 128 px 4, 161 px and up all 5. If even one level does not fit, the
window shrinks to the largest odd size that fits (SSIM does the same), so nothing asserts.

Numerics: computed in float32 with autocast disabled; contrast terms are clamped to a small
positive floor before the fractional powers, so negative ``cs`` never gives NaN values or
gradients (pytorch-msssim uses ``relu``, whose ``0 ** w`` has an infinite gradient).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

from .._validation import check_positive, check_reduction
from ._common import FunctionalLoss, float32_island, prepare, reduce_loss
from .registry import register

__all__ = ["MSSSIMLoss", "SSIMLoss", "ms_ssim_levels", "ms_ssim_loss", "ssim_loss"]

MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_CS_FLOOR = 1e-6  # keeps x ** w (w < 1) differentiable where SSIM/cs would be <= 0


def _window(win_size: int, win_sigma: float, side: int, like: torch.Tensor) -> torch.Tensor:
    # an 11-px window on a 8-px image would be skipped by pytorch-msssim: shrink it instead
    size = min(win_size, side if side % 2 == 1 else side - 1)
    win = _fspecial_gauss_1d(size, win_sigma).to(device=like.device, dtype=like.dtype)
    return win.repeat(like.shape[1], 1, 1, 1)


def _check_window(win_size: int, win_sigma: float, data_range: float) -> None:
    if (
        isinstance(win_size, bool)
        or not isinstance(win_size, int)
        or win_size < 1
        or win_size % 2 == 0
    ):
        raise ValueError(f"win_size must be a positive odd int, got {win_size!r}")
    check_positive(win_sigma, "win_sigma")
    check_positive(data_range, "data_range")


def ssim_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    win_size: int = 11,
    win_sigma: float = 1.5,
    K: tuple[float, float] = (0.01, 0.03),
    reduction: str = "mean",
) -> torch.Tensor:
    """``1 - SSIM`` per image (SSIM averaged over channels and window positions).

    Args:
        input, target: images in ``[0, data_range]``.
        data_range: value range (1.0 for [0, 1] images).
        win_size, win_sigma: Gaussian window; shrunk to the image if the image is smaller.
        K: stability constants (K1, K2).
        reduction: ``"none"`` gives (B,), else ``"mean" | "sum" | "batchmean"`` over images.

    Shape:
        input, target: (B, C, H, W); output: scalar, or (B,) for ``"none"``.

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> vk.functional.ssim_loss(x, x)
        tensor(0.)
    """
    check_reduction(reduction)
    _check_window(win_size, win_sigma, data_range)
    x, y = prepare(input, target, data_range=data_range)
    with float32_island(x):
        win = _window(win_size, win_sigma, min(x.shape[-2:]), x)
        ssim_per_channel, _ = _ssim(x, y, data_range=data_range, win=win, K=K)
        return reduce_loss(1.0 - ssim_per_channel.mean(1), reduction)


def ms_ssim_levels(side: int, win_size: int = 11, max_levels: int = 5) -> int:
    """How many MS-SSIM levels an image with shortest side ``side`` supports.

    The largest ``L <= max_levels`` such that the side after ``L - 1`` halvings (rounding
    up, as the padded 2x2 average pool does) is still ``>= win_size``; at least 1.

    Example:
        >>> import vaekit as vk
        >>> [vk.losses.ms_ssim_levels(s) for s in (28, 32, 64, 128, 160, 161)]
        [2, 2, 3, 4, 4, 5]
    """
    levels = 1
    while levels < max_levels:
        side = (side + 1) // 2
        if side < win_size:
            break
        levels += 1
    return levels


def ms_ssim_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    win_size: int = 11,
    win_sigma: float = 1.5,
    weights: Sequence[float] | None = None,
    K: tuple[float, float] = (0.01, 0.03),
    reduction: str = "mean",
) -> torch.Tensor:
    """``1 - MS-SSIM`` per image, with fewer levels on small images (see module docstring).

    Args:
        input, target: images in ``[0, data_range]``.
        data_range: value range (1.0 for [0, 1] images).
        win_size, win_sigma: Gaussian window.
        weights: per-level exponents, finest first (default: Wang et al.'s five). Only the
            first :func:`ms_ssim_levels` are used on small images, rescaled to the same sum.
        K: stability constants (K1, K2).
        reduction: ``"none"`` gives (B,), else ``"mean" | "sum" | "batchmean"`` over images.

    Shape:
        input, target: (B, C, H, W); output: scalar, or (B,) for ``"none"``.

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        >>> vk.functional.ms_ssim_loss(x, x)   # 28 px works: 2 levels
        tensor(0.)
    """
    check_reduction(reduction)
    _check_window(win_size, win_sigma, data_range)
    weights = tuple(MS_SSIM_WEIGHTS if weights is None else weights)
    if not weights or any(not w >= 0 for w in weights) or not sum(weights) > 0:
        raise ValueError(f"weights must be non-negative numbers with a positive sum, got {weights}")
    x, y = prepare(input, target, data_range=data_range)
    levels = ms_ssim_levels(min(x.shape[-2:]), win_size, len(weights))
    # keep the exponents' total: unchanged at full depth (== pytorch-msssim), rescaled if cut
    rescale = sum(weights) / sum(weights[:levels])
    exponents = [w * rescale for w in weights[:levels]]
    with float32_island(x):
        win = _window(win_size, win_sigma, min(x.shape[-2:]), x)
        value = torch.ones(x.shape[:2], device=x.device, dtype=x.dtype)
        for level, exponent in enumerate(exponents):
            ssim_per_channel, cs = _ssim(x, y, data_range=data_range, win=win, K=K)
            last = level == levels - 1
            term = ssim_per_channel if last else cs
            value = value * term.clamp_min(_CS_FLOOR) ** exponent
            if not last:
                padding = [s % 2 for s in x.shape[2:]]
                x = F.avg_pool2d(x, kernel_size=2, padding=padding)
                y = F.avg_pool2d(y, kernel_size=2, padding=padding)
        return reduce_loss(1.0 - value.mean(1), reduction)


@register("ssim")
class SSIMLoss(FunctionalLoss):
    """Module form of :func:`ssim_loss` (``1 - SSIM``).

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> float(vk.losses.SSIMLoss()(x, x))
        0.0
    """

    function = ssim_loss

    def __init__(
        self,
        *,
        data_range: float = 1.0,
        win_size: int = 11,
        win_sigma: float = 1.5,
        K: tuple[float, float] = (0.01, 0.03),
        reduction: str = "mean",
    ) -> None:
        _check_window(win_size, win_sigma, data_range)
        super().__init__(
            data_range=data_range, win_size=win_size, win_sigma=win_sigma, K=K, reduction=reduction
        )


@register("ms_ssim", aliases=("msssim",))
class MSSSIMLoss(FunctionalLoss):
    """Module form of :func:`ms_ssim_loss` (``1 - MS-SSIM``; works from 1 px up).

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> float(vk.losses.MSSSIMLoss()(x, x))
        0.0
    """

    function = ms_ssim_loss

    def __init__(
        self,
        *,
        data_range: float = 1.0,
        win_size: int = 11,
        win_sigma: float = 1.5,
        weights: Sequence[float] | None = None,
        K: tuple[float, float] = (0.01, 0.03),
        reduction: str = "mean",
    ) -> None:
        _check_window(win_size, win_sigma, data_range)
        super().__init__(
            data_range=data_range,
            win_size=win_size,
            win_sigma=win_sigma,
            weights=None if weights is None else tuple(weights),
            K=K,
            reduction=reduction,
        )
