"""Losses for VAEs: a registry of ``nn.Module`` losses and the composed VAE objective.

``vk.losses.build("ssim")``, ``vk.losses.Weighted({...})``, ``vk.losses.MultiScale(...)``,
``vk.losses.KL(free_bits=...)``, ``vk.losses.VAELoss(recon=..., kl=..., beta=...)``,
``vk.losses.Adversarial(discriminator, ...)`` (``VAELoss(..., adversarial=...)``). The
functional twins live in :mod:`vaekit.functional`. See ``docs/losses.md``.
"""

from .adversarial import ADVERSARIAL_LOSSES, Adversarial
from .compose import MultiScale, Weighted
from .kl import KL
from .likelihood import GaussianNLLLoss, LaplaceNLLLoss
from .perceptual import (
    VGG16_LAYERS,
    LPIPSLoss,
    PerceptualLoss,
    WeightsNotFoundError,
    imagenet_weights_path,
)
from .pixel import BCELoss, L1Loss, MSELoss
from .registry import available, build, get, register, unregister
from .spectral import FFTLoss
from .structural import MSSSIMLoss, SSIMLoss, ms_ssim_levels
from .vae_loss import VAELoss

__all__ = [
    "ADVERSARIAL_LOSSES",
    "KL",
    "VGG16_LAYERS",
    "Adversarial",
    "BCELoss",
    "FFTLoss",
    "GaussianNLLLoss",
    "L1Loss",
    "LPIPSLoss",
    "LaplaceNLLLoss",
    "MSELoss",
    "MSSSIMLoss",
    "MultiScale",
    "PerceptualLoss",
    "SSIMLoss",
    "VAELoss",
    "Weighted",
    "WeightsNotFoundError",
    "available",
    "build",
    "get",
    "imagenet_weights_path",
    "ms_ssim_levels",
    "register",
    "unregister",
]
