"""Typed outputs: the same dataclass comes back on every call, never a flag-dependent tuple."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from .distributions import DiagonalGaussian

if TYPE_CHECKING:  # the priors sit above this module (tests/test_import_layers.py)
    from .priors import Prior

__all__ = ["LossOutput", "VAEOutput"]


@dataclass
class VAEOutput:
    """What :meth:`vaekit.VAE.forward` returns.

    Attributes:
        recon: decoder output (B, C, H, W), same shape as the input.
        posterior: q(z|x) as a :class:`~vaekit.DiagonalGaussian`.
        z: the latent that was decoded: a posterior sample in training, the mean in eval
            (unless ``sample_posterior_in_eval``).
        recon_logvar: per-pixel (B, C, H, W) or global (1, 1, 1, 1) decoder log-variance when
            the config has ``variance != "none"``, else ``None``.
        prior: the model's prior p(z) (``vae.prior``), which the loss's KL goes to; ``None``
            (outputs built by hand, or before priors were swappable) means N(0, I).
    """

    recon: torch.Tensor
    posterior: DiagonalGaussian
    z: torch.Tensor
    recon_logvar: torch.Tensor | None = None
    prior: Prior | None = None


@dataclass
class LossOutput:
    """What :class:`vaekit.losses.VAELoss` returns.

    Attributes:
        total: the scalar to call ``.backward()`` on.
        terms: every named term, detached, for logging (reconstruction parts, ``kl`` as
            optimised, ``kl_raw`` the unfloored KL in nats per sample, and ``kl_mc``, equal
            to ``kl_raw``, only when the KL is a Monte Carlo estimate because the prior has
            no closed form).
        beta: the KL weight used at this step.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    beta: float = 1.0
