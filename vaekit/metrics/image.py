"""Image-quality numbers: PSNR, SSIM (Wang et al. 2004) and blur/brightness statistics.

All functions take batches ``(N, C, H, W)``, compute one value per image and then (by default)
the mean over images, so a batch of one sharp and one ruined image does not average pixels
across them. Maths runs in float32 or float64 whatever the input dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from .. import _maths
from .._validation import (
    check_gaussian_window,
    check_image,
    check_number,
    check_range,
    check_same_shape,
    old_keyword_names,
)

__all__ = ["ImageStats", "image_stats", "psnr", "ssim"]

_REDUCTIONS = ("mean", "none")


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {list(_REDUCTIONS)}, got {reduction!r}")
    return values.mean() if reduction == "mean" else values


def _pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    check_image(x, "x")
    check_image(y, "y")
    check_same_shape(x, y, ("x", "y"))
    dtype = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    return x.to(dtype), y.to(dtype)


def psnr(
    x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, *, reduction: str = "mean"
) -> torch.Tensor:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / MSE)`` in dB, per image.

    Identical images give ``inf``.

    Args:
        x, y: image batches of the same shape.
        data_range: max - min of the pixel scale (1.0 for [0, 1] images, 255 for 8-bit).
        reduction: ``"mean"`` over images (default) or ``"none"`` for ``(N,)``.

    Shape:
        x, y: (N, C, H, W); output: scalar or (N,).

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.full((2, 1, 8, 8), 0.5)
        >>> vk.metrics.psnr(x, x + 0.1, reduction="none")   # MSE 0.01 -> 20 dB
        tensor([20.0000, 20.0000])
    """
    check_number(data_range, "data_range", above=0)
    x, y = _pair(x, y)
    mse = (x - y).square().flatten(1).mean(1)
    return _reduce(10.0 * torch.log10(data_range**2 / mse), reduction)


@old_keyword_names(sigma="window_sigma")
def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    *,
    window_size: int = 11,
    window_sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    reduction: str = "mean",
) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004), per image, then the mean over images.

    Gaussian window (11 x 11, sigma 1.5), constants ``C1 = (k1 R)^2``, ``C2 = (k2 R)^2``,
    statistics over "valid" windows only (no padding, as in the reference implementation);
    the SSIM map is averaged over channels and positions. The same maths as
    :func:`vaekit.functional.ssim_loss` (``ssim == 1 - ssim_loss``), with the same parameter
    names.

    Args:
        x, y: image batches of the same shape in ``[0, data_range]``, at least
            ``window_size`` pixels on each side.
        data_range: R, the pixel range (1.0 for [0, 1] images).
        window_size, window_sigma: Gaussian window (odd size, std in pixels); use a smaller
            window for tiny images. ``sigma`` is an old name of ``window_sigma``.
        k1, k2: stability constants.
        reduction: ``"mean"`` (default) or ``"none"`` for ``(N,)``.

    Shape:
        x, y: (N, C, H, W); output: scalar or (N,).

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> vk.metrics.ssim(x, x)
        tensor(1.)
        >>> bool(vk.metrics.ssim(x, x.flip(-1)) < 0.5)
        True
    """
    check_number(data_range, "data_range", above=0)
    check_gaussian_window(window_size, window_sigma)
    x, y = _pair(x, y)
    check_image(x, "x", min_size=window_size)
    hint = f"images must be scaled to [0, {data_range:g}] (data_range={data_range:g})"
    check_range(x, 0.0, data_range, "x", hint)
    check_range(y, 0.0, data_range, "y", hint)
    value = _maths.ssim(x, y, data_range=data_range, window_size=window_size,
                        window_sigma=window_sigma, k1=k1, k2=k2)  # fmt: skip
    return _reduce(value, reduction)


_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


@dataclass
class ImageStats:
    """Per-image statistics, each a ``(N,)`` tensor; :meth:`mean` averages over images.

    Attributes:
        sharpness: variance of the Laplacian of the grey image (Pech-Pacheco et al. 2000);
            blurry reconstructions score far below the real images they came from.
        brightness: mean pixel value.
        contrast: standard deviation of the pixel values.
        min, max: extreme pixel values (a sigmoid decoder that never reaches 0 or 1 shows
            here).
    """

    sharpness: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor
    min: torch.Tensor
    max: torch.Tensor

    def mean(self) -> dict[str, float]:
        """Each statistic averaged over the images, as plain floats."""
        return {f.name: float(getattr(self, f.name).mean()) for f in fields(self)}


def image_stats(x: torch.Tensor) -> ImageStats:
    """Sharpness (variance of the Laplacian), brightness, contrast, min and max per image.

    Compare real images with reconstructions and samples: a sharpness ratio far below 1 is
    blur; a shifted brightness or a smaller contrast are washed-out samples.

    Args:
        x: image batch, at least 3 x 3 pixels. Channels are averaged to grey for sharpness.

    Shape:
        x: (N, C, H, W); every field of the result: (N,).

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.zeros(2, 1, 8, 8); x[:, :, :, 4:] = 1.0   # a hard vertical edge
        >>> blurred = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
        >>> s, b = vk.metrics.image_stats(x), vk.metrics.image_stats(blurred)
        >>> bool((s.sharpness > b.sharpness).all()), s.mean()["brightness"]
        (True, 0.5)
    """
    check_image(x, "x", min_size=3)
    x = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    grey = x.mean(1, keepdim=True)
    kernel = torch.tensor(_LAPLACIAN, dtype=x.dtype, device=x.device).view(1, 1, 3, 3)
    lap = F.conv2d(grey, kernel)  # "valid": no border response from zero padding
    flat = x.flatten(1)
    return ImageStats(
        sharpness=lap.flatten(1).var(1, unbiased=False),
        brightness=flat.mean(1),
        contrast=flat.std(1, unbiased=False),
        min=flat.amin(1),
        max=flat.amax(1),
    )
