"""Functional twins of the losses in :mod:`vaekit.losses` (kornia-style ``loss(x, y, **kw)``).

Each function is defined next to its module in ``vaekit/losses/*.py`` and re-exported here;
``Module(**kw)(x, y) == function(x, y, **kw)``. ``perceptual`` and ``lpips`` hold a network and
are module-only.
"""

from .distributions import kl_normal, kl_normal_elementwise
from .losses.kl import free_bits_kl
from .losses.likelihood import gaussian_nll, laplace_nll
from .losses.pixel import bce_loss, l1_loss, mse_loss
from .losses.spectral import fft_loss
from .losses.structural import ms_ssim_loss, ssim_loss

__all__ = [
    "bce_loss",
    "fft_loss",
    "free_bits_kl",
    "gaussian_nll",
    "kl_normal",
    "kl_normal_elementwise",
    "l1_loss",
    "laplace_nll",
    "ms_ssim_loss",
    "mse_loss",
    "ssim_loss",
]
