"""The discriminator registry: ``vk.discriminators.build("patchgan", in_channels=1)``.

Built-in names: ``patchgan``. Users add their own with :func:`register`; any ``nn.Module``
that maps ``(B, C, H, W)`` images to logits works with :class:`vaekit.losses.Adversarial`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from torch import nn

from .._registry import Registry

__all__ = ["available", "build", "get", "name_of", "register", "unregister"]

F = TypeVar("F", bound=Callable[..., nn.Module])

DISCRIMINATORS = Registry("discriminator", "vaekit.discriminators", base=nn.Module)


def register(name: str, *, aliases: Iterable[str] = ()) -> Callable[[F], F]:
    """Decorator that registers a discriminator class (or a factory returning an ``nn.Module``).

    The module is called on an image batch ``(B, C, H, W)`` and returns logits (any shape with
    the batch first: a patch map ``(B, 1, h, w)`` or ``(B, 1)``); higher means "real".

    Example:
        >>> import torch, vaekit as vk
        >>> @vk.discriminators.register("global_mean")
        ... class GlobalMean(torch.nn.Module):
        ...     def __init__(self, in_channels=3):
        ...         super().__init__()
        ...         self.head = torch.nn.Linear(in_channels, 1)
        ...     def forward(self, x):
        ...         return self.head(x.mean(dim=(2, 3)))
        >>> vk.discriminators.build("global_mean", in_channels=1)(torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 1])
        >>> vk.discriminators.unregister("global_mean")
    """
    return DISCRIMINATORS.register(name, aliases=aliases)


def unregister(name: str) -> None:
    """Remove a registered name (any case) with its aliases (``ValueError`` if unknown)."""
    DISCRIMINATORS.unregister(name)


def available(*, aliases: bool = False) -> list[str]:
    """Sorted registered discriminator names (canonical only unless ``aliases=True``).

    Example:
        >>> import vaekit as vk
        >>> vk.discriminators.available()
        ['patchgan']
    """
    return DISCRIMINATORS.available(aliases=aliases)


def get(name: str) -> Callable[..., nn.Module]:
    """The class registered under ``name`` (or an alias; any case)."""
    return DISCRIMINATORS.get(name)


def build(name: str, **kwargs: Any) -> nn.Module:
    """Build the discriminator registered under ``name`` with keyword arguments.

    Example:
        >>> import torch, vaekit as vk
        >>> disc = vk.discriminators.build("patchgan", in_channels=1, width=16)
        >>> disc(torch.rand(2, 1, 32, 32)).shape
        torch.Size([2, 1, 2, 2])
        >>> vk.discriminators.build("patchgun")
        Traceback (most recent call last):
        ...
        ValueError: unknown discriminator 'patchgun': expected one of ['patchgan']; did you mean 'patchgan'?
    """
    return DISCRIMINATORS.build(name, **kwargs)


def name_of(module: nn.Module) -> str | None:
    """The registered name of ``module``'s class, or ``None`` for an unregistered class."""
    return DISCRIMINATORS.name_of(module)
