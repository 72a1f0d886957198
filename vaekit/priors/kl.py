"""KL(q(z|x) || p(z)) for any prior: the closed form where one exists, else Monte Carlo.

For a prior without a closed form (mixtures, flows) the ELBO's KL term is estimated on the
reparameterised sample the decoder already saw (Kingma & Welling 2014, eq. 6):

    KL(q || p) ~= log q(z|x) - log p(z),   z ~ q(z|x)

unbiased for every x, differentiable in the encoder (through z) and in the prior's
parameters; its variance shrinks with more samples per image.
"""

from __future__ import annotations

import torch

from .._validation import check_float_tensor
from ..distributions import DiagonalGaussian
from .base import Prior

__all__ = ["kl_to_prior", "mc_kl"]


def _check_prior(prior: object) -> Prior:
    if not isinstance(prior, Prior):
        raise TypeError(f"prior must be a vaekit.priors.Prior, got {type(prior).__name__}")
    return prior


def mc_kl(posterior: DiagonalGaussian, z: torch.Tensor, prior: Prior) -> torch.Tensor:
    """Monte Carlo KL estimate ``log q(z|x) - log p(z)`` per image, in nats.

    Args:
        posterior: q(z|x), a :class:`~vaekit.DiagonalGaussian` of shape (B, *latent_shape).
        z: samples from it: (B, *latent_shape) (e.g. ``VAEOutput.z`` in training) or
            (S, B, *latent_shape) (``posterior.sample_n(S)``), averaged over S.
        prior: any prior with a density.

    Shape:
        output: (B,), float32 (float64 for float64 inputs).

    Example:
        >>> import torch, vaekit as vk
        >>> q = vk.DiagonalGaussian(torch.ones(2, 3), torch.zeros(2, 3))
        >>> prior = vk.priors.StandardNormal((3,))
        >>> z = q.sample_n(20000, generator=torch.Generator().manual_seed(0))
        >>> vk.priors.mc_kl(q, z, prior).round(decimals=1)   # the closed form is 1.5 nats
        tensor([1.5000, 1.5000])
    """
    prior = _check_prior(prior)
    prior.check_posterior(posterior)
    check_float_tensor(z, "z")
    batch = tuple(posterior.mean.shape)
    if tuple(z.shape) == batch:
        return posterior.log_prob(z) - prior.log_prob(z)
    if z.ndim == len(batch) + 1 and tuple(z.shape[1:]) == batch:
        log_q = posterior.log_prob(z)  # (S, B)
        log_p = prior.log_prob(z.flatten(0, 1)).view(z.shape[0], z.shape[1])
        return (log_q - log_p).mean(0)
    raise ValueError(
        f"z must be samples of the posterior: shape {batch} or (S, {', '.join(map(str, batch))}), "
        f"got {tuple(z.shape)}"
    )


def kl_to_prior(
    posterior: DiagonalGaussian, prior: Prior, z: torch.Tensor | None = None
) -> torch.Tensor:
    """KL(q(z|x) || p(z)) per image: ``prior.kl(posterior)`` when the prior has a closed form
    (``prior.has_closed_form_kl``), else :func:`mc_kl` on ``z`` (then required).

    Shape:
        output: (B,) nats.

    Example:
        >>> import torch, vaekit as vk
        >>> q = vk.DiagonalGaussian(torch.zeros(2, 3), torch.zeros(2, 3))
        >>> vk.priors.kl_to_prior(q, vk.priors.StandardNormal((3,)))
        tensor([0., 0.])
        >>> mog = vk.priors.MixtureOfGaussians(components=4, latent_shape=(3,))
        >>> vk.priors.kl_to_prior(q, mog, z=q.sample()).shape
        torch.Size([2])
    """
    prior = _check_prior(prior)
    if prior.has_closed_form_kl:
        return prior.kl(posterior)
    if z is None:
        raise ValueError(
            f"{type(prior).__name__} has no closed-form KL: pass z, a sample of the posterior "
            "(e.g. VAEOutput.z), for the Monte Carlo estimate"
        )
    return mc_kl(posterior, z, prior)
