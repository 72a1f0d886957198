"""Structural similarity losses: ``1 - SSIM`` and ``1 - MS-SSIM``.

SSIM: Wang, Bovik, Sheikh & Simoncelli 2004; MS-SSIM: Wang, Simoncelli & Bovik 2003. The
per-level statistics come from pytorch-msssim (Gaussian window 11, sigma 1.5, k1 = 0.01,
k2 = 0.03), so on images that library accepts the values agree with it. The maths lives in
:mod:`vaekit._maths`, shared with :func:`vaekit.metrics.ssim`.

Parameter names (the same in :func:`vaekit.metrics.ssim`): ``window_size``, ``window_sigma``,
``k1``, ``k2``. pytorch-msssim's names ``win_size``, ``win_sigma`` and ``K=(k1, k2)`` are
accepted as aliases.

Small images. pytorch-msssim's MS-SSIM asserts a side > 160 px (5 levels of an 11-px window).
Here the number of levels is the largest ``L <= len(weights)`` for which the coarsest level
(each level halves the side, rounding up) is still at least ``window_size`` pixels, and the
first ``L`` weights are rescaled to the sum of all the weights (~1; see :func:`ms_ssim_levels`):
28 and 32 px give 2 levels, 64 px 3, 128 px 4, 161 px and up all 5. If even one level does not
fit, the window shrinks to the largest odd size that fits (SSIM does the same), so nothing
asserts.

Numerics: computed in float32 with autocast disabled; contrast terms are clamped to a small
positive floor before the fractional powers, so negative ``cs`` never gives NaN values or
gradients (pytorch-msssim uses ``relu``, whose ``0 ** w`` has an infinite gradient).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .. import _maths
from .._validation import (
    check_gaussian_window,
    check_number,
    check_reduction,
    old_keyword_names,
)
from ._common import FunctionalLoss, float32_island, prepare, reduce_loss
from .registry import register

__all__ = ["MSSSIMLoss", "SSIMLoss", "ms_ssim_levels", "ms_ssim_loss", "ssim_loss"]

MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# pytorch-msssim's names of the window and constants, kept as aliases
_OLD_NAMES = {"win_size": "window_size", "win_sigma": "window_sigma", "K": ("k1", "k2")}


def _check_window(window_size: object, window_sigma: object, data_range: object) -> None:
    check_gaussian_window(window_size, window_sigma)
    check_number(data_range, "data_range", above=0)


def _level_weights(weights: Sequence[float] | None) -> tuple[float, ...]:
    weights = tuple(MS_SSIM_WEIGHTS if weights is None else weights)
    if not weights or any(not w >= 0 for w in weights) or not sum(weights) > 0:
        raise ValueError(f"weights must be non-negative numbers with a positive sum, got {weights}")
    return weights


@old_keyword_names(**_OLD_NAMES)
def ssim_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    window_size: int = 11,
    window_sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    reduction: str = "mean",
) -> torch.Tensor:
    """``1 - SSIM`` per image (SSIM averaged over channels and window positions).

    Args:
        input, target: images in ``[0, data_range]``.
        data_range: value range (1.0 for [0, 1] images).
        window_size, window_sigma: Gaussian window (odd size, std in pixels); shrunk to the
            image if the image is smaller. Old names: ``win_size``, ``win_sigma``.
        k1, k2: stability constants, ``C1 = (k1 R)²`` and ``C2 = (k2 R)²``. Old name:
            ``K=(k1, k2)``.
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
    _check_window(window_size, window_sigma, data_range)
    x, y = prepare(input, target, data_range=data_range)
    with float32_island(x):
        value = _maths.ssim(x, y, data_range=data_range, window_size=window_size,
                            window_sigma=window_sigma, k1=k1, k2=k2)  # fmt: skip
        return reduce_loss(1.0 - value, reduction)


@old_keyword_names(win_size="window_size")
def ms_ssim_levels(side: int, window_size: int = 11, max_levels: int = 5) -> int:
    """How many MS-SSIM levels an image with shortest side ``side`` supports.

    The largest ``L <= max_levels`` such that the side after ``L - 1`` halvings (rounding
    up, as the padded 2x2 average pool does) is still ``>= window_size``; at least 1.

    Example:
        >>> import vaekit as vk
        >>> [vk.losses.ms_ssim_levels(s) for s in (28, 32, 64, 128, 160, 161)]
        [2, 2, 3, 4, 4, 5]
    """
    levels = 1
    while levels < max_levels:
        side = (side + 1) // 2
        if side < window_size:
            break
        levels += 1
    return levels


@old_keyword_names(**_OLD_NAMES)
def ms_ssim_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    window_size: int = 11,
    window_sigma: float = 1.5,
    weights: Sequence[float] | None = None,
    k1: float = 0.01,
    k2: float = 0.03,
    reduction: str = "mean",
) -> torch.Tensor:
    """``1 - MS-SSIM`` per image, with fewer levels on small images (see module docstring).

    Args:
        input, target: images in ``[0, data_range]``.
        data_range: value range (1.0 for [0, 1] images).
        window_size, window_sigma: Gaussian window (old names ``win_size``, ``win_sigma``).
        weights: per-level exponents, finest first (default: Wang et al.'s five). Only the
            first :func:`ms_ssim_levels` are used on small images, rescaled to the same sum.
        k1, k2: stability constants (old name ``K=(k1, k2)``).
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
    _check_window(window_size, window_sigma, data_range)
    weights = _level_weights(weights)
    x, y = prepare(input, target, data_range=data_range)
    levels = ms_ssim_levels(min(x.shape[-2:]), window_size, len(weights))
    # keep the exponents' total: unchanged at full depth (== pytorch-msssim), rescaled if cut
    rescale = sum(weights) / sum(weights[:levels])
    exponents = [w * rescale for w in weights[:levels]]
    with float32_island(x):
        value = _maths.ms_ssim(x, y, data_range=data_range, window_size=window_size,
                               window_sigma=window_sigma, k1=k1, k2=k2, exponents=exponents)  # fmt: skip
        return reduce_loss(1.0 - value, reduction)


class _StructuralLoss(FunctionalLoss):
    def check_hparams(self, hparams: dict[str, Any]) -> dict[str, Any]:
        _check_window(hparams["window_size"], hparams["window_sigma"], hparams["data_range"])
        if hparams.get("weights") is not None:  # MS-SSIM's, checked now rather than at step 1
            hparams["weights"] = _level_weights(hparams["weights"])
        return hparams


@register("ssim")
class SSIMLoss(_StructuralLoss):
    """Module form of :func:`ssim_loss` (``1 - SSIM``), same arguments and aliases.

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> float(vk.losses.SSIMLoss()(x, x))
        0.0
    """

    function = ssim_loss


@register("ms_ssim", aliases=("msssim",))
class MSSSIMLoss(_StructuralLoss):
    """Module form of :func:`ms_ssim_loss` (``1 - MS-SSIM``; works from 1 px up), same
    arguments and aliases.

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> float(vk.losses.MSSSIMLoss()(x, x))
        0.0
    """

    function = ms_ssim_loss
