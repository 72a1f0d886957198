"""Functional twins of the losses in :mod:`vaekit.losses` (kornia-style ``loss(x, y, **kw)``).

Each function is defined next to its module in ``vaekit/losses/*.py`` and re-exported here;
``Module(**kw)(x, y) == function(x, y, **kw)``. ``perceptual`` and ``lpips`` hold a network and
are module-only.
"""

from .distributions import kl_normal, kl_normal_elementwise
from .losses.adversarial import (
    adaptive_weight,
    discriminator_loss,
    generator_loss,
    r1_penalty,
)
from .losses.kl import free_bits_kl
from .losses.likelihood import gaussian_nll, laplace_nll
from .losses.pixel import bce_loss, l1_loss, mse_loss
from .losses.spectral import fft_loss
from .losses.structural import ms_ssim_loss, ssim_loss

__all__ = [
    "adaptive_weight",
    "bce_loss",
    "discriminator_loss",
    "fft_loss",
    "free_bits_kl",
    "gaussian_nll",
    "generator_loss",
    "kl_normal",
    "kl_normal_elementwise",
    "l1_loss",
    "laplace_nll",
    "ms_ssim_loss",
    "mse_loss",
    "r1_penalty",
    "ssim_loss",
]
