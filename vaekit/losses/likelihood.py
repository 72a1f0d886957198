"""Likelihood losses: Gaussian and Laplace negative log-likelihoods in nats, constants included.

With one of these (or ``bce``) at ``reduction="mean"`` and β = 1, :class:`~vaekit.losses.VAELoss`
is exactly the negative ELBO per data dimension. Variance models, per call:

- fixed: ``sigma`` (Gaussian std) or ``scale`` (Laplace b), default 1;
- ``"optimal"``: the maximum-likelihood value for the current batch, detached (σ² = batch
  MSE; "σ-VAE", Rybkin, Daniilidis & Levine 2021; for Laplace b = batch mean |error|).
  Detaching changes nothing in the gradient: at the optimum ∂NLL/∂σ = 0;
- ``"learned"`` (module only): one scalar log-variance parameter trained with the model;
- a decoder log-variance ``logvar`` (``variance="pixel"`` or ``"global"``), per call.

``logvar`` is always a log-*variance* (for Laplace, var = 2b²) and is clamped to
``logvar_range`` (default [-10, 10]) so a zero error cannot drive the NLL to -inf.

    Gaussian:  0.5 * (log 2π + log σ² + (x - x̂)² / σ²)
    Laplace:   log 2b + |x - x̂| / b
"""

from __future__ import annotations

import torch
from torch import nn

from .._maths import LOG_2, gaussian_log_prob, laplace_log_prob, logvar_of_scale
from .._maths import upcast_half as _f32
from .._validation import check_broadcasts, check_number, check_reduction
from ..distributions import DEFAULT_LOGVAR_RANGE
from ._common import float32_island, prepare, reduce_loss
from .registry import register

__all__ = ["GaussianNLLLoss", "LaplaceNLLLoss", "gaussian_nll", "laplace_nll"]


def _optimal_logvar(family: str, err: torch.Tensor) -> torch.Tensor:
    # maximum-likelihood scale for the batch: sigma² = mean err², b = mean |err|
    if family == "laplace":
        return LOG_2 + 2.0 * err.abs().mean().log()
    return err.square().mean().log()


def _resolve_logvar(
    x: torch.Tensor,
    y: torch.Tensor,
    logvar: torch.Tensor | None,
    scale: float | str | None,
    scale_name: str,
    family: str,
    logvar_range: tuple[float, float] | None,
) -> torch.Tensor:
    """The log-variance to use, from a decoder ``logvar``, a fixed scale or ``"optimal"``."""
    if logvar is not None:
        if scale is not None:
            raise ValueError(
                f"got both {scale_name}={scale!r} and a logvar tensor: these are two variance "
                f"models; pass one (leave {scale_name}=None to use the decoder logvar)"
            )
        check_broadcasts(logvar, x.shape, "logvar", "the input's")
        lv = _f32(logvar)
    elif scale == "optimal":
        lv = _optimal_logvar(family, (x - y).detach())
    elif isinstance(scale, str):
        raise ValueError(f"{scale_name} must be a positive float, 'optimal' or None, got {scale!r}")
    else:
        value = 1.0 if scale is None else scale
        check_number(value, scale_name, above=0)
        lv = x.new_full((), logvar_of_scale(family, value))
    if logvar_range is not None:
        lv = lv.clamp(*logvar_range)
    return lv


def gaussian_nll(
    input: torch.Tensor,
    target: torch.Tensor,
    logvar: torch.Tensor | None = None,
    *,
    sigma: float | str | None = None,
    logvar_range: tuple[float, float] | None = DEFAULT_LOGVAR_RANGE,
    reduction: str = "mean",
) -> torch.Tensor:
    """Gaussian negative log-likelihood ``-log N(target; input, σ²)`` in nats, per dimension.

    Args:
        input: decoder mean. target: data.
        logvar: decoder log-variance, broadcastable to ``input`` (per pixel or global).
        sigma: fixed std (default 1.0 when ``logvar`` is None) or ``"optimal"`` (σ² = batch
            MSE, detached). Giving both ``sigma`` and ``logvar`` is an error.
        logvar_range: clamp for the log-variance (``None``: no clamp).
        reduction: ``"none" | "mean" | "sum" | "batchmean"``.

    Shape:
        input, target: (B, C, H, W); output: scalar, or (B, C, H, W) for ``"none"``.

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.zeros(1, 1, 2, 2)
        >>> vk.functional.gaussian_nll(x, x)   # 0.5 * log(2π): the minimum for σ = 1
        tensor(0.9189)
    """
    check_reduction(reduction)
    x, y = prepare(input, target)
    with float32_island(x):
        lv = _resolve_logvar(x, y, logvar, sigma, "sigma", "gaussian", logvar_range)
        return reduce_loss(-gaussian_log_prob(y, x, lv), reduction)


