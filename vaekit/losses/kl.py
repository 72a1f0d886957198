"""KL divergence of the posterior to the prior, with free bits.

Closed form KL(N(μ, σ²) ‖ N(0, I)) (or to another diagonal Gaussian) from
:mod:`vaekit.distributions`, in float32, summed over latent dims: nats per sample. Works for
flat (B, D) and spatial (B, C, h, w) latents alike.

Free bits (Kingma et al. 2016, "Improved Variational Inference with Inverse Autoregressive
Flow", eq. 15): the KL of each latent *group* is averaged over the batch, floored at λ nats,
then summed, so the optimiser gets no gradient to push a group's KL below λ and groups cannot
collapse for free. Groups: ``"dim"`` (each latent element, the default), ``"channel"`` (spatial
latents: one group per channel, summed over h, w; flat latents: same as ``"dim"``) and
``"element"`` (per sample and per dim, floored before the batch mean; stricter, not the
paper's). The true, unfloored KL is always reported too, as ``kl_raw``.
"""

from __future__ import annotations

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


def _elementwise(
    mean: torch.Tensor, logvar: torch.Tensor, prior: DiagonalGaussian | None
) -> torch.Tensor:
    if prior is None:
        return kl_normal_elementwise(mean, logvar)
    if not isinstance(prior, DiagonalGaussian):
        raise TypeError(f"prior must be a DiagonalGaussian or None, got {type(prior).__name__}")
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
        prior: DiagonalGaussian | None = None,
    ) -> dict[str, torch.Tensor]:
        """``{"kl": floored KL, "kl_raw": true KL}``, both nats per sample, not detached."""
        mean, logvar = _latent_pair(posterior, logvar)
        kl = _elementwise(mean, logvar, prior)
        raw = _floor_kl(kl, 0.0, self.group)
        floored = raw if self.free_bits == 0 else _floor_kl(kl, self.free_bits, self.group)
        return {"kl": floored, "kl_raw": raw}

    def forward(
        self,
        posterior: DiagonalGaussian | torch.Tensor,
        logvar: torch.Tensor | None = None,
        *,
        prior: DiagonalGaussian | None = None,
    ) -> torch.Tensor:
        return self.forward_terms(posterior, logvar, prior=prior)["kl"]

    def extra_repr(self) -> str:
        return f"free_bits={self.free_bits!r}, group={self.group!r}"
