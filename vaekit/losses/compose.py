"""Composing losses: a weighted sum of named terms, and a multi-scale (image pyramid) wrapper.

Both follow one small protocol that :class:`~vaekit.losses.VAELoss` uses to log every part:
``forward_terms(input, target, logvar=None) -> {name: unweighted value}`` and
``combine(terms) -> total``; ``forward`` is ``combine(forward_terms(...))``, so there is no
hidden "last value" state. A decoder log-variance ``logvar`` is passed on to the parts that
can use it (``accepts_logvar``: ``gaussian_nll``, ``laplace_nll``) and to nobody else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_image, check_int, check_number
from .kl import KL
from .perceptual import LPIPSLoss, PerceptualLoss
from .registry import build, name_of
from .structural import MSSSIMLoss, SSIMLoss

__all__ = ["RESERVED_TERMS", "MultiScale", "Weighted", "loss_terms", "reduction_of"]

# names VAELoss puts in LossOutput.terms itself
RESERVED_TERMS = ("recon", "kl", "kl_raw", "total", "adv", "adv_weight")
# built-ins whose value is one number per image (reduction="none" gives (B,))
_PER_IMAGE_LOSSES = (SSIMLoss, MSSSIMLoss, PerceptualLoss, LPIPSLoss)


def _accepts_logvar(loss: nn.Module) -> bool:
    return bool(getattr(loss, "accepts_logvar", False))


def reduction_of(loss: nn.Module) -> str:
    """The loss's ``reduction`` attribute (``"mean"`` when a custom loss has none)."""
    return getattr(loss, "reduction", "mean")


def _call(
    loss: nn.Module, input: torch.Tensor, target: torch.Tensor, logvar: torch.Tensor | None
) -> torch.Tensor:
    if logvar is not None and _accepts_logvar(loss):
        return loss(input, target, logvar=logvar)
    return loss(input, target)


