"""The radially averaged power spectrum: where in frequency an image set keeps its detail.

Blur is missing high spatial frequencies. Averaging the 2-D power spectrum over rings of
equal frequency gives one curve per image set; the curve of blurry reconstructions or
samples falls below that of the real images towards 0.5 cycles/pixel (natural images fall
roughly as 1/f^2: van der Schaaf & van Hateren 1996; generated images' spectra: Durall et
al. 2020). Maths runs in float32 or float64 whatever the input dtype.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .._validation import check_choice, check_finite, check_image

__all__ = ["RadialSpectrum", "radial_power_spectrum"]

CHANNELS = ("grey", "mean")
WINDOWS = ("hann", None)
_REDUCTIONS = ("mean", "none")
_CHUNK = 64  # images per FFT: bounds the complex buffer for large batches of large images


class RadialSpectrum(NamedTuple):
    """A radially averaged power spectrum; unpacks as ``frequency, power``.

    Attributes:
        frequency: ``(K,)`` ring centres in cycles/pixel, ``0, 1/S, ..., (S // 2) / S`` with
            ``S = max(H, W)`` (so from 0 to 0.5).
        power: ``(K,)`` mean power per ring, averaged over the images, or ``(N, K)`` one row
            per image (``reduction="none"``).
    """

    frequency: torch.Tensor
    power: torch.Tensor


def _rings(h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Ring index of each FFT coefficient (``-1`` beyond 0.5 cycles/pixel), the count per
    ring, and the number of rings ``K``."""
    size = max(h, w)
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]  # cycles/pixel
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
    ring = (fy.square() + fx.square()).sqrt().mul(size).round().long().flatten()
    k = size // 2 + 1
    ring = torch.where(ring < k, ring, -1)  # the corners beyond 0.5 cycles/pixel are dropped
    # never 0: the longer axis alone has a coefficient in every ring
    counts = torch.bincount(ring[ring >= 0], minlength=k)
    return ring.to(device), counts.to(device), k


def radial_power_spectrum(
    images: torch.Tensor,
    *,
    channels: str = "grey",
    remove_mean: bool = True,
    window: str | None = "hann",
    reduction: str = "mean",
) -> RadialSpectrum:
    """Mean power of the 2-D spectrum in rings of equal frequency, per image, then averaged.

    Each image (the grey channel mean by default) has its mean removed, is multiplied by a
    2-D Hann window (so the jump between opposite borders does not add a spurious cross of
    high frequencies), and goes through ``fft2``. The power ``|X(f)|^2 / sum(w^2)`` (``w``
    the window; ``H * W`` without one) is averaged over the coefficients in each ring
    ``round(|f| * S) = k``, ``S = max(H, W)``, for ``k = 0 .. S // 2``; frequencies beyond
    0.5 cycles/pixel (the corners of the spectrum) are dropped. With this normalisation
    white noise of variance σ² has power σ² at every frequency, and a blurred image has
    less power than the original at high frequencies.

    Args:
        images: a batch of images, at least 2 x 2 pixels, finite; any float dtype.
        channels: ``"grey"`` (default): the spectrum of the channel mean (blur as the eye
            and :func:`image_stats`' sharpness see it); ``"mean"``: the mean of the
            per-channel spectra (colour detail that cancels in grey counts too).
        remove_mean: subtract each image's mean first (default), so the 0 bin holds no
            brightness and the window does not leak it into the low frequencies.
        window: ``"hann"`` (default; periodic, so a tone at a whole frequency spreads only
            to the neighbouring rings) or ``None``: no window (exact bins for periodic
            images).
        reduction: ``"mean"`` over images (default) or ``"none"`` for one row per image.

    Returns:
        :class:`RadialSpectrum` ``(frequency, power)`` in float32 (float64 for float64
        input), on the images' device.

    Shape:
        images: (N, C, H, W); frequency: (K,) with ``K = max(H, W) // 2 + 1``; power: (K,)
        or (N, K).

    Example:
        >>> import math, torch, vaekit as vk
        >>> col = torch.arange(16.0)
        >>> stripes = 0.5 + 0.4 * torch.cos(2 * math.pi * 4 * col / 16)  # 4 cycles in 16 px
        >>> x = stripes.expand(2, 1, 16, 16)
        >>> freq, power = vk.metrics.radial_power_spectrum(x)
        >>> freq.shape, power.shape, float(freq[power.argmax()])
        (torch.Size([9]), torch.Size([9]), 0.25)
        >>> blurred = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        >>> bool(vk.metrics.radial_power_spectrum(blurred).power[4] < power[4])
        True
    """
    check_image(images, "images", min_size=2)
    check_choice(channels, CHANNELS, "channels")
    check_choice(window, WINDOWS, "window")
    if not isinstance(remove_mean, bool):
        raise TypeError(f"remove_mean must be True or False, got {type(remove_mean).__name__}")
    check_choice(reduction, _REDUCTIONS, "reduction")
    check_finite(images, "images")
    dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
    x = images.detach().to(dtype)
    if channels == "grey":
        x = x.mean(1, keepdim=True)
    h, w = x.shape[-2:]
    if remove_mean:
        x = x - x.mean((-2, -1), keepdim=True)
    if window == "hann":
        kw = {"periodic": True, "dtype": dtype, "device": x.device}
        taper = torch.outer(torch.hann_window(h, **kw), torch.hann_window(w, **kw))
        x, norm = x * taper, taper.square().sum()
    else:
        norm = torch.tensor(float(h * w), dtype=dtype, device=x.device)
    ring, counts, k = _rings(h, w, x.device)
    keep = ring >= 0
    rows = []
    for chunk in x.split(_CHUNK):
        spec = torch.fft.fft2(chunk)
        power = (spec.real.square() + spec.imag.square()).mean(1).flatten(1) / norm  # (n, H*W)
        sums = power.new_zeros(len(chunk), k).index_add_(1, ring[keep], power[:, keep])
        rows.append(sums / counts)
    per_image = torch.cat(rows)
    frequency = torch.arange(k, dtype=dtype, device=x.device) / max(h, w)
    return RadialSpectrum(frequency, per_image.mean(0) if reduction == "mean" else per_image)
