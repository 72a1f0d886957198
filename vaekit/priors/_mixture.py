"""Diagonal Gaussian mixtures: the density and sampler shared by MoG and VampPrior."""

from __future__ import annotations

import torch

from ..distributions import _LOG_2PI, _standard_normal
from .base import compute_dtype

__all__ = ["diagonal_mixture_log_prob", "diagonal_mixture_sample"]


def diagonal_mixture_log_prob(
    z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor, log_weights: torch.Tensor
) -> torch.Tensor:
    """log sum_k w_k N(z; mean_k, diag(exp(logvar_k))), in a float32 (or float64) island.

    Shape:
        z: (B, *event); means, logvars: (K, *event); log_weights: (K,) normalised;
        output: (B,).
    """
    dtype = compute_dtype(z, means, logvars)
    z = z.flatten(1).to(dtype)[:, None]  # (B, 1, D)
    means, logvars = means.flatten(1).to(dtype), logvars.flatten(1).to(dtype)  # (K, D)
    log_comp = -0.5 * (_LOG_2PI + logvars + (z - means).square() * torch.exp(-logvars)).sum(-1)
    return torch.logsumexp(log_comp + log_weights.to(dtype), dim=1)  # log-sum-exp over K


def diagonal_mixture_sample(
    n: int,
    means: torch.Tensor,
    stds: torch.Tensor,
    weights: torch.Tensor,
    temperature: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """``mean_k + temperature * std_k * eps`` with ``k ~ Categorical(weights)``.

    The component indices are drawn first, then the noise, both from ``generator``.

    Shape:
        means, stds: (K, *event); weights: (K,); output: (n, *event) in ``means``' dtype.
    """
    k = torch.multinomial(weights.float(), n, replacement=True, generator=generator)
    eps = _standard_normal((n, *means.shape[1:]), means.device, means.dtype, generator)
    return means[k] + (temperature * stds[k]) * eps