def loss_terms(
    loss: nn.Module,
    input: torch.Tensor,
    target: torch.Tensor,
    logvar: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Unweighted named terms of any loss: its own ``forward_terms``, else ``{name: value}``."""
    if hasattr(loss, "forward_terms"):
        return loss.forward_terms(input, target, logvar=logvar)
    name = name_of(loss) or type(loss).__name__.lower()
    return {name: _call(loss, input, target, logvar)}


def _combine(loss: nn.Module, terms: dict[str, torch.Tensor]) -> torch.Tensor:
    if hasattr(loss, "combine"):
        return loss.combine(terms)
    (value,) = terms.values()
    return value


def _as_module(spec: object, what: str) -> nn.Module:
    """A loss module from a registry name, a ``{name: weight}`` dict (Weighted) or a module."""
    if isinstance(spec, str):
        spec = build(spec)
    elif isinstance(spec, Mapping):
        spec = Weighted(spec)
    if not isinstance(spec, nn.Module):
        raise TypeError(
            f"{what} must be a loss name, a {{name: weight}} dict or an nn.Module, got "
            f"{type(spec).__name__}"
        )
    if isinstance(spec, KL):
        raise ValueError(
            f"{what} is the KL term, not a reconstruction loss; pass it as VAELoss(kl=...)"
        )
    return spec


def _common_reduction(losses: Mapping[str, nn.Module]) -> str:
    reductions = {name: reduction_of(loss) for name, loss in losses.items()}
    if "none" in reductions.values() or len(set(reductions.values())) > 1:
        raise ValueError(
            "every term must have the same scalar reduction ('mean', 'sum' or 'batchmean'): a "
            "weighted sum of per-dimension and per-sample values silently reweights them; got "
            f"{reductions}"
        )
    return next(iter(reductions.values()))


class Weighted(nn.Module):
    """Weighted sum of named losses: ``sum_k w_k * loss_k(input, target)``.

    Args:
        terms: ``{name: weight}`` builds the registered loss ``name`` with default arguments;
            ``{name: (module, weight)}`` uses your module under any name. Weights are
            non-negative floats; all terms must share one ``reduction``.

    Shape:
        input, target: (B, C, H, W); ``logvar`` (optional) goes to likelihood terms only;
        output: scalar.

    Example:
        >>> import torch, vaekit as vk
        >>> recon = vk.losses.Weighted({"l1": 1.0, "mse": (vk.losses.MSELoss(), 0.5)})
        >>> x, y = torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
        >>> recon(x, y)
        tensor(1.5000)
        >>> recon.forward_terms(x, y)
        {'l1': tensor(1.), 'mse': tensor(1.)}
    """

    def __init__(self, terms: Mapping[str, float | tuple[nn.Module, float]]) -> None:
        super().__init__()
        if not isinstance(terms, Mapping) or not terms:
            raise TypeError(
                "terms must be a non-empty dict {name: weight} or {name: (module, weight)}, got "
                f"{terms!r}"
            )
        modules, weights = {}, {}
        for name, spec in terms.items():
            if isinstance(spec, (tuple, list)):
                if len(spec) != 2:
                    raise TypeError(f"term {name!r}: expected (module, weight), got {spec!r}")
                module, weight = spec
            else:
                module, weight = name, spec
            check_number(weight, f"weight of term {name!r}", at_least=0)
            module = _as_module(module, f"term {name!r}")
            if not isinstance(name, str) or not name or "." in name or name in RESERVED_TERMS:
                raise ValueError(
                    f"term names must be non-empty strings without '.', not one of "
                    f"{list(RESERVED_TERMS)}; got {name!r}"
                )
            modules[name] = module
            weights[name] = float(weight)
        self.reduction = _common_reduction(modules)
        self.losses = nn.ModuleDict(modules)
        self.weights = weights

    @property
    def accepts_logvar(self) -> bool:
        """Whether any term uses a decoder log-variance."""
        return any(_accepts_logvar(loss) for loss in self.losses.values())

    def forward_terms(
        self, input: torch.Tensor, target: torch.Tensor, logvar: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Each term's unweighted value, by name."""
        return {name: _call(loss, input, target, logvar) for name, loss in self.losses.items()}

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """The weighted sum of a :meth:`forward_terms` result."""
        return sum(self.weights[name] * terms[name] for name in self.weights)

    def forward(
        self, input: torch.Tensor, target: torch.Tensor, logvar: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.combine(self.forward_terms(input, target, logvar))

    def extra_repr(self) -> str:
        return f"weights={self.weights}"


def _sums_over_pixels(loss: nn.Module) -> bool:
    """Whether a loss's ``"sum"``/``"batchmean"`` value adds up per-pixel values (and so grows
    with the image), as for ``l1``, ``mse``, ``bce``, ``fft``, the likelihoods; False for the
    per-image losses (``ssim``, ``ms_ssim``, ``perceptual``, ``lpips``: ``"none"`` gives (B,)).

    A custom loss declares the latter with a ``per_image = True`` attribute.
    """
    declared = getattr(loss, "per_image", None)
    if declared is not None:
        return not declared
    if isinstance(loss, MultiScale):
        return _sums_over_pixels(loss.loss)
    if isinstance(loss, Weighted):
        kinds = {_sums_over_pixels(term) for term in loss.losses.values()}
        if len(kinds) > 1:
            raise ValueError(
                "a Weighted loss nested inside another term mixes per-pixel and per-image losses "
                "under a 'sum'/'batchmean' reduction, so MultiScale cannot put its coarse levels "
                "on the full-resolution scale; pass the terms to one Weighted instead"
            )
        return kinds.pop()
    return not isinstance(loss, _PER_IMAGE_LOSSES)


def _pixel_summed_terms(loss: nn.Module) -> bool | dict[str, bool]:
    """Per term name (or for every term), whether :func:`_sums_over_pixels` holds."""
    if isinstance(loss, MultiScale):
        return _pixel_summed_terms(loss.loss)
    if isinstance(loss, Weighted):
        return {name: _sums_over_pixels(term) for name, term in loss.losses.items()}
    return _sums_over_pixels(loss)


class MultiScale(nn.Module):
    """A loss evaluated on an image pyramid (1x, 1/2x, 1/4x, ... by 2x2 average pooling).

    With ``x_0 = x`` and ``x_l = avgpool2(x_{l-1})`` (sides ``h_l = floor(h_{l-1} / 2)``, the
    same for ``w``), weights ``w_l`` normalised to sum to 1 (default equal):

        MultiScale(loss)(x̂, x) = Σ_l w_l · s_l · loss(x̂_l, x_l)

    where ``s_l = 1`` for ``reduction="mean"`` (already per element) and
    ``s_l = (H·W) / (h_l·w_l)`` for ``"sum"`` and ``"batchmean"``, which sum over the pixels of
    level ``l``; so on images that are constant on ``2^(scales-1)``-pixel blocks
    ``MultiScale(l1)`` equals ``l1`` for every reduction, and the value stays on the wrapped
    loss's full-resolution scale (the one ``VAELoss(kl_scale="auto")`` pairs the KL with).
    Per-image losses (``ssim``, ``ms_ssim``, ``perceptual``, ``lpips``, or a custom loss with
    ``per_image = True``) are not rescaled: their ``"sum"`` adds one value per image at every
    level. A ``reduction="none"`` loss is a ``ValueError`` (the levels have different shapes).
    A decoder ``logvar`` is pooled the same way (a global one is passed unchanged). Note: a
    likelihood loss under ``MultiScale`` is no longer an exact ELBO term.

    Args:
        loss: a registry name, a ``{name: weight}`` dict (→ :class:`Weighted`) or a module.
        scales: number of pyramid levels (1 = the loss itself).
        weights: per-scale weights, finest first.

    Shape:
        input, target: (B, C, H, W) with H, W >= 2 ** (scales - 1); output: scalar.

    Example:
        >>> import torch, vaekit as vk
        >>> loss = vk.losses.MultiScale("l1", scales=3)
        >>> loss(torch.ones(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
        tensor(1.)
        >>> ones, zeros = torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
        >>> vk.losses.MultiScale(vk.losses.MSELoss(reduction="batchmean"), scales=2)(ones, zeros)
        tensor(16.)
    """

    def __init__(
        self,
        loss: str | Mapping[str, object] | nn.Module,
        scales: int = 3,
        weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        scales = check_int(scales, "scales")
        weights = [1.0] * scales if weights is None else [float(w) for w in weights]
        if len(weights) != scales or any(not w >= 0 for w in weights) or not sum(weights) > 0:
            raise ValueError(
                f"weights must be {scales} non-negative numbers with a positive sum, got {weights}"
            )
        self.loss = _as_module(loss, "loss")
        self.scales = scales
        self.weights = [w / sum(weights) for w in weights]
        self.reduction = reduction_of(self.loss)
        if self.reduction not in ("mean", "sum", "batchmean"):
            raise ValueError(
                "MultiScale needs a loss that reduces to a scalar ('mean', 'sum' or "
                f"'batchmean'): its levels have different shapes; got reduction="
                f"{self.reduction!r}"
            )
        # which terms sum over pixels, and so are rescaled to the full resolution per level
        rescale = self.reduction != "mean" and scales > 1
        self._rescaled = rescale and _pixel_summed_terms(self.loss)

    @property
    def accepts_logvar(self) -> bool:
        """Whether the wrapped loss uses a decoder log-variance."""
        return _accepts_logvar(self.loss)

    def _factor(self, name: str, full: int, level: int) -> float:
        rescaled = self._rescaled
        if isinstance(rescaled, dict):
            rescaled = rescaled.get(name, True)
        return full / level if rescaled else 1.0

    def forward_terms(
        self, input: torch.Tensor, target: torch.Tensor, logvar: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The wrapped loss's named terms, each averaged over scales (on the 1x scale)."""
        check_image(input, "input")
        if min(input.shape[-2:]) < 2 ** (self.scales - 1):
            raise ValueError(
                f"MultiScale with scales={self.scales} needs images of at least "
                f"{2 ** (self.scales - 1)} px, got {tuple(input.shape[-2:])}"
            )
        pool_logvar = logvar is not None and logvar.ndim == 4 and logvar.shape[-2:] != (1, 1)
        full_pixels = input.shape[-2] * input.shape[-1]
        totals: dict[str, torch.Tensor] = {}
        for level, weight in enumerate(self.weights):
            if level > 0:
                input, target = F.avg_pool2d(input, 2), F.avg_pool2d(target, 2)
                if pool_logvar:
                    logvar = F.avg_pool2d(logvar, 2)
            pixels = input.shape[-2] * input.shape[-1]
            for name, value in loss_terms(self.loss, input, target, logvar).items():
                value = (weight * self._factor(name, full_pixels, pixels)) * value
                totals[name] = totals[name] + value if name in totals else value
        return totals

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """The wrapped loss's combination (averaging over scales commutes with it)."""
        return _combine(self.loss, terms)

    def forward(
        self, input: torch.Tensor, target: torch.Tensor, logvar: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.combine(self.forward_terms(input, target, logvar))

    def extra_repr(self) -> str:
        return f"scales={self.scales}, weights={self.weights}"
