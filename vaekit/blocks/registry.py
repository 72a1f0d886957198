"""The block registry: body blocks by name, so a config can name a block you wrote yourself.

A *body block* is what fills one level of an encoder or decoder: it maps
``(B, in_ch, H, W) -> (B, out_ch, H, W)`` at one resolution (resampling between levels is
the builder's ``Downsample``/``Upsample``). Every registered block is built the same way::

    block = factory(in_ch, out_ch, *, norm=..., act=..., **options)

``norm`` is a norm name, class or factory and ``act`` an activation name, class or
zero-argument factory (resolve them with :func:`~vaekit.blocks.get_norm_layer` /
:func:`~vaekit.blocks.get_act_layer`); ``options`` are the block's own keyword arguments
(``VAEConfig.block_kwargs``). This is the timm ``create_*``-over-a-registry pattern, and like
diffusers' ``down_block_types`` a config may name one block per level.

The builder does not guess what a block is from its name; it reads two class attributes
(:func:`traits`), with these defaults for a block that does not set them:

- ``residual`` (default ``True``): the block carries its own skip and nonlinearity, so the
  resampling convs between levels stay linear (pre-activation style). ``False`` marks a plain
  layer such as ``ConvNormAct``: the ``Downsample``/``Upsample`` next to it then get the
  config's norm and activation too, as in a classic conv VAE.
- ``changes_channels`` (default ``True``): the block accepts ``in_ch != out_ch``. A block that
  keeps its width sets ``False`` and :func:`create` refuses a width change before calling it.

Built-in names: ``conv`` (:class:`~vaekit.blocks.ConvNormAct`, 3×3), ``resblock``
(:class:`~vaekit.blocks.ResBlock`), ``bottleneck`` (:class:`~vaekit.blocks.ResidualBottleneck`)
and ``preact`` (:class:`~vaekit.blocks.PreActResBlock`). ``SelfAttention`` and
``SqueezeExcitation`` are not body blocks (they keep the width and take no activation): the
config places attention with ``attention_at`` and SE is an option of the bottleneck.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

from .._registry import Registry
from .._validation import check_int
from .factory import ActSpec, NormSpec

__all__ = [
    "BlockTraits",
    "available",
    "block_options",
    "create",
    "get",
    "name_of",
    "register",
    "traits",
    "unregister",
]

F = TypeVar("F", bound=Callable[..., nn.Module])

REGISTRY = Registry("block", "vaekit.blocks", base=nn.Module)

# what the builder assumes for a block that does not say (see the module docstring)
DEFAULT_RESIDUAL = True
DEFAULT_CHANGES_CHANNELS = True
# arguments every block gets from the builder, never from its options
_LEADING = ("in_ch", "out_ch", "norm", "act")


@dataclass(frozen=True)
class BlockTraits:
    """What the builder needs to know about a block (read from its class attributes).

    Attributes:
        residual: the block has its own skip and nonlinearity; resampling next to it stays
            linear. ``False``: resampling gets the config's norm and activation.
        changes_channels: the block accepts ``in_ch != out_ch``.
    """

    residual: bool = DEFAULT_RESIDUAL
    changes_channels: bool = DEFAULT_CHANGES_CHANNELS


def _traits_of(factory: Callable[..., Any]) -> BlockTraits:
    values = {}
    for attr, default in (
        ("residual", DEFAULT_RESIDUAL),
        ("changes_channels", DEFAULT_CHANGES_CHANNELS),
    ):
        value = getattr(factory, attr, default)
        if not isinstance(value, bool):
            raise TypeError(
                f"block attribute {attr} must be a bool, got {type(value).__name__} ({value!r}) "
                f"on {getattr(factory, '__qualname__', factory)!r}"
            )
        values[attr] = value
    return BlockTraits(**values)


def _signature(factory: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins and C callables have none
        return None


def _option_names(factory: Callable[..., Any]) -> list[str] | None:
    """Keyword options the factory takes besides the leading arguments (``None``: any)."""
    sig = _signature(factory)
    if sig is None:
        return None
    params = list(sig.parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    leading = {p.name for p in positional[:2]} | {"norm", "act"}
    return [
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in leading
    ]


def _check_signature(name: str, factory: Callable[..., Any]) -> None:
    """A block must take two positional channel counts and ``norm=``/``act=`` keywords."""
    sig = _signature(factory)
    if sig is None:
        return
    params = list(sig.parameters.values())
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var_pos = any(p.kind is p.VAR_POSITIONAL for p in params)
    missing = [kw for kw in ("norm", "act") if kw not in names and not var_kw]
    if missing or (len(positional) < 2 and not var_pos):
        raise TypeError(
            f"block {name!r}: {getattr(factory, '__qualname__', factory)}{sig} must take "
            f"(in_ch, out_ch, *, norm, act, **options)"
            + (f"; it has no {' or '.join(missing)} argument" if missing else "")
            + " (a block may ignore norm and act, but it must accept them)"
        )


def register(name: str, *, aliases: Iterable[str] = ()) -> Callable[[F], F]:
    """Decorator that registers a body block class (or a factory returning an ``nn.Module``).

    The block is built as ``factory(in_ch, out_ch, *, norm=..., act=..., **options)`` and
    should keep the spatial size. Set the class attributes ``residual`` and
    ``changes_channels`` when the defaults (both ``True``, see :class:`BlockTraits`) do not fit.

    Args:
        name: the registry name that configs use; a name (or alias) that is already taken,
            also in another case, is a ``ValueError``.
        aliases: extra names that :func:`create` also accepts.

    Example:
        >>> import torch, torch.nn as nn, vaekit as vk
        >>> @vk.blocks.register("double_conv")
        ... class DoubleConv(nn.Sequential):
        ...     residual = False  # a plain layer: resampling gets norm + act
        ...     def __init__(self, in_ch, out_ch, *, norm="group", act="silu"):
        ...         super().__init__(vk.blocks.ConvNormAct(in_ch, out_ch, norm=norm, act=act),
        ...                          vk.blocks.ConvNormAct(out_ch, out_ch, norm=norm, act=act))
        >>> vk.blocks.create("double_conv", 4, 8, norm="batch", act="relu")(
        ...     torch.rand(2, 4, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
        >>> vk.blocks.unregister("double_conv")
    """
    add = REGISTRY.register(name, aliases=aliases)

    def decorator(factory: F) -> F:
        if callable(factory):
            _traits_of(factory)
            _check_signature(name, factory)
        return add(factory)

    return decorator


def unregister(name: str) -> None:
    """Remove a registered block name (any case) with its aliases (``ValueError`` if unknown)."""
    REGISTRY.unregister(name)


def available(*, aliases: bool = False) -> list[str]:
    """Sorted registered block names (canonical only unless ``aliases=True``).

    Example:
        >>> import vaekit as vk
        >>> {"bottleneck", "conv", "preact", "resblock"} <= set(vk.blocks.available())
        True
    """
    return REGISTRY.available(aliases=aliases)


def get(name: str) -> Callable[..., nn.Module]:
    """The class/factory registered under ``name`` (or an alias; any case).

    Example:
        >>> import vaekit as vk
        >>> vk.blocks.get("ResBlock") is vk.blocks.ResBlock
        True
    """
    return REGISTRY.get(name)


def name_of(module: nn.Module) -> str | None:
    """The registry name whose class ``module`` is exactly an instance of, or ``None``.

    Example:
        >>> import vaekit as vk
        >>> vk.blocks.name_of(vk.blocks.ResBlock(4, 4))
        'resblock'
    """
    return REGISTRY.name_of(module)


def traits(name: str) -> BlockTraits:
    """How the builder treats the block registered under ``name`` (see :class:`BlockTraits`).

    Example:
        >>> import vaekit as vk
        >>> vk.blocks.traits("conv")
        BlockTraits(residual=False, changes_channels=True)
        >>> vk.blocks.traits("bottleneck").changes_channels
        False
    """
    return _traits_of(REGISTRY.get(name))


def block_options(name: str, options: Mapping[str, Any], what: str = "options") -> dict[str, Any]:
    """Check a block's own keyword options against what its factory takes; return a copy.

    An option the block does not take, or one of the leading arguments (``in_ch``, ``out_ch``,
    ``norm``, ``act``, which the caller passes), is a ``ValueError`` naming the block, the
    option and the options it does take. Factories with ``**kwargs`` accept anything.

    Args:
        name: a registered block name.
        options: the keyword options (``VAEConfig.block_kwargs``).
        what: how the options are called in messages.

    Example:
        >>> import vaekit as vk
        >>> vk.blocks.block_options("resblock", {"dropout": 0.1})
        {'dropout': 0.1}
        >>> vk.blocks.block_options("resblock", {"ratio": 2})
        Traceback (most recent call last):
        ...
        ValueError: block 'resblock' (ResBlock) has no option 'ratio' in options; it takes [...]
    """
    if not isinstance(options, Mapping):
        raise TypeError(f"{what} must be a dict, got {type(options).__name__}")
    factory = REGISTRY.get(name)
    label = f"block {REGISTRY.canonical(name)!r} ({getattr(factory, '__qualname__', factory)})"
    for key in options:
        if not isinstance(key, str):
            raise TypeError(f"{what} keys must be str, got {key!r}")
        if key in _LEADING:
            raise ValueError(
                f"{what} must not set {key!r}: in_ch and out_ch come from the widths, norm and "
                f"act from the config's norm/act fields"
            )
    accepted = _option_names(factory)
    if accepted is not None:
        for key in options:
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"{label} has no option {key!r} in {what}; it takes {accepted}{hint}"
                )
    return dict(options)


def takes_option(name: str, option: str) -> bool:
    """Whether the block registered under ``name`` accepts the keyword ``option``."""
    accepted = _option_names(REGISTRY.get(name))
    return accepted is None or option in accepted


def create(
    name: str,
    in_ch: int,
    out_ch: int,
    *,
    norm: NormSpec = "group",
    act: ActSpec = "silu",
    **options: Any,
) -> nn.Module:
    """Build the block registered under ``name`` (any case): ``factory(in_ch, out_ch, ...)``.

    Args:
        name: a registered block name (see :func:`available`); an unknown name is a
            ``ValueError`` listing the known ones and close matches.
        in_ch, out_ch: input and output channels; a block whose ``changes_channels`` is
            ``False`` refuses ``in_ch != out_ch`` (``ValueError``).
        norm: norm name, class or factory, passed on.
        act: activation name, class or zero-argument factory, passed on.
        **options: the block's own keyword arguments; one it does not take is a
            ``ValueError`` that lists the ones it does.

    Shape:
        The block maps ``(B, in_ch, H, W)`` to ``(B, out_ch, H, W)``.

    Example:
        >>> import torch, vaekit as vk
        >>> block = vk.blocks.create("resblock", 64, 128, norm="group", act="silu", dropout=0.1)
        >>> block(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 128, 8, 8])
        >>> vk.blocks.create("resblok", 64, 128)
        Traceback (most recent call last):
        ...
        ValueError: unknown block 'resblok': expected one of [...]; did you mean 'resblock'?
    """
    factory = REGISTRY.get(name)
    in_ch = check_int(in_ch, "in_ch")
    out_ch = check_int(out_ch, "out_ch")
    if in_ch != out_ch and not _traits_of(factory).changes_channels:
        raise ValueError(
            f"block {REGISTRY.canonical(name)!r} keeps its width (changes_channels=False): "
            f"in_ch must equal out_ch, got {in_ch} and {out_ch}"
        )
    options = block_options(name, options)
    return REGISTRY.build(name, in_ch, out_ch, norm=norm, act=act, **options)
