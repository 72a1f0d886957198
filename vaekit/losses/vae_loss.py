"""The VAE objective: reconstruction + β(step) · KL, on one honest scale.

Scaling convention (the main trap it removes). A reconstruction loss at ``reduction="mean"``
is per data dimension, so the KL (nats per sample, summed over latent dims) is divided by
``D_x = C·H·W``:

    total = recon + β · KL / D_x

With a likelihood reconstruction (``gaussian_nll``, ``laplace_nll``, ``bce``) and β = 1 this is
exactly the negative ELBO per data dimension (Kingma & Welling 2014), whatever the image
size, so β keeps its meaning across datasets. With ``kl_scale="auto"`` (default) the KL
follows the reconstruction's reduction: ``"batchmean"`` (nats per sample) → KL as is,
``"sum"`` (summed over the batch) → KL · B; a mismatch would silently rescale β by D_x.

The KL goes to the model's prior, ``out.prior`` (``vae.prior``; N(0, I) when ``None``): in
closed form where the prior has one, else the Monte Carlo estimate ``log q(z|x) - log p(z)``
on ``out.z``, which then also appears as ``terms["kl_mc"]`` (see :class:`~vaekit.losses.KL`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import nn

from .._validation import check_image, check_int, check_number, check_same_shape
from ..outputs import LossOutput, VAEOutput
from ..schedules import Constant, Schedule
from .adversarial import Adversarial
from .compose import RESERVED_TERMS, _as_module, _combine, loss_terms, reduction_of
from .kl import KL

__all__ = ["VAELoss"]


def _check_beta_value(value: object, step: int) -> float:
    return check_number(value, f"beta({step})", at_least=0)


class VAELoss(nn.Module):
    """Negative ELBO-style objective: ``recon(x̂, x) + β(step) · KL · kl_scale``.

    Args:
        recon: a registry name, a ``{name: weight}`` dict (→ :class:`Weighted`) or a module
            (``Weighted``, ``MultiScale`` or any loss).
        kl: a :class:`KL` (default ``KL()``: no free bits).
        beta: a float, or a callable ``step -> float`` (e.g. a ``vaekit.schedules`` object);
            a callable other than ``vk.schedules.Constant`` needs ``step=`` on every call.
        kl_scale: ``"auto"`` (KL matched to the reconstruction's reduction: 1 / D_x for
            ``"mean"``, 1 for ``"batchmean"``, the batch size for ``"sum"``) or a float.
        ignore_recon_logvar: by default a decoder log-variance (``out.recon_logvar``) that the
            reconstruction loss cannot use is a ``ValueError`` (the variance head would get
            no gradient); set True to drop it instead.
        adversarial: an :class:`~vaekit.losses.Adversarial` term: its ``λ · L_G`` on
            ``out.recon`` is added to the total (its adaptive weight balances it against the
            reconstruction loss), and :meth:`discriminator_loss` gives the discriminator's
            step. See ``docs/sharp-images.md``.

    The KL is to ``out.prior`` (the model's prior, N(0, I) if ``None``): closed form where
    the prior has one (``StandardNormal``: exactly as before priors were swappable), else a
    single-sample Monte Carlo estimate on ``out.z`` (mixtures, VampPrior, a fitted GMM or
    flow; the priors' parameters get gradients through it). A prior without a density or an
    unfitted ex-post prior is a ``ValueError`` naming the priors you can train with.

    Returns:
        :class:`~vaekit.LossOutput`: ``total`` (differentiable), ``terms`` (detached: each
        reconstruction part by name, ``recon``, ``kl`` after free bits and ``kl_raw``, both in
        nats per sample, ``kl_mc`` (= ``kl_raw``) only when the KL is a Monte Carlo
        estimate, and ``adv`` (the generator loss) and ``adv_weight`` (its weight λ, 0 before
        the term starts) with an adversarial term) and ``beta``.

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.full((2, 1, 4, 4), 0.5)
        >>> q = vk.DiagonalGaussian(torch.ones(2, 8), torch.zeros(2, 8))   # KL = 4 nats
        >>> out = vk.VAEOutput(recon=x.clone(), posterior=q, z=q.mean)
        >>> res = vk.losses.VAELoss(recon="l1", beta=lambda step: 0.5)(out, x, step=10)
        >>> res.total            # 0 + 0.5 * 4 / 16
        tensor(0.1250)
        >>> sorted(res.terms), res.beta
        (['kl', 'kl_raw', 'l1', 'recon'], 0.5)
        >>> out.prior = vk.priors.MixtureOfGaussians(components=4, latent_shape=(8,))
        >>> sorted(vk.losses.VAELoss(recon="l1")(out, x).terms)   # a Monte Carlo KL
        ['kl', 'kl_mc', 'kl_raw', 'l1', 'recon']
    """

    def __init__(
        self,
        recon: str | Mapping[str, object] | nn.Module,
        kl: KL | None = None,
        beta: float | Callable[[int], float] = 1.0,
        *,
        kl_scale: str | float = "auto",
        ignore_recon_logvar: bool = False,
        adversarial: Adversarial | None = None,
    ) -> None:
        super().__init__()
        self.recon = _as_module(recon, "recon")
        if kl is None:
            kl = KL()
        if not isinstance(kl, KL):
            raise TypeError(f"kl must be a vaekit.losses.KL, got {type(kl).__name__}")
        self.kl = kl
        if callable(beta):
            # a schedule that knows its range is checked now, not at the step that first
            # reaches a bad value (hours into training)
            bounds = beta.bounds() if isinstance(beta, Schedule) else None
            if bounds is not None and not (math.isfinite(bounds[1]) and bounds[0] >= 0):
                raise ValueError(
                    f"beta must stay a finite number >= 0 at every step; {beta!r} ranges over "
                    f"[{bounds[0]:g}, {bounds[1]:g}]"
                )
            self.beta = beta
        else:
            self.beta = check_number(beta, "beta", at_least=0)
        reduction = reduction_of(self.recon)
        if reduction not in ("mean", "sum", "batchmean"):
            raise ValueError(
                "the reconstruction loss must reduce to a scalar ('mean', 'sum' or "
                f"'batchmean'), got reduction={reduction!r}"
            )
        if kl_scale != "auto":
            check_number(kl_scale, "kl_scale", above=0)
        self.kl_scale = kl_scale
        self.ignore_recon_logvar = bool(ignore_recon_logvar)
        if adversarial is not None and not isinstance(adversarial, Adversarial):
            raise TypeError(
                f"adversarial must be a vaekit.losses.Adversarial, got {type(adversarial).__name__}"
            )
        self.adversarial = adversarial

    def beta_at(self, step: int) -> float:
        """β at ``step`` (validated: a finite number >= 0)."""
        return _check_beta_value(self.beta(step) if callable(self.beta) else self.beta, step)

    def kl_scale_for(self, x: torch.Tensor) -> float:
        """The factor that puts the KL (nats per sample) on the reconstruction's scale."""
        if self.kl_scale != "auto":
            return float(self.kl_scale)
        reduction = reduction_of(self.recon)
        if reduction == "mean":
            return 1.0 / x[0].numel()
        return float(x.shape[0]) if reduction == "sum" else 1.0

    def forward(self, out: VAEOutput, x: torch.Tensor, step: int | None = None) -> LossOutput:
        """Loss for one batch: ``out`` from the VAE, ``x`` the data, ``step`` for β.

        ``step`` may be left out only when β does not depend on it (a number or a
        ``vk.schedules.Constant``): with a schedule, a default step would train at β(0) forever.
        """
        if not isinstance(out, VAEOutput):
            raise TypeError(f"out must be a vaekit.VAEOutput, got {type(out).__name__}")
        if step is None:
            if callable(self.beta) and not isinstance(self.beta, Constant):
                raise TypeError(
                    f"beta is a schedule ({self.beta!r}), so the loss depends on the training "
                    "step; pass step=... (e.g. loss(out, x, step=step)), or a number as beta"
                )
            if self.adversarial is not None and self.adversarial.start > 0:
                raise TypeError(
                    f"the adversarial term starts at step {self.adversarial.start}, so the loss "
                    "depends on the training step; pass step=..."
                )
            step = 0
        step = check_int(step, "step", minimum=0)
        check_image(x, "x")
        check_same_shape(out.recon, x, ("out.recon", "x"))
        logvar = out.recon_logvar
        if logvar is not None and not getattr(self.recon, "accepts_logvar", False):
            if not self.ignore_recon_logvar:
                raise ValueError(
                    f"out.recon_logvar is set (decoder variance != 'none') but the "
                    f"reconstruction loss {type(self.recon).__name__} cannot use it, so the "
                    "variance head would get no gradient; use gaussian_nll or laplace_nll, a "
                    "decoder with variance='none', or VAELoss(..., ignore_recon_logvar=True)"
                )
            logvar = None
        beta = self.beta_at(step)
        parts = loss_terms(self.recon, out.recon, x, logvar)
        recon = _combine(self.recon, parts)
        kl_terms = self.kl.forward_terms(out.posterior, prior=out.prior, z=out.z)
        total = recon + (beta * self.kl_scale_for(x)) * kl_terms["kl"]
        terms = {
            name: value.detach() for name, value in parts.items() if name not in RESERVED_TERMS
        }
        terms["recon"] = recon.detach()
        terms.update({name: value.detach() for name, value in kl_terms.items()})
        if self.adversarial is not None:
            adv = self.adversarial.generator_loss(out.recon, step=step, recon_loss=recon)
            total = total + adv.total
            terms.update(adv.terms)
        return LossOutput(total=total, terms=terms, beta=beta)

    def discriminator_loss(
        self, out: VAEOutput, x: torch.Tensor, step: int | None = None
    ) -> LossOutput:
        """The discriminator's step: ``adversarial.discriminator_loss(x, out.recon, step=step)``.

        ``out.recon`` is detached, so this loss trains the discriminator only; call it after
        the VAE's step with the same ``out`` and back-propagate into the discriminator's own
        optimizer. A ``ValueError`` without an adversarial term.
        """
        if self.adversarial is None:
            raise ValueError(
                "this VAELoss has no adversarial term: build it with "
                "VAELoss(..., adversarial=vk.losses.Adversarial(discriminator, ...))"
            )
        if not isinstance(out, VAEOutput):
            raise TypeError(f"out must be a vaekit.VAEOutput, got {type(out).__name__}")
        return self.adversarial.discriminator_loss(x, out.recon, step=step)

    def extra_repr(self) -> str:
        return f"beta={self.beta!r}, kl_scale={self.kl_scale!r}"
