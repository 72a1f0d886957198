"""One registry for every family of swappable parts: losses, blocks, schedules, priors.

A :class:`Registry` maps names (case-insensitive, with aliases) to classes or factories.
Each family keeps one instance and exposes its methods as module functions
(``vk.losses.register/available/get/build``, ``vk.blocks.register/available/create``, ...), so
``available()``, close-match errors, name clashes and save/load by name behave the same
everywhere (the timm ``create_*`` pattern over a registry).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = ["Registry"]

F = TypeVar("F", bound=Callable[..., Any])


def _describe(factory: object) -> str:
    module = getattr(factory, "__module__", "")
    name = getattr(factory, "__qualname__", type(factory).__name__)
    return f"{module}.{name}" if module else name


class Registry:
    """Names -> factories for one family of parts.

    Args:
        kind: what the family is called in messages (``"loss"``, ``"block"``, ...).
        family: the public module users call ``register``/``unregister`` on, for messages
            (``"vaekit.losses"``).
        base: when given, ``build`` checks that the factory returned an instance of it.

    Names are case-insensitive (``"SSIM"`` finds ``"ssim"``); a name or alias that differs
    from a taken one only by case is a ``ValueError``; an unknown name is a ``ValueError``
    that lists the known names and suggests close matches.

    Example:
        >>> from vaekit._registry import Registry
        >>> shapes = Registry("shape", "my_lib")
        >>> @shapes.register("square", aliases=("box",))
        ... class Square:
        ...     def __init__(self, side=1):
        ...         self.side = side
        >>> shapes.build("BOX", side=3).side
        3
        >>> shapes.available()
        ['square']
        >>> shapes.get("sqaure")
        Traceback (most recent call last):
        ...
        ValueError: unknown shape 'sqaure': expected one of ['square']; did you mean 'square'?
    """

    def __init__(self, kind: str, family: str, *, base: type | None = None) -> None:
        self.kind = kind
        self.family = family
        self.base = base
        self._factories: dict[str, Callable[..., Any]] = {}
        self._aliases: dict[str, str] = {}  # alias -> canonical name

    # -- registration -----------------------------------------------------------------------
    def _check_name(self, name: object, what: str = "name") -> str:
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(
                f"{self.kind} {what} must be a non-empty string without '.', got {name!r}"
            )
        return name

    def _folded(self) -> dict[str, str]:
        """Every registered name and alias, case-folded -> as registered."""
        return {n.casefold(): n for n in (*self._factories, *self._aliases)}

    def register(self, name: str, *, aliases: Iterable[str] = ()) -> Callable[[F], F]:
        """Decorator registering a class or factory under ``name`` (and ``aliases``)."""
        self._check_name(name)
        aliases = tuple(self._check_name(a, "alias") for a in aliases)
        new = (name, *aliases)
        if len({n.casefold() for n in new}) < len(new):
            raise ValueError(
                f"{self.kind} name and aliases must differ in more than case, got {list(new)}"
            )
        taken = self._folded()
        for n in new:
            if n.casefold() in taken:
                owner = _describe(self.get(n))
                where = (
                    f"(to {owner})"
                    if taken[n.casefold()] == n
                    else f"as {taken[n.casefold()]!r} (to {owner}; names ignore case)"
                )
                raise ValueError(
                    f"{self.kind} name {n!r} is already registered {where}; pick another name "
                    f"or call {self.family}.unregister first"
                )

        def decorator(factory: F) -> F:
            if not callable(factory):
                raise TypeError(
                    f"register expects a class or callable, got {type(factory).__name__}"
                )
            self._factories[name] = factory
            self._aliases.update(dict.fromkeys(aliases, name))
            return factory

        return decorator

    def unregister(self, name: str) -> None:
        """Remove a registered name (any case) with its aliases (``ValueError`` if unknown)."""
        canonical = self.canonical(name)
        del self._factories[canonical]
        for alias in [a for a, c in self._aliases.items() if c == canonical]:
            del self._aliases[alias]

    # -- lookup -----------------------------------------------------------------------------
    def available(self, *, aliases: bool = False) -> list[str]:
        """Sorted registered names (canonical only unless ``aliases=True``)."""
        return sorted([*self._factories, *(self._aliases if aliases else ())])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.casefold() in self._folded()

    def canonical(self, name: object) -> str:
        """The canonical registered name for ``name`` (an alias, any case)."""
        if isinstance(name, str):
            name = self._folded().get(name.casefold(), name)
            if name in self._factories:
                return name
            if name in self._aliases:
                return self._aliases[name]
        raise ValueError(self.unknown_message(name))

    def unknown_message(self, name: object) -> str:
        """``unknown <kind> 'x': expected one of [...]; did you mean ...?``"""
        close: list[str] = []
        if isinstance(name, str):
            folded = self._folded()
            close = [folded[n] for n in difflib.get_close_matches(name.casefold(), folded, n=3)]
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        return f"unknown {self.kind} {name!r}: expected one of {self.available()}{hint}"

    def get(self, name: str) -> Callable[..., Any]:
        """The class/factory registered under ``name`` (or an alias; any case)."""
        return self._factories[self.canonical(name)]

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the factory registered under ``name`` with the given arguments."""
        obj = self.get(name)(*args, **kwargs)
        if self.base is not None and not isinstance(obj, self.base):
            base = self.base.__qualname__
            if self.base.__module__.startswith("torch.nn"):
                base = f"nn.{base}"  # "an nn.Module", as users write it
            article = "an" if base[0].lower() in "aeion" else "a"  # "an nn.Module"
            raise TypeError(
                f"{self.kind} factory {name!r} must return {article} {base}, got "
                f"{type(obj).__name__}"
            )
        return obj

    def name_of(self, obj: object) -> str | None:
        """The registered name whose class ``obj`` is exactly an instance of, or ``None``."""
        for name, factory in self._factories.items():
            if isinstance(factory, type) and type(obj) is factory:
                return name
        return None

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._factories)} names)"
