"""Pixel losses: L1, MSE and binary cross-entropy (the Bernoulli negative log-likelihood).

``l1`` and ``mse`` are the Laplace and Gaussian likelihoods without their constants and scale
(use ``laplace_nll``/``gaussian_nll`` for a true ELBO). ``bce`` is the exact Bernoulli NLL in
nats, per pixel; on non-binary targets in [0, 1] it is the usual (unnormalised) choice, see
Loaiza-Ganem & Cunningham 2019 on the continuous Bernoulli.
"""

from __future__ import annotations

import torch

from .._maths import bernoulli_log_prob
from .._validation import check_reduction
from ._common import FunctionalLoss, prepare, reduce_loss
from .registry import register

__all__ = ["BCELoss", "L1Loss", "MSELoss", "bce_loss", "l1_loss", "mse_loss"]


def l1_loss(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Mean absolute error ``|input - target|``.

    Args:
        input: reconstruction. target: data. reduction: ``"none" | "mean" | "sum" | "batchmean"``.

    Shape:
        input, target: (B, C, H, W); output: scalar, or (B, C, H, W) for ``"none"``.

    Example:
        >>> import torch, vaekit as vk
        >>> vk.functional.l1_loss(torch.full((1, 1, 2, 2), 0.5), torch.zeros(1, 1, 2, 2))
        tensor(0.5000)
    """
    check_reduction(reduction)
    x, y = prepare(input, target)
    return reduce_loss((x - y).abs(), reduction)


def mse_loss(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error ``(input - target)^2``.

    Shape:
        input, target: (B, C, H, W); output: scalar, or (B, C, H, W) for ``"none"``.

    Example:
        >>> import torch, vaekit as vk
        >>> vk.functional.mse_loss(torch.full((1, 1, 2, 2), 0.5), torch.zeros(1, 1, 2, 2))
        tensor(0.2500)
    """
    check_reduction(reduction)
    x, y = prepare(input, target)
    return reduce_loss((x - y).square(), reduction)


def bce_loss(
    input: torch.Tensor, target: torch.Tensor, *, logits: bool = False, reduction: str = "mean"
) -> torch.Tensor:
    """Binary cross-entropy: the Bernoulli NLL ``-[t log p + (1 - t) log(1 - p)]`` in nats.

    Args:
        input: probabilities in [0, 1], or logits with ``logits=True`` (numerically safer).
        target: data in [0, 1].
        logits: interpret ``input`` as logits.
        reduction: ``"none" | "mean" | "sum" | "batchmean"``.

    Shape:
        input, target: (B, C, H, W); output: scalar, or (B, C, H, W) for ``"none"``.

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.tensor([[[[0.0, 1.0]]]])
        >>> vk.functional.bce_loss(x, x)
        tensor(0.)
    """
    check_reduction(reduction)
    x, y = prepare(input, target, data_range=1.0, check_input_range=not logits)
    return reduce_loss(-bernoulli_log_prob(y, x, logits=logits), reduction)


@register("l1", aliases=("mae",))
class L1Loss(FunctionalLoss):
    """Module form of :func:`l1_loss`.

    Example:
        >>> import torch, vaekit as vk
        >>> vk.losses.L1Loss()(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
        tensor(1.)
    """

    function = l1_loss


@register("mse", aliases=("l2",))
class MSELoss(FunctionalLoss):
    """Module form of :func:`mse_loss`.

    Example:
        >>> import torch, vaekit as vk
        >>> vk.losses.MSELoss()(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
        tensor(1.)
    """

    function = mse_loss


@register("bce", aliases=("bernoulli",))
class BCELoss(FunctionalLoss):
    """Module form of :func:`bce_loss` (a likelihood: with β = 1 :class:`VAELoss` is the ELBO).

    Example:
        >>> import torch, vaekit as vk
        >>> loss = vk.losses.BCELoss(logits=True)
        >>> loss(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2))  # log 2
        tensor(0.6931)
    """

    function = bce_loss
