"""KL divergence of the posterior to the prior, with free bits.

Closed form KL(N(μ, σ²) ‖ N(0, I)) (or to another diagonal Gaussian) from
:mod:`vaekit.distributions`, in float32, summed over latent dims: nats per sample. Works for
flat (B, D) and spatial (B, C, h, w) latents alike.

The prior can also be a model's prior (``vae.prior``, a :class:`vaekit.priors.Prior`, which
:class:`~vaekit.losses.VAELoss` takes from ``VAEOutput.prior``): a prior with a closed form
(``has_closed_form_kl``, e.g. ``StandardNormal``) gives its elementwise KL
(``prior.kl_elementwise``), so everything below works as for N(0, I); any other prior with a
density (mixtures, VampPrior, fitted GMM or flow) gets the single-sample Monte Carlo estimate
``log q(z|x) - log p(z)`` on the sampled ``z`` (Kingma & Welling 2014, eq. 6): unbiased,
differentiable in the encoder and in the prior's parameters, and reported as ``kl_mc``.

Free bits (Kingma et al. 2016, "Improved Variational Inference with Inverse Autoregressive
Flow", eq. 15): the KL of each latent *group* is averaged over the batch, floored at λ nats,
then summed, so the optimiser gets no gradient to push a group's KL below λ and groups cannot
collapse for free. Groups: ``"dim"`` (each latent element, the default), ``"channel"`` (spatial
latents: one group per channel, summed over h, w; flat latents: same as ``"dim"``) and
``"element"`` (per sample and per dim, floored before the batch mean; stricter, not the
paper's). The true, unfloored KL is always reported too, as ``kl_raw``.

A Monte Carlo KL does not split over latent dims (a mixture couples them), so free bits
there floor the *total*: ``max(λ·G, mean over the batch of the per-sample KL)`` with G the
number of groups (latent elements for ``"dim"``, channels for ``"channel"``), the same floor
the per-group rule reaches when every group sits at λ. ``"element"`` is refused for such
priors: flooring a one-sample estimate per image biases it upwards.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .._validation import check_choice, check_number
from ..distributions import DiagonalGaussian, kl_normal_elementwise
from .registry import register

__all__ = ["FREE_BITS_GROUPS", "KL", "free_bits_kl"]

FREE_BITS_GROUPS = ("dim", "channel", "element")


def _check_free_bits(free_bits: float, group: str) -> None:
    check_number(free_bits, "free_bits", at_least=0)
    check_choice(group, FREE_BITS_GROUPS, "group")


def _floor_kl(kl: torch.Tensor, free_bits: float, group: str) -> torch.Tensor:
    """Free-bits KL in nats per sample from the elementwise KL (B, *latent)."""
    if free_bits == 0:
        return kl.flatten(1).sum(1).mean()
    if group == "element":
        return kl.clamp_min(free_bits).flatten(1).sum(1).mean()
    if group == "channel" and kl.ndim > 2:
        kl = kl.flatten(2).sum(2)  # (B, C): sum over h, w
    return kl.mean(0).clamp_min(free_bits).sum()


def _latent_pair(
    posterior: DiagonalGaussian | torch.Tensor, logvar: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(posterior, DiagonalGaussian):
        if logvar is not None:
            raise ValueError("pass either a DiagonalGaussian or (mean, logvar), not both")
        return posterior.mean, posterior.logvar
    if logvar is None:
        raise TypeError(
            "expected a DiagonalGaussian or (mean, logvar) tensors, got "
            f"{type(posterior).__name__} and no logvar"
        )
    q = DiagonalGaussian(posterior, logvar, logvar_range=None)  # validates shapes and dtypes
    return q.mean, q.logvar


def free_bits_kl(
    mean: torch.Tensor,
    logvar: torch.Tensor,
    free_bits: float = 0.0,
    *,
    group: str = "dim",
    prior: DiagonalGaussian | None = None,
) -> torch.Tensor:
    """KL(q ‖ prior) in nats per sample (batch mean) with free bits λ per group.

    Args:
        mean, logvar: posterior parameters, (B, D) or (B, C, h, w).
        free_bits: λ in nats per group; 0 gives the plain KL.
        group: ``"dim"`` | ``"channel"`` | ``"element"`` (see module docstring).
        prior: another diagonal Gaussian of the same shape (default N(0, I)).

    Shape:
        mean, logvar: (B, *latent); output: scalar (float32).

    Example:
        >>> import torch, vaekit as vk
        >>> mean, logvar = torch.zeros(2, 4), torch.zeros(2, 4)   # KL = 0
        >>> vk.functional.free_bits_kl(mean, logvar, free_bits=0.25)   # 4 dims x 0.25
        tensor(1.)
    """
    _check_free_bits(free_bits, group)
    mean, logvar = _latent_pair(mean, logvar)
    return _floor_kl(_elementwise(mean, logvar, prior), free_bits, group)


def _is_model_prior(prior: object) -> bool:
    """A vaekit.priors.Prior, recognised by its interface (losses do not import the priors)."""
    return isinstance(prior, nn.Module) and all(
        hasattr(prior, a) for a in ("log_prob", "kl_elementwise", "has_closed_form_kl")
    )


def _groups(latent_shape: tuple[int, ...], group: str) -> int:
    """Number of free-bits groups: latent elements, or channels of a spatial latent."""
    if group == "channel" and len(latent_shape) > 1:
        return latent_shape[0]
    return math.prod(latent_shape)


def _elementwise(
    mean: torch.Tensor, logvar: torch.Tensor, prior: DiagonalGaussian | None
) -> torch.Tensor:
    if prior is None:
        return kl_normal_elementwise(mean, logvar)
    if not isinstance(prior, DiagonalGaussian):
        raise TypeError(
            "prior must be a DiagonalGaussian, a vaekit.priors.Prior or None, got "
            f"{type(prior).__name__}"
        )
    if prior.mean.shape != mean.shape:
        raise ValueError(
            f"prior must have the posterior's shape {tuple(mean.shape)}, got {tuple(prior.mean.shape)}"
        )
    return kl_normal_elementwise(mean, logvar, prior.mean, prior.logvar)


@register("kl")
class KL(nn.Module):
    """KL term of the ELBO with optional free bits: ``kl(posterior)`` or ``kl(mean, logvar)``.

    Returns nats per sample (summed over latent dims, averaged over the batch) after free
    bits. :meth:`forward_terms` also returns the unfloored KL for logging.

    The prior is N(0, I) unless ``prior=`` is given: another
    :class:`~vaekit.DiagonalGaussian` of the posterior's shape, or a model's prior
    (``vae.prior``, a :class:`vaekit.priors.Prior`). A prior with a closed form
    (``has_closed_form_kl``) uses it; any other needs ``z=``, a sample of the posterior
    (``VAEOutput.z``), for the Monte Carlo estimate ``log q(z|x) - log p(z)``; then free bits
    floor the batch-mean total at ``λ·G`` (G groups, see the module docstring) and
    ``group="element"`` is refused. A prior without a density (``LatentDiffusion``) or an
    ex-post prior that is not fitted is a ``ValueError`` naming the priors you can train with.

    Args:
        free_bits: λ in nats per group (0: plain KL).
        group: ``"dim"`` (default) | ``"channel"`` | ``"element"``.

    Shape:
        mean, logvar: (B, D) or (B, C, h, w); output: scalar (float32).

    Example:
        >>> import torch, vaekit as vk
        >>> q = vk.DiagonalGaussian(torch.ones(2, 3), torch.zeros(2, 3))
        >>> vk.losses.KL()(q)                 # 0.5 nats per dim
        tensor(1.5000)
        >>> vk.losses.KL(free_bits=1.0)(q)    # each dim floored at 1 nat
        tensor(3.)
        >>> mog = vk.priors.MixtureOfGaussians(components=4, latent_shape=(3,))
        >>> terms = vk.losses.KL(free_bits=1.0).forward_terms(q, prior=mog, z=q.sample())
        >>> sorted(terms), bool(terms["kl"] >= 3.0)    # floored at 1 nat x 3 dims in total
        (['kl', 'kl_mc', 'kl_raw'], True)
    """

    reduction = "batchmean"

    def __init__(self, free_bits: float = 0.0, *, group: str = "dim") -> None:
        super().__init__()
        _check_free_bits(free_bits, group)
        self.free_bits = float(free_bits)
        self.group = group

    def forward_terms(
        self,
        posterior: DiagonalGaussian | torch.Tensor,
        logvar: torch.Tensor | None = None,
        *,
        prior: Any = None,
        z: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``{"kl": floored KL, "kl_raw": true KL}``, both nats per sample, not detached.

        With a prior that has no closed form the KL is a Monte Carlo estimate on ``z`` and the
        dict also has ``"kl_mc"`` (the same number as ``kl_raw``; its presence says that it
        is an estimate).
        """
        mean, logvar = _latent_pair(posterior, logvar)
        if not _is_model_prior(prior):
            kl = _elementwise(mean, logvar, prior)
            return self._floored(kl)
        if not isinstance(posterior, DiagonalGaussian):
            posterior = DiagonalGaussian(mean, logvar, logvar_range=None)
        if prior.has_closed_form_kl:
            return self._floored(prior.kl_elementwise(posterior))
        prior.require_density("training (the KL term of the loss)")
        if z is None:
            raise ValueError(
                f"{type(prior).__name__} has no closed-form KL: pass z=, a sample of the "
                "posterior (VAEOutput.z), for the Monte Carlo estimate"
            )
        if self.group == "element" and self.free_bits > 0:
            raise ValueError(
                f"free bits with group='element' need a KL per latent element, but "
                f"{type(prior).__name__}'s KL is a Monte Carlo estimate per image: use "
                "group='dim' (a floor of free_bits x latent dims on the batch-mean KL) or "
                "'channel'"
            )
        if tuple(z.shape) != tuple(mean.shape):
            raise ValueError(
                f"z must be one sample of the posterior, shape {tuple(mean.shape)}, got "
                f"{tuple(z.shape)}"
            )
        # log q(z|x) - log p(z): unbiased for each image, float32 (float64 for float64 input)
        raw = (posterior.log_prob(z) - prior.log_prob(z)).mean()
        floored = raw
        if self.free_bits > 0:
            floor = self.free_bits * _groups(tuple(mean.shape[1:]), self.group)
            floored = raw.clamp_min(floor)
        return {"kl": floored, "kl_raw": raw, "kl_mc": raw}

    def _floored(self, kl: torch.Tensor) -> dict[str, torch.Tensor]:
        raw = _floor_kl(kl, 0.0, self.group)
        floored = raw if self.free_bits == 0 else _floor_kl(kl, self.free_bits, self.group)
        return {"kl": floored, "kl_raw": raw}

    def forward(
        self,
        posterior: DiagonalGaussian | torch.Tensor,
        logvar: torch.Tensor | None = None,
        *,
        prior: Any = None,
        z: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.forward_terms(posterior, logvar, prior=prior, z=z)["kl"]

    def extra_repr(self) -> str:
        return f"free_bits={self.free_bits!r}, group={self.group!r}"
