"""The standard normal prior N(0, I): the VAE's default (Kingma & Welling 2014).

Everything here reproduces what vaekit did before priors were swappable, bit for bit:
:meth:`StandardNormal.sample` draws exactly what ``VAE.sample_prior`` drew (same noise, same
generator use) and :meth:`StandardNormal.kl` is :func:`vaekit.functional.kl_normal`'s closed
form summed over latent dims.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..distributions import _LOG_2PI, DiagonalGaussian, _standard_normal, kl_normal_elementwise
from .base import Prior, compute_dtype
from .registry import register

__all__ = ["StandardNormal"]


@register("standard_normal", aliases=("normal",))
class StandardNormal(Prior):
    """p(z) = N(0, I) over the whole latent (flat or spatial).

    Temperature: the standard deviation of the draw, ``z = temperature * eps``.

    Args:
        latent_shape: ``(D,)`` or ``(C, h, w)``; ``None`` to let :meth:`setup` (the VAE) bind it.

    Example:
        >>> import torch, vaekit as vk
        >>> prior = vk.priors.StandardNormal((3,))
        >>> prior.log_prob(torch.zeros(2, 3))  # -3/2 log(2 pi)
        tensor([-2.7568, -2.7568])
        >>> prior.sample(2, temperature=0.0)
        tensor([[0., 0., 0.],
                [0., 0., 0.]])
        >>> q = vk.DiagonalGaussian(torch.ones(1, 3), torch.zeros(1, 3))
        >>> prior.kl(q)  # 0.5 nats per dim
        tensor([1.5000])
    """

    has_closed_form_kl = True

    def __init__(self, latent_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        if latent_shape is not None:
            self.setup(latent_shape)

    def _log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self.log_prob_elementwise(z).flatten(1).sum(1)

    def log_prob_elementwise(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z_i; 0, 1) per latent element, same shape as ``z`` (any leading dims).

        The density factorises over dims, so likelihood metrics sum it with the posterior's
        elementwise density in float64, exactly as they did for N(0, I) before priors.

        Example:
            >>> import torch, vaekit as vk
            >>> vk.priors.StandardNormal((2,)).log_prob_elementwise(torch.zeros(1, 2))
            tensor([[-0.9189, -0.9189]])
        """
        z = z.to(compute_dtype(z))
        return -0.5 * (_LOG_2PI + z.square())

    def _sample(
        self, n: int, temperature: float, generator: torch.Generator | None
    ) -> torch.Tensor:
        # exactly VAE.sample_prior's draw (before priors), so seeded samples stay identical
        shape = (n, *self._require_shape())
        return _standard_normal(shape, self.device, self.dtype, generator) * temperature

    def kl_elementwise(self, posterior: DiagonalGaussian) -> torch.Tensor:
        """KL(N(mean, var) || N(0, 1)) per latent element (float32), as ``vk.losses.KL``."""
        self.check_posterior(posterior)
        return kl_normal_elementwise(posterior.mean, posterior.logvar)
