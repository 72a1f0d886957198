"""Adversarial term for sharp reconstructions: a discriminator judges x̂ against x.

Pixel losses are minimised by the average of the plausible images, which is blurred; a
discriminator that tells reconstructions from data pushes the decoder back towards sharp
detail (Larsen et al. 2016). vaekit follows the autoencoder of VQGAN and latent diffusion
(Esser et al. 2021, Rombach et al. 2022):

- a patch discriminator (:mod:`vaekit.discriminators`), trained with its own optimizer on
  :meth:`Adversarial.discriminator_loss` (the reconstruction detached: no gradient into the VAE);
- the decoder's term ``λ · L_G``, with the *adaptive weight*
  ``λ = weight · ‖∇_w L_rec‖ / (‖∇_w L_G‖ + 1e-4)``, clamped to ``[0, 1e4]`` and detached,
  ``w`` the decoder's last layer: the adversarial gradient reaching the decoder is ``weight``
  times as large as the reconstruction's whatever their raw scales;
- nothing before ``start`` (the discriminator neither runs nor trains), so the autoencoder
  first learns to reconstruct;
- optionally the R1 penalty ``γ/2 · E‖∇_x D(x)‖²`` on real images (Mescheder et al. 2018).

Losses (``loss=``), on logits ``r = D(x)`` and ``f = D(x̂)``:

=================  ==========================================  =====================
name               discriminator                               generator
=================  ==========================================  =====================
``hinge``          ``0.5 (mean relu(1 - r) + mean relu(1 + f))``  ``-mean f``
``non_saturating`` ``0.5 (mean softplus(-r) + mean softplus(f))`` ``mean softplus(-f)``
``least_squares``  ``0.5 (mean (r - 1)² + mean f²)``           ``mean (f - 1)²``
=================  ==========================================  =====================

(Lim & Ye 2017 and Miyato et al. 2018 for hinge; Goodfellow et al. 2014 for the
non-saturating loss; Mao et al. 2017 for least squares.) Half-precision logits are upcast to
float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._maths import upcast_half
from .._validation import (
    check_choice,
    check_finite,
    check_image,
    check_int,
    check_number,
    check_same_shape,
)
from ..outputs import LossOutput

__all__ = [
    "ADVERSARIAL_LOSSES",
    "Adversarial",
    "adaptive_weight",
    "discriminator_loss",
    "generator_loss",
    "r1_penalty",
]

ADVERSARIAL_LOSSES = ("hinge", "non_saturating", "least_squares")


def _logits(logits: object, name: str) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {type(logits).__name__}")
    if logits.ndim < 1 or logits.shape[0] == 0:
        raise ValueError(f"{name} must have a batch dimension, got shape {tuple(logits.shape)}")
    return upcast_half(logits)  # a float32 island for fp16/bf16 logits; float64 stays


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, *, loss: str = "hinge"
) -> torch.Tensor:
    """The discriminator's loss on its logits for real and generated images (a scalar).

    Each half is the mean over its logits (every patch of every image), and the two halves
    are averaged: ``hinge`` = ``0.5 · (mean relu(1 - r) + mean relu(1 + f))``.

    Args:
        real_logits: ``D(x)``, any shape with the batch first (a patch map ``(B, 1, h, w)``).
        fake_logits: ``D(x̂)``, the same way (its batch size may differ).
        loss: ``"hinge"``, ``"non_saturating"`` or ``"least_squares"``.

    Example:
        >>> import torch, vaekit as vk
        >>> r, f = torch.tensor([[2.0], [0.5]]), torch.tensor([[-2.0], [0.0]])
        >>> vk.functional.discriminator_loss(r, f)   # 0.5 * ((0 + 0.5) / 2 + (0 + 1) / 2)
        tensor(0.3750)
    """
    check_choice(loss, ADVERSARIAL_LOSSES, "loss")
    r, f = _logits(real_logits, "real_logits"), _logits(fake_logits, "fake_logits")
    if loss == "hinge":
        return 0.5 * (F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean())
    if loss == "non_saturating":
        return 0.5 * (F.softplus(-r).mean() + F.softplus(f).mean())
    return 0.5 * ((r - 1.0).square().mean() + f.square().mean())


def generator_loss(fake_logits: torch.Tensor, *, loss: str = "hinge") -> torch.Tensor:
    """The generator's (decoder's) loss on the discriminator's logits for its images.

    ``hinge``: ``-mean f``; ``non_saturating``: ``mean softplus(-f)`` (= ``-mean log σ(f)``);
    ``least_squares``: ``mean (f - 1)²``.

    Example:
        >>> import torch, vaekit as vk
        >>> f = torch.tensor([[-2.0], [0.0]])
        >>> vk.functional.generator_loss(f)
        tensor(1.)
        >>> vk.functional.generator_loss(f, loss="least_squares")   # (9 + 1) / 2
        tensor(5.)
    """
    check_choice(loss, ADVERSARIAL_LOSSES, "loss")
    f = _logits(fake_logits, "fake_logits")
    if loss == "hinge":
        return -f.mean()
    if loss == "non_saturating":
        return F.softplus(-f).mean()
    return (f - 1.0).square().mean()


def _last_layer(layer: object, what: str = "last_layer") -> torch.Tensor:
    """The weight tensor of ``layer``: a tensor that requires grad, or a module's ``.weight``."""
    if isinstance(layer, nn.Module):
        weight = getattr(layer, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise TypeError(
                f"{what} must be the decoder's last weight (vae.decoder.last_layer) or a layer "
                f"with a .weight, got {type(layer).__name__} without one"
            )
        layer = weight
    if not isinstance(layer, torch.Tensor):
        raise TypeError(
            f"{what} must be the decoder's last weight (vae.decoder.last_layer), got "
            f"{type(layer).__name__}"
        )
    if not layer.requires_grad:
        raise ValueError(
            f"{what} must be a trainable weight (requires_grad=True), got a tensor of shape "
            f"{tuple(layer.shape)} that requires no gradient"
        )
    return layer


_DONATED_BUFFER_FIX = (
    "; a model compiled with torch.compile frees buffers for its backward, which the adaptive "
    "weight and R1 differentiate through first: set torch._functorch.config.donated_buffer = "
    "False before compiling (the example trainer does), or use adaptive=False and r1_gamma=0"
)


def _grad(outputs: torch.Tensor, inputs: torch.Tensor, **kwargs: bool) -> torch.Tensor | None:
    try:
        return torch.autograd.grad(outputs, inputs, **kwargs)[0]
    except RuntimeError as err:
        if "donated buffer" in str(err):
            raise RuntimeError(f"{err}{_DONATED_BUFFER_FIX}") from err
        raise


def _grad_norm(loss: torch.Tensor, weight: torch.Tensor, what: str) -> torch.Tensor:
    grad = _grad(loss, weight, retain_graph=True, allow_unused=True)
    if grad is None:
        raise ValueError(
            f"the {what} loss sends no gradient to last_layer (a weight of shape "
            f"{tuple(weight.shape)}); pass the last weight of the decoder that made the images: "
            "vae.decoder.last_layer"
        )
    return grad.detach().float().norm()


def adaptive_weight(
    recon_loss: torch.Tensor,
    adv_loss: torch.Tensor,
    last_layer: torch.Tensor | nn.Module,
    *,
    weight: float = 1.0,
    eps: float = 1e-4,
    max_weight: float = 1e4,
) -> torch.Tensor:
    """``weight · ‖∇_w recon_loss‖ / (‖∇_w adv_loss‖ + eps)``, clamped to ``[0, max_weight]``.

    The balance of VQGAN / latent diffusion (Esser et al. 2021): ``w`` is the decoder's last
    layer, so the adversarial gradient that reaches the decoder is ``weight`` times the
    reconstruction's. Detached (a weight, not a term to optimise); both graphs are kept for
    the backward pass that follows.

    Example:
        >>> import torch, vaekit as vk
        >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> rec, adv = (3 * w).sum(), (w * w).sum()        # gradients (3, 3) and (2, 4)
        >>> vk.functional.adaptive_weight(rec, adv, w, eps=0.0)   # sqrt(18) / sqrt(20)
        tensor(0.9487)
    """
    w = _last_layer(last_layer)
    check_number(weight, "weight", at_least=0)
    check_number(eps, "eps", at_least=0)
    check_number(max_weight, "max_weight", at_least=0)
    rec_norm = _grad_norm(recon_loss, w, "reconstruction")
    adv_norm = _grad_norm(adv_loss, w, "adversarial")
    return (weight * rec_norm / (adv_norm + eps)).clamp(0.0, max_weight).detach()


def r1_penalty(real: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """``E_x ‖∇_x D(x)‖²`` (Mescheder et al. 2018), ``D(x)`` = the sum of the image's logits.

    ``real`` must require grad and ``real_logits`` be computed from it; the result keeps its
    graph (``create_graph``), so the penalty trains the discriminator. Multiply by ``γ / 2``.

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.ones(2, 1, 2, 2, requires_grad=True)
        >>> logits = 3 * x.sum(dim=(1, 2, 3))           # gradient 3 at each of 4 pixels
        >>> vk.functional.r1_penalty(x, logits).item()  # 4 * 9
        36.0
    """
    if not real.requires_grad:
        raise ValueError(
            "r1_penalty needs the real images' gradient: call real.requires_grad_(True) before "
            "the discriminator sees them"
        )
    grad = _grad(real_logits.float().sum(), real, create_graph=True)
    return grad.float().square().flatten(1).sum(dim=1).mean()


class Adversarial(nn.Module):
    """The adversarial term: the decoder's ``λ · L_G`` and the discriminator's own loss.

    Two calls a training loop can see (the pattern of latent diffusion's autoencoder): the
    generator step ``generator_loss(x̂, ...)`` (or through ``VAELoss(..., adversarial=adv)``),
    then the discriminator step ``discriminator_loss(x, x̂, ...)`` with its own optimizer.

    Args:
        discriminator: any ``nn.Module`` mapping images to logits (``vk.discriminators``), or
            its ``DistributedDataParallel`` wrapper. It stays yours: it is *not* a submodule
            of the loss, so ``loss_fn.parameters()`` keeps meaning the VAE side's parameters,
            and you move, save and optimise it yourself.
        loss: ``"hinge"`` (default), ``"non_saturating"`` or ``"least_squares"``.
        weight: the adversarial term's weight: with ``adaptive=True`` the ratio of its
            gradient norm to the reconstruction's at ``last_layer`` (0.5 in latent
            diffusion's autoencoders), else the plain factor on ``L_G``.
        adaptive: compute ``λ`` from the two gradient norms (needs ``last_layer`` and
            ``recon_loss``); under ``torch.no_grad`` (validation) ``λ`` is 0 and the term is
            only reported.
        start: the first step at which the term is on; before it both losses are 0 and the
            discriminator is not called (``active(step)`` tells).
        r1_gamma: ``γ`` of the R1 penalty ``γ/2 · E‖∇_x D(x)‖²`` on real images (0: off).
        last_layer: the decoder's last weight, ``vae.decoder.last_layer`` (or a layer with a
            ``.weight``); a ``last_layer=`` given to :meth:`generator_loss` overrides it.
        max_weight: upper clamp of ``λ``.

    Example:
        >>> import torch, vaekit as vk
        >>> cfg = vk.VAEConfig(in_channels=1, image_size=32, widths=(8, 16), latent_dim=4,
        ...                    attention_at=())
        >>> vae = vk.VAE(cfg)
        >>> disc = vk.discriminators.build("patchgan", in_channels=1, width=8)
        >>> adv = vk.losses.Adversarial(disc, weight=0.5, last_layer=vae.decoder.last_layer)
        >>> loss_fn = vk.losses.VAELoss(recon="l1", beta=1e-3, adversarial=adv)
        >>> x = torch.rand(4, 1, 32, 32)
        >>> out = vae(x)
        >>> res = loss_fn(out, x, step=0)               # the VAE's step
        >>> sorted(res.terms)
        ['adv', 'adv_weight', 'kl', 'kl_raw', 'l1', 'recon']
        >>> d = loss_fn.discriminator_loss(out, x, step=0)   # the discriminator's step
        >>> sorted(d.terms)
        ['d_loss', 'logits_fake', 'logits_real']
    """

    def __init__(
        self,
        discriminator: nn.Module,
        loss: str = "hinge",
        weight: float = 0.5,
        *,
        adaptive: bool = True,
        start: int = 0,
        r1_gamma: float = 0.0,
        last_layer: torch.Tensor | nn.Module | None = None,
        max_weight: float = 1e4,
    ) -> None:
        super().__init__()
        if not isinstance(discriminator, nn.Module):
            raise TypeError(
                "discriminator must be an nn.Module mapping images to logits (e.g. "
                f"vk.discriminators.build('patchgan', in_channels=...)), got "
                f"{type(discriminator).__name__}"
            )
        check_choice(loss, ADVERSARIAL_LOSSES, "loss")
        if not isinstance(adaptive, bool):
            raise TypeError(f"adaptive must be a bool, got {type(adaptive).__name__}")
        # held, not registered: the discriminator and the decoder's weight are not this
        # module's parameters (see the class docstring)
        object.__setattr__(self, "discriminator", discriminator)
        object.__setattr__(
            self, "last_layer", None if last_layer is None else _last_layer(last_layer)
        )
        self.loss = loss
        self.weight = check_number(weight, "weight", at_least=0)
        self.adaptive = adaptive
        self.start = check_int(start, "start", minimum=0)
        self.r1_gamma = check_number(r1_gamma, "r1_gamma", at_least=0)
        self.max_weight = check_number(max_weight, "max_weight", at_least=0)

    # -- helpers ------------------------------------------------------------------------------
    def active(self, step: int) -> bool:
        """Whether the term is on at ``step`` (``step >= start``)."""
        return check_int(step, "step", minimum=0) >= self.start

    def _step(self, step: int | None) -> int:
        if step is None:
            if self.start > 0:
                raise TypeError(
                    f"the adversarial term starts at step {self.start}, so the loss depends on "
                    "the training step; pass step=..."
                )
            return 0
        return check_int(step, "step", minimum=0)

    def _images(self, x: torch.Tensor, name: str) -> torch.Tensor:
        channels = getattr(_unwrap(self.discriminator), "in_channels", None)
        check_image(x, name, channels=channels if isinstance(channels, int) else None)
        return x

    # -- the two steps ------------------------------------------------------------------------
    def generator_loss(
        self,
        fake: torch.Tensor,
        *,
        step: int | None = None,
        recon_loss: torch.Tensor | None = None,
        last_layer: torch.Tensor | nn.Module | None = None,
    ) -> LossOutput:
        """The decoder's term ``λ · L_G(D(fake))`` at ``step``.

        Args:
            fake: the reconstructions (or samples) ``x̂``, with their graph to the decoder.
            step: the training step (needed when ``start > 0``).
            recon_loss: the reconstruction loss of the same batch (for the adaptive weight).
            last_layer: overrides the layer given at construction.

        Returns:
            :class:`~vaekit.LossOutput`: ``total`` = ``λ · L_G`` (0 before ``start``),
            ``terms["adv"]`` = ``L_G`` and ``terms["adv_weight"]`` = ``λ`` (detached);
            ``beta`` is unused (1.0).
        """
        step = self._step(step)
        self._images(fake, "fake")
        zero = fake.new_zeros((), dtype=torch.float32)
        if step < self.start:
            return LossOutput(total=zero, terms={"adv": zero, "adv_weight": zero})
        g_loss = generator_loss(self.discriminator(fake), loss=self.loss)
        g_loss = _through_image(g_loss, fake)
        if not self.adaptive:
            lam = torch.full_like(zero, self.weight)
        elif not (torch.is_grad_enabled() and g_loss.requires_grad):
            lam = zero  # no gradients to compare (validation): reported, not added
        else:
            layer = last_layer if last_layer is not None else self.last_layer
            if layer is None:
                raise ValueError(
                    "adaptive=True needs the decoder's last layer: "
                    "Adversarial(..., last_layer=vae.decoder.last_layer) or "
                    "generator_loss(..., last_layer=...); or use adaptive=False"
                )
            if recon_loss is None or not isinstance(recon_loss, torch.Tensor):
                raise ValueError(
                    "adaptive=True needs recon_loss=, the reconstruction loss of the same batch "
                    "(a tensor with its graph), to balance the two gradients"
                )
            lam = adaptive_weight(
                recon_loss, g_loss, layer, weight=self.weight, max_weight=self.max_weight
            )
        return LossOutput(
            total=lam * g_loss, terms={"adv": g_loss.detach(), "adv_weight": lam.detach()}
        )

    def discriminator_loss(
        self, real: torch.Tensor, fake: torch.Tensor, *, step: int | None = None
    ) -> LossOutput:
        """The discriminator's loss on data ``real`` and reconstructions ``fake`` at ``step``.

        ``fake`` is detached here: this loss never sends gradients into the VAE. Real and
        fake go through the discriminator separately (batch norm sees batches of one kind).

        Returns:
            :class:`~vaekit.LossOutput`: ``total`` (+ ``γ/2 · R1``), ``terms``: ``d_loss``
            (without R1), ``logits_real`` and ``logits_fake`` (mean logits), ``r1`` when
            ``r1_gamma > 0``. Before ``start`` everything is 0 and ``total.backward()`` is a
            no-op (the discriminator is not called).
        """
        step = self._step(step)
        self._images(real, "real")
        self._images(fake, "fake")
        check_same_shape(real, fake, ("real", "fake"))
        check_finite(real, "real")
        check_finite(fake, "fake")
        if step < self.start:
            zero = real.new_zeros((), dtype=torch.float32)
            names = ("d_loss", "logits_real", "logits_fake") + (("r1",) if self.r1_gamma else ())
            return LossOutput(total=zero.clone().requires_grad_(), terms=dict.fromkeys(names, zero))
        real = real.detach()
        if self.r1_gamma > 0:
            real = real.requires_grad_(True)
        logits_real = self.discriminator(real)
        logits_fake = self.discriminator(fake.detach())
        check_finite(logits_real, "the discriminator's logits on real images")
        loss = discriminator_loss(logits_real, logits_fake, loss=self.loss)
        terms = {
            "d_loss": loss.detach(),
            "logits_real": logits_real.detach().float().mean(),
            "logits_fake": logits_fake.detach().float().mean(),
        }
        total = loss
        if self.r1_gamma > 0:
            r1 = r1_penalty(real, logits_real)
            total = total + 0.5 * self.r1_gamma * r1
            terms["r1"] = r1.detach()
        return LossOutput(total=total, terms=terms)

    forward = generator_loss  # calling the module is the generator's (the VAE's) term

    def extra_repr(self) -> str:
        return (
            f"discriminator={type(_unwrap(self.discriminator)).__name__}, loss={self.loss!r}, "
            f"weight={self.weight:g}, adaptive={self.adaptive}, start={self.start}, "
            f"r1_gamma={self.r1_gamma:g}"
        )


def _through_image(g_loss: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``g_loss`` with the same value and the same gradient for everything upstream of ``fake``,
    but a graph that stops at ``fake``: ``g + <∂g/∂x̂, x̂> - <∂g/∂x̂, x̂>.detach()``.

    The discriminator is differentiated once, for its input only (no weight gradients: the
    decoder's step never trains it), where the adaptive weight's norm and the backward pass
    would each go through it again. Kept as is without a graph to ``fake`` (validation) and in
    float16, where only a GradScaler's scale keeps the discriminator's gradients from
    underflowing.
    """
    if not (torch.is_grad_enabled() and fake.requires_grad and g_loss.requires_grad):
        return g_loss
    if fake.dtype == torch.float16 or g_loss.dtype == torch.float16:
        return g_loss
    grad = _grad(g_loss, fake, retain_graph=False, allow_unused=True)
    if grad is None:  # the discriminator ignored its input
        return g_loss.detach()
    inner = (grad.detach() * fake).sum(dtype=torch.float32)
    return g_loss.detach() + inner - inner.detach()


def _unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / torch.compile wrapper."""
    for attr in ("module", "_orig_mod"):
        inner = getattr(module, attr, None)
        if isinstance(inner, nn.Module):
            return _unwrap(inner)
    return module
