"""The loss registry: a name -> factory map so objectives can be assembled from strings.

Built-in names: ``l1``, ``mse``, ``bce``, ``ssim``, ``ms_ssim``, ``fft``, ``perceptual``,
``lpips``, ``gaussian_nll``, ``laplace_nll``, ``kl``. Users add their own with
:func:`register`; a registered loss works in :class:`~vaekit.losses.Weighted` and
:class:`~vaekit.losses.MultiScale` exactly like a built-in. Names are case-insensitive:
``build("SSIM")`` is ``build("ssim")``, and registering a name that differs from a taken one
only by case is a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from torch import nn

from .._registry import Registry

__all__ = ["available", "build", "get", "name_of", "register", "unregister"]

F = TypeVar("F", bound=Callable[..., nn.Module])

LOSSES = Registry("loss", "vaekit.losses", base=nn.Module)


def register(name: str, *, aliases: Iterable[str] = ()) -> Callable[[F], F]:
    """Decorator that registers a loss class (or any factory returning an ``nn.Module``).

    The module is called as ``loss(input, target)`` with the reconstruction first and the
    data second, and should have a ``reduction`` attribute (assumed ``"mean"`` if absent).

    Args:
        name: the registry name; a name (or alias) that is already taken, also in another
            case (``"L1"`` when ``"l1"`` exists), is a ``ValueError``.
        aliases: extra names that :func:`build` also accepts.

    Example:
        >>> import torch, vaekit as vk
        >>> @vk.losses.register("half_l1")
        ... class HalfL1(torch.nn.Module):
        ...     reduction = "mean"
        ...     def forward(self, input, target):
        ...         return 0.5 * (input - target).abs().mean()
        >>> vk.losses.build("half_l1")(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
        tensor(0.5000)
        >>> vk.losses.unregister("half_l1")
    """
    return LOSSES.register(name, aliases=aliases)


def unregister(name: str) -> None:
    """Remove a registered name (any case) with its aliases (``ValueError`` if unknown)."""
    LOSSES.unregister(name)


def available(*, aliases: bool = False) -> list[str]:
    """Sorted registered loss names (canonical only unless ``aliases=True``).

    Example:
        >>> import vaekit as vk
        >>> "ssim" in vk.losses.available()
        True
    """
    return LOSSES.available(aliases=aliases)


def get(name: str) -> Callable[..., nn.Module]:
    """The class/factory registered under ``name`` (or an alias; any case)."""
    return LOSSES.get(name)


def build(name: str, **kwargs: object) -> nn.Module:
    """Instantiate the loss registered under ``name`` (any case) with keyword arguments.

    Example:
        >>> import vaekit as vk
        >>> vk.losses.build("l1", reduction="sum")
        L1Loss(reduction='sum')
        >>> vk.losses.build("SSIM")
        SSIMLoss(data_range=1.0, window_size=11, window_sigma=1.5, k1=0.01, k2=0.03, reduction='mean')
    """
    return LOSSES.build(name, **kwargs)


def name_of(module: nn.Module) -> str | None:
    """The registry name whose class ``module`` is an instance of, or ``None``."""
    return LOSSES.name_of(module)
