"""Frequency-domain loss: L1 distance between 2-D Fourier spectra.

``|rfft2(input) - rfft2(target)|`` with ``norm="ortho"`` (so the spectrum has the same energy
as the image, Parseval), the complex modulus of the difference by default. Pixel losses
under-weight high frequencies, which is one source of VAE blur; this term penalises missing
detail directly. ``amplitude_only`` compares magnitudes and ignores phase; ``focal > 0``
adds the focal-frequency weighting of Jiang et al. 2021 ("Focal Frequency Loss"): each
frequency is weighted by its (detached) error to the power ``focal``, normalised per image.
Computed in float32 with autocast disabled (FFTs in fp16 are inaccurate and size-limited).
"""

from __future__ import annotations

import torch

from .._validation import check_positive, check_reduction
from ._common import FunctionalLoss, float32_island, prepare, reduce_loss
from .registry import register

__all__ = ["FFTLoss", "fft_loss"]


def fft_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    amplitude_only: bool = False,
    focal: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """L1 distance of the orthonormal 2-D real FFTs of ``input`` and ``target``.

    Args:
        input: reconstruction. target: data.
        amplitude_only: compare ``|F(input)|`` and ``|F(target)|`` (phase ignored).
        focal: focal-frequency exponent alpha (0 = off, Jiang et al. use 1).
        reduction: ``"none" | "mean" | "sum" | "batchmean"`` over spectrum elements.

    Shape:
        input, target: (B, C, H, W); output: scalar, or (B, C, H, W // 2 + 1) for ``"none"``.

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.zeros(1, 1, 4, 4); y = torch.zeros(1, 1, 4, 4); y[..., 0, 0] = 4.0
        >>> vk.functional.fft_loss(x, y, reduction="sum")  # 12 coefficients of 4/sqrt(16) each
        tensor(12.)
    """
    check_reduction(reduction)
    check_positive(focal, "focal", strict=False)
    x, y = prepare(input, target)
    with float32_island(x):
        fx = torch.fft.rfft2(x, norm="ortho")
        fy = torch.fft.rfft2(y, norm="ortho")
        dist = (fx.abs() - fy.abs()).abs() if amplitude_only else (fx - fy).abs()
        if focal > 0:
            weight = dist.detach() ** focal
            weight = weight / weight.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
            dist = weight * dist
        return reduce_loss(dist, reduction)


@register("fft", aliases=("spectral",))
class FFTLoss(FunctionalLoss):
    """Module form of :func:`fft_loss`.

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.rand(1, 3, 8, 8)
        >>> float(vk.losses.FFTLoss(focal=1.0)(x, x))
        0.0
    """

    function = fft_loss

    def __init__(
        self, *, amplitude_only: bool = False, focal: float = 0.0, reduction: str = "mean"
    ) -> None:
        check_positive(focal, "focal", strict=False)
        super().__init__(amplitude_only=amplitude_only, focal=focal, reduction=reduction)
