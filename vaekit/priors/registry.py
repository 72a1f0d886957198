"""The prior registry, and save/load of a prior by name + config + state dict.

Built-in names: ``standard_normal`` (alias ``normal``), ``mog``, ``vamp``, ``gmm``, ``flow``,
``diffusion``. Users add their own :class:`~vaekit.priors.Prior` subclasses with
:func:`register`; a registered prior can be saved and rebuilt by name like a built-in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import torch

from .._registry import Registry
from .base import ExPostPrior, Prior

__all__ = [
    "available",
    "build",
    "density_names",
    "from_config",
    "get",
    "name_of",
    "register",
    "to_config",
    "unregister",
]

F = TypeVar("F", bound=Callable[..., Prior])

PRIORS = Registry("prior", "vaekit.priors", base=Prior)


def register(name: str, *, aliases: Iterable[str] = ()) -> Callable[[F], F]:
    """Decorator that registers a :class:`~vaekit.priors.Prior` subclass under ``name``.

    Its constructor must accept the keys of its :meth:`~vaekit.priors.Prior.config` as
    keyword arguments, so :func:`from_config` can rebuild it.

    Example:
        >>> import torch, vaekit as vk
        >>> @vk.priors.register("wide_normal")
        ... class WideNormal(vk.priors.StandardNormal):
        ...     def _sample(self, n, temperature, generator):
        ...         return 2.0 * super()._sample(n, temperature, generator)
        >>> vk.priors.build("wide_normal", latent_shape=(3,)).sample(2).shape
        torch.Size([2, 3])
        >>> vk.priors.unregister("wide_normal")
    """
    return PRIORS.register(name, aliases=aliases)


def unregister(name: str) -> None:
    """Remove a registered name (any case) with its aliases (``ValueError`` if unknown).

    Example:
        >>> import vaekit as vk
        >>> vk.priors.unregister("no_such_prior")
        Traceback (most recent call last):
        ...
        ValueError: unknown prior 'no_such_prior': expected one of [...]
    """
    PRIORS.unregister(name)


def available(*, aliases: bool = False) -> list[str]:
    """Sorted registered prior names (canonical only unless ``aliases=True``).

    Example:
        >>> import vaekit as vk
        >>> vk.priors.available()
        ['diffusion', 'edm', 'flow', 'gmm', 'mog', 'standard_normal', 'vamp']
    """
    return PRIORS.available(aliases=aliases)


def get(name: str) -> Callable[..., Prior]:
    """The class registered under ``name`` (or an alias; any case).

    Example:
        >>> import vaekit as vk
        >>> vk.priors.get("Normal").__name__
        'StandardNormal'
    """
    return PRIORS.get(name)


def build(name: str, **kwargs: Any) -> Prior:
    """Instantiate the prior registered under ``name`` (any case) with keyword arguments.

    Example:
        >>> import vaekit as vk
        >>> vk.priors.build("gmm", components=3)
        GaussianMixture(latent_shape=None, components=3, covariance='full', ...)
        >>> vk.priors.build("gaussian")
        Traceback (most recent call last):
        ...
        ValueError: unknown prior 'gaussian': ...; did you mean 'gaussian_mixture'?
    """
    return PRIORS.build(name, **kwargs)


def name_of(prior: Prior) -> str | None:
    """The registry name of ``prior``'s exact class, or ``None`` if it is not registered.

    Example:
        >>> import vaekit as vk
        >>> vk.priors.name_of(vk.priors.Flow())
        'flow'
    """
    return PRIORS.name_of(prior)


def density_names() -> list[str]:
    """Registered priors with a tractable ``log_prob`` (usable for training and likelihoods).

    Example:
        >>> import vaekit as vk
        >>> vk.priors.density_names()
        ['flow', 'gmm', 'mog', 'standard_normal', 'vamp']
    """
    return [
        n
        for n in PRIORS.available()
        if isinstance(f := PRIORS.get(n), type) and getattr(f, "has_log_prob", False)
    ]


def to_config(prior: Prior) -> dict[str, Any]:
    """``{"name": registry name, "config": constructor kwargs}``: JSON-able, for save files.

    The weights are ``prior.state_dict()``; :func:`from_config` takes both back.

    Example:
        >>> import vaekit as vk
        >>> vk.priors.to_config(vk.priors.StandardNormal((8,)))
        {'name': 'standard_normal', 'config': {'latent_shape': [8]}}
    """
    if not isinstance(prior, Prior):
        raise TypeError(f"prior must be a vaekit.priors.Prior, got {type(prior).__name__}")
    name = name_of(prior)
    if name is None:
        raise ValueError(
            f"{type(prior).__name__} is not a registered prior, so it cannot be saved by name: "
            "decorate its class with @vk.priors.register('my_prior')"
        )
    config = prior.config()
    out: dict[str, Any] = {"name": name, "config": config}
    if isinstance(prior, ExPostPrior) and prior.is_fitted:
        out["fit"] = prior.fit_state()  # history, fit_report, ...: what fit() recorded
    try:
        json.dumps(out)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{type(prior).__name__}.config() and fit_state() must be JSON-able: {err}"
        ) from None
    return out


def from_config(
    config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor] | None = None,
    *,
    strict: bool = True,
) -> Prior:
    """Rebuild a prior from :func:`to_config`'s dict (and load its weights, if given).

    Args:
        config: ``{"name": ..., "config": {...}}`` (a JSON string of it works too).
        state_dict: the prior's ``state_dict()`` (keys without the ``prior.`` prefix of a
            VAE's state dict).
        strict: passed to ``load_state_dict``.

    A :class:`~vaekit.priors.VampPrior` still needs ``setup(..., encoder=vae.encode)``.

    Example:
        >>> import torch, vaekit as vk
        >>> mog = vk.priors.MixtureOfGaussians(components=3, latent_shape=(2,))
        >>> same = vk.priors.from_config(vk.priors.to_config(mog), mog.state_dict())
        >>> g = lambda: torch.Generator().manual_seed(0)
        >>> torch.equal(same.sample(4, generator=g()), mog.sample(4, generator=g()))
        True
    """
    if isinstance(config, str):
        config = json.loads(config)
    if not isinstance(config, Mapping) or not (
        {"name", "config"} <= set(config) <= {"name", "config", "fit"}
    ):
        raise ValueError(
            "a prior config must be a dict {'name': ..., 'config': {...}} (and 'fit': {...} "
            f"for a fitted prior) as written by vk.priors.to_config, got {config!r}"
        )
    kwargs = config["config"]
    if not isinstance(kwargs, Mapping):
        raise ValueError(f"config['config'] must be a dict of keyword arguments, got {kwargs!r}")
    prior = build(config["name"], **kwargs)
    if state_dict is not None:
        prior.load_state_dict(dict(state_dict), strict=strict)
    if "fit" in config:
        if not isinstance(prior, ExPostPrior):
            raise ValueError(f"{config['name']!r} is not fitted ex post, yet the config has 'fit'")
        prior.load_fit_state(dict(config["fit"]))
    return prior
