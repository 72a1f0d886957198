"""A learned mixture of diagonal Gaussians as the prior, trained with the VAE.

p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)) with learnable means, log-scales and mixture
logits (as the "mixture of Gaussians prior" of Dilokthanakul et al. 2016 and Tomczak &
Welling 2018's baseline). It has no closed-form KL to a Gaussian posterior: the loss uses
the Monte Carlo estimate ``log q(z|x) - log p(z)`` on the sampled z
(:func:`vaekit.priors.mc_kl`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._validation import check_int
from ._mixture import diagonal_mixture_log_prob, diagonal_mixture_sample
from .base import Prior, compute_dtype
from .registry import register

__all__ = ["LOG_SCALE_RANGE", "MixtureOfGaussians"]

# log sigma range: the logvar range [-10, 10] of DiagonalGaussian, halved
LOG_SCALE_RANGE: tuple[float, float] = (-5.0, 5.0)


@register("mog", aliases=("mixture_of_gaussians",))
class MixtureOfGaussians(Prior):
    """A K-component diagonal Gaussian mixture with learnable parameters.

    Initialisation: means ~ N(0, I) (drawn from torch's global RNG, like any layer's
    weights), scales 1, equal weights, so at step 0 the prior is a spread of unit Gaussians
    around the origin. Log-scales are clamped to ``LOG_SCALE_RANGE`` when used.

    Temperature: scales each component's spread, ``z = mu_k + temperature * sigma_k * eps``
    (``k`` drawn from the weights; temperature 0 gives the component means).

    Args:
        components: number of mixture components K.
        latent_shape: ``(D,)`` or ``(C, h, w)``; ``None`` to let :meth:`setup` bind it (the
            parameters are created then).

    Example:
        >>> import torch, vaekit as vk
        >>> prior = vk.priors.MixtureOfGaussians(components=16).setup((8,))
        >>> prior.means.shape, prior.log_scales.shape, prior.logits.shape
        (torch.Size([16, 8]), torch.Size([16, 8]), torch.Size([16]))
        >>> prior.log_prob(torch.zeros(5, 8)).shape
        torch.Size([5])
        >>> prior.sample(3, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([3, 8])
    """

    learned_with_vae = True

    def __init__(self, components: int = 16, latent_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        self.components = check_int(components, "components")
        if latent_shape is not None:
            self.setup(latent_shape)

    def _build(self, latent_shape: tuple[int, ...]) -> None:
        k, kw = self.components, {"device": self.device, "dtype": self.dtype}
        self.means = nn.Parameter(torch.randn(k, *latent_shape, **kw))
        self.log_scales = nn.Parameter(torch.zeros(k, *latent_shape, **kw))
        self.logits = nn.Parameter(torch.zeros(k, **kw))

    @property
    def log_weights(self) -> torch.Tensor:
        """log pi_k, (K,)."""
        return torch.log_softmax(self.logits.to(compute_dtype(self.logits)), 0)

    def _log_prob(self, z: torch.Tensor) -> torch.Tensor:
        logvars = 2.0 * self.log_scales.clamp(*LOG_SCALE_RANGE)
        return diagonal_mixture_log_prob(z, self.means, logvars, self.log_weights)

    def _sample(
        self, n: int, temperature: float, generator: torch.Generator | None
    ) -> torch.Tensor:
        stds = torch.exp(self.log_scales.clamp(*LOG_SCALE_RANGE))
        weights = self.log_weights.exp()
        return diagonal_mixture_sample(n, self.means, stds, weights, temperature, generator)

    def config(self) -> dict:
        return {**super().config(), "components": self.components}