def laplace_nll(
    input: torch.Tensor,
    target: torch.Tensor,
    logvar: torch.Tensor | None = None,
    *,
    scale: float | str | None = None,
    logvar_range: tuple[float, float] | None = DEFAULT_LOGVAR_RANGE,
    reduction: str = "mean",
) -> torch.Tensor:
    """Laplace negative log-likelihood ``log 2b + |target - input| / b`` in nats, per dimension.

    Args:
        input: decoder location. target: data.
        logvar: decoder log-*variance* (var = 2b²), broadcastable to ``input``.
        scale: fixed b (default 1.0 when ``logvar`` is None) or ``"optimal"`` (b = batch mean
            absolute error, detached). Giving both ``scale`` and ``logvar`` is an error.
        logvar_range: clamp for the log-variance (``None``: no clamp).
        reduction: ``"none" | "mean" | "sum" | "batchmean"``.

    Shape:
        input, target: (B, C, H, W); output: scalar, or (B, C, H, W) for ``"none"``.

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.zeros(1, 1, 2, 2)
        >>> vk.functional.laplace_nll(x, x)    # log 2: the minimum for b = 1
        tensor(0.6931)
    """
    check_reduction(reduction)
    x, y = prepare(input, target)
    with float32_island(x):
        lv = _resolve_logvar(x, y, logvar, scale, "scale", "laplace", logvar_range)
        return reduce_loss(-laplace_log_prob(y, x, lv), reduction)


class _LikelihoodLoss(nn.Module):
    """Shared module logic: fixed / optimal / learned scale, or the decoder's logvar per call."""

    accepts_logvar = True
    _scale_name: str

    def __init__(
        self,
        scale: float | str | None,
        init_scale: float,
        logvar_range: tuple[float, float] | None,
        reduction: str,
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        if not (scale is None or scale in ("learned", "optimal") or not isinstance(scale, str)):
            raise ValueError(
                f"{self._scale_name} must be a positive float, 'learned', 'optimal' or None, "
                f"got {scale!r}"
            )
        if not isinstance(scale, str) and scale is not None:
            check_number(scale, self._scale_name, above=0)
        self.reduction = reduction
        self.logvar_range = logvar_range
        self.learned = scale == "learned"
        setattr(self, self._scale_name, scale)
        if self.learned:
            check_number(init_scale, f"init_{self._scale_name}", above=0)
            family = "gaussian" if self._scale_name == "sigma" else "laplace"
            self.logvar = nn.Parameter(torch.tensor(logvar_of_scale(family, init_scale)))

    def forward(
        self, input: torch.Tensor, target: torch.Tensor, logvar: torch.Tensor | None = None
    ) -> torch.Tensor:
        scale = getattr(self, self._scale_name)
        if self.learned:
            if logvar is not None:
                raise ValueError(
                    f"{self._scale_name}='learned' and a decoder logvar are two variance models; "
                    f"use {self._scale_name}=None to take the decoder's, or a decoder with "
                    "variance='none'"
                )
            logvar, scale = self.logvar, None
        kwargs = {self._scale_name: scale}
        return type(self).function(
            input,
            target,
            logvar,
            logvar_range=self.logvar_range,
            reduction=self.reduction,
            **kwargs,
        )

    def extra_repr(self) -> str:
        return (
            f"{self._scale_name}={getattr(self, self._scale_name)!r}, "
            f"logvar_range={self.logvar_range!r}, reduction={self.reduction!r}"
        )


@register("gaussian_nll", aliases=("gaussian",))
class GaussianNLLLoss(_LikelihoodLoss):
    """Module form of :func:`gaussian_nll`, with ``sigma="learned"`` as an extra option.

    Args:
        sigma: ``None`` (1.0, or the decoder's logvar when one is passed), a float, ``"optimal"``
            or ``"learned"`` (a scalar log-variance parameter starting at ``init_sigma``²).
        init_sigma: start value for ``"learned"``.
        logvar_range, reduction: as in :func:`gaussian_nll`.

    Example:
        >>> import torch, vaekit as vk
        >>> loss = vk.losses.GaussianNLLLoss(sigma="learned")
        >>> loss(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 2.0)).backward()
        >>> loss.logvar.grad   # d/dlogvar of 0.5 * (logvar + err² exp(-logvar)) at 0, err = 2
        tensor(-1.5000)
    """

    function = gaussian_nll
    _scale_name = "sigma"

    def __init__(
        self,
        sigma: float | str | None = None,
        *,
        init_sigma: float = 1.0,
        logvar_range: tuple[float, float] | None = DEFAULT_LOGVAR_RANGE,
        reduction: str = "mean",
    ) -> None:
        super().__init__(sigma, init_sigma, logvar_range, reduction)


@register("laplace_nll", aliases=("laplace",))
class LaplaceNLLLoss(_LikelihoodLoss):
    """Module form of :func:`laplace_nll`, with ``scale="learned"`` as an extra option.

    Args:
        scale: ``None`` (b = 1.0, or the decoder's logvar when one is passed), a float,
            ``"optimal"`` or ``"learned"`` (a scalar log-variance parameter).
        init_scale: start value of b for ``"learned"``.
        logvar_range, reduction: as in :func:`laplace_nll`.

    Example:
        >>> import torch, vaekit as vk
        >>> loss = vk.losses.LaplaceNLLLoss(scale=0.5)
        >>> loss(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2))   # log 1 + 1 / 0.5
        tensor(2.)
    """

    function = laplace_nll
    _scale_name = "scale"

    def __init__(
        self,
        scale: float | str | None = None,
        *,
        init_scale: float = 1.0,
        logvar_range: tuple[float, float] | None = DEFAULT_LOGVAR_RANGE,
        reduction: str = "mean",
    ) -> None:
        super().__init__(scale, init_scale, logvar_range, reduction)
