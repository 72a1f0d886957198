"""The loss registry: a name -> factory map so objectives can be assembled from strings.

Built-in names: ``l1``, ``mse``, ``bce``, ``ssim``, ``ms_ssim``, ``fft``, ``perceptual``,
``lpips``, ``gaussian_nll``, ``laplace_nll``, ``kl``. Users add their own with
:func:`register`; a registered loss works in :class:`~vaekit.losses.Weighted` and
:class:`~vaekit.losses.MultiScale` exactly like a built-in. Names are case-insensitive:
``build("SSIM")`` is ``build("ssim")``, and registering a name that differs from a taken one
only by case is a ``ValueError``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import TypeVar

from torch import nn

__all__ = ["available", "build", "get", "name_of", "register", "unregister"]

F = TypeVar("F", bound=Callable[..., nn.Module])

_FACTORIES: dict[str, Callable[..., nn.Module]] = {}
_ALIASES: dict[str, str] = {}  # alias -> canonical name


def _check_name(name: object, what: str = "name") -> str:
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(f"loss {what} must be a non-empty string without '.', got {name!r}")
    return name


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
    _check_name(name)
    aliases = tuple(_check_name(a, "alias") for a in aliases)
    new = (name, *aliases)
    if len({n.casefold() for n in new}) < len(new):
        raise ValueError(f"loss name and aliases must differ in more than case, got {list(new)}")
    taken = _folded()
    for n in new:
        if n.casefold() in taken:
            owner = _describe(get(n))
            where = (
                f"(to {owner})"
                if taken[n.casefold()] == n
                else f"as {taken[n.casefold()]!r} (to {owner}; names ignore case)"
            )
            raise ValueError(
                f"loss name {n!r} is already registered {where}; pick another name or "
                "call vaekit.losses.unregister first"
            )

    def decorator(factory: F) -> F:
        if not callable(factory):
            raise TypeError(f"register expects a class or callable, got {type(factory).__name__}")
        _FACTORIES[name] = factory
        _ALIASES.update(dict.fromkeys(aliases, name))
        return factory

    return decorator


def unregister(name: str) -> None:
    """Remove a registered name (any case) with its aliases (``ValueError`` if unknown)."""
    canonical = _canonical(name)
    del _FACTORIES[canonical]
    for alias in [a for a, c in _ALIASES.items() if c == canonical]:
        del _ALIASES[alias]


def available(*, aliases: bool = False) -> list[str]:
    """Sorted registered loss names (canonical only unless ``aliases=True``).

    Example:
        >>> import vaekit as vk
        >>> "ssim" in vk.losses.available()
        True
    """
    names = list(_FACTORIES) + (list(_ALIASES) if aliases else [])
    return sorted(names)


def _folded() -> dict[str, str]:
    """Every registered name and alias, case-folded -> as registered."""
    return {n.casefold(): n for n in (*_FACTORIES, *_ALIASES)}


def _canonical(name: object) -> str:
    if isinstance(name, str):
        name = _folded().get(name.casefold(), name)  # names are case-insensitive
        if name in _FACTORIES:
            return name
        if name in _ALIASES:
            return _ALIASES[name]
    close = []
    if isinstance(name, str):
        folded = _folded()
        close = [folded[n] for n in difflib.get_close_matches(name.casefold(), folded, n=3)]
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"unknown loss {name!r}: expected one of {available()}{hint}")


def get(name: str) -> Callable[..., nn.Module]:
    """The class/factory registered under ``name`` (or an alias; any case)."""
    return _FACTORIES[_canonical(name)]


def build(name: str, **kwargs: object) -> nn.Module:
    """Instantiate the loss registered under ``name`` (any case) with keyword arguments.

    Example:
        >>> import vaekit as vk
        >>> vk.losses.build("l1", reduction="sum")
        L1Loss(reduction='sum')
        >>> vk.losses.build("SSIM")
        SSIMLoss(data_range=1.0, win_size=11, win_sigma=1.5, K=(0.01, 0.03), reduction='mean')
    """
    factory = get(name)
    module = factory(**kwargs)
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"loss factory {name!r} must return an nn.Module, got {type(module).__name__}"
        )
    return module


def name_of(module: nn.Module) -> str | None:
    """The registry name whose class ``module`` is an instance of, or ``None``."""
    for name, factory in _FACTORIES.items():
        if isinstance(factory, type) and type(module) is factory:
            return name
    return None


def _describe(factory: object) -> str:
    return getattr(factory, "__qualname__", type(factory).__name__)
