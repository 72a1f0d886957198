"""Norm and activation factories: one place that turns ``norm=``/``act=`` arguments into layers.

Every block takes ``norm`` and ``act`` as a *name*, an ``nn.Module`` *class* or a *factory
callable*, and resolves it exactly once in ``__init__`` through :func:`get_norm_layer` /
:func:`get_act_layer` (the timm ``create_norm``/``create_act`` habit), so ``forward`` never
switches on strings and ``torch.compile`` sees plain modules.

Norm vocabulary (:data:`NORMS`):

- ``"group"``: ``nn.GroupNorm`` (Wu & He, 2018) with :func:`group_count` groups, so any channel
  count works (1, 3, 6, 100, ...), not only multiples of 32.
- ``"batch"``: ``nn.BatchNorm2d``.
- ``"layer"``: :class:`LayerNorm2d`, a *channel* LayerNorm for NCHW tensors that normalises over C
  at each pixel (the ConvNeXt "channels_first" LayerNorm, Liu et al. 2022). A plain
  ``nn.LayerNorm(C)`` on an NCHW tensor would normalise over the width axis, which is always a
  bug, so passing the ``nn.LayerNorm`` class also gives :class:`LayerNorm2d`.
- ``"none"`` (or ``None``): ``nn.Identity``.

Activation vocabulary (:data:`ACTS`): ``"silu"``, ``"relu"``, ``"leaky_relu"`` (PyTorch's default
slope 0.01 unless ``negative_slope`` is given), ``"gelu"``, ``"tanh"``, ``"none"``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn as nn

from .._validation import check_int

__all__ = [
    "ACTS",
    "NORMS",
    "ActSpec",
    "LayerNorm2d",
    "NormSpec",
    "get_act_layer",
    "get_norm_layer",
    "group_count",
    "make_act",
    "make_norm",
]

NORMS: tuple[str, ...] = ("group", "batch", "layer", "none")
ACTS: tuple[str, ...] = ("silu", "relu", "leaky_relu", "gelu", "tanh", "none")

#: What a ``norm=`` argument may be: a name from :data:`NORMS`, ``None``, an ``nn.Module`` class
#: or a callable ``(channels) -> nn.Module``.
NormSpec = str | type[nn.Module] | Callable[[int], nn.Module] | None
#: What an ``act=`` argument may be: a name from :data:`ACTS`, ``None``, an ``nn.Module`` class
#: or a zero-argument callable returning a module (e.g. ``functools.partial(nn.LeakyReLU, 0.2)``).
ActSpec = str | type[nn.Module] | Callable[[], nn.Module] | None

_ACT_CLASSES: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "none": nn.Identity,
}


def group_count(channels: int, max_groups: int = 32, *, min_group_channels: int = 4) -> int:
    """Number of GroupNorm groups for ``channels``: adapts to any channel count.

    Returns the largest divisor ``g`` of ``channels`` with ``g <= max_groups`` that leaves at least
    ``min_group_channels`` channels per group (statistics over 1-2 channels are noisy and, with
    one channel per group, GroupNorm degenerates to InstanceNorm). Below ``min_group_channels``
    channels that is impossible, and one group (all channels together) is returned.

    Args:
        channels: number of channels to normalise (>= 1).
        max_groups: upper bound on the number of groups (>= 1).
        min_group_channels: preferred minimum number of channels per group (>= 1).

    Example:
        >>> import vaekit as vk
        >>> [vk.blocks.group_count(c) for c in (1, 3, 6, 8, 12, 64, 100, 256)]
        [1, 1, 1, 2, 3, 16, 25, 32]
    """
    check_int(channels, "channels")
    check_int(max_groups, "max_groups")
    check_int(min_group_channels, "min_group_channels")
    per_group = min(min_group_channels, channels)
    for groups in range(min(max_groups, channels), 0, -1):
        if channels % groups == 0 and channels // groups >= per_group:
            return groups
    return 1  # unreachable: groups=1 always qualifies


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel axis of an NCHW tensor (ConvNeXt's channels-first LayerNorm).

    Each pixel's C-vector is normalised to zero mean and unit variance, then scaled and shifted
    per channel. The statistics are reductions over ``dim=1`` and everything else is elementwise,
    so a ``channels_last`` input stays ``channels_last`` (and its reduction is over contiguous
    memory) without the permute/copy round trip of ``nn.LayerNorm`` on a permuted view. Half
    precision inputs (bf16/fp16 under autocast) are normalised in float32 and cast back.

    With ``channels == 1`` every pixel normalises to 0: use ``"group"`` for single-channel maps.

    Args:
        num_channels: C.
        eps: added to the variance (ConvNeXt's 1e-6).
        elementwise_affine: learn a per-channel scale and shift.

    Shape:
        - Input: ``(B, C, H, W)``. Output: same shape, dtype and memory format.

    Example:
        >>> import torch, vaekit as vk
        >>> norm = vk.blocks.LayerNorm2d(8)
        >>> y = norm(torch.randn(2, 8, 4, 4) * 5 + 3)
        >>> bool(y.mean(1).abs().max() < 1e-5)
        True
    """

    def __init__(self, num_channels: int, eps: float = 1e-6, elementwise_affine: bool = True):
        super().__init__(num_channels, eps=eps, elementwise_affine=elementwise_affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # float16/bfloat16 are upcast; float32/float64 keep their precision (gradcheck runs in 64).
        xf = x if x.dtype in (torch.float32, torch.float64) else x.float()
        mean = xf.mean(dim=1, keepdim=True)
        var = (xf - mean).square().mean(dim=1, keepdim=True)
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight.to(y.dtype)[:, None, None] + self.bias.to(y.dtype)[:, None, None]
        return y.to(x.dtype)


def _group_norm(cls: type[nn.Module], channels: int) -> nn.Module:
    return cls(group_count(channels), channels)


def _checked(factory: Callable[..., object], kind: str) -> Callable[..., nn.Module]:
    """Wrap a user factory so a non-module result fails at construction with a clear message."""

    @functools.wraps(factory)
    def make(*args: object) -> nn.Module:
        module = factory(*args)
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"{kind} factory {factory!r} must return an nn.Module, got {type(module).__name__}"
            )
        return module

    return make


def _norm_is_none(norm: NormSpec) -> bool:
    """True when ``norm`` means "no normalisation" (decides whether convs carry a bias)."""
    if norm is None:
        return True
    if isinstance(norm, str):
        return norm.lower() == "none"
    return norm is nn.Identity


def get_norm_layer(norm: NormSpec) -> Callable[[int], nn.Module]:
    """Resolve a ``norm=`` argument into a factory ``(channels) -> nn.Module``.

    Args:
        norm: a name from :data:`NORMS` (case-insensitive) or ``None`` (= ``"none"``); an
            ``nn.Module`` class (``nn.GroupNorm`` and subclasses are called as
            ``cls(group_count(C), C)``, ``nn.LayerNorm`` becomes :class:`LayerNorm2d`, any other
            class as ``cls(C)``); or any callable ``(channels) -> nn.Module``.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
        TypeError: anything else, including an ``nn.Module`` *instance* (it would be shared
            between layers: pass the class or a ``functools.partial``).

    Example:
        >>> import vaekit as vk
        >>> norm = vk.blocks.get_norm_layer("group")(64)  # 16 groups of 4 channels
        >>> type(norm).__name__, norm.num_groups, norm.num_channels
        ('GroupNorm', 16, 64)
    """
    if norm is None:
        return nn.Identity
    if isinstance(norm, str):
        key = norm.lower()
        if key == "group":
            return functools.partial(_group_norm, nn.GroupNorm)
        if key == "batch":
            return nn.BatchNorm2d
        if key == "layer":
            return LayerNorm2d
        if key == "none":
            return nn.Identity
        raise ValueError(
            f"unknown norm {norm!r}; valid names are {list(NORMS)} (or pass an nn.Module class "
            "or a callable (channels) -> nn.Module)"
        )
    if isinstance(norm, nn.Module):
        raise TypeError(
            f"norm must be a name, an nn.Module class or a callable (channels) -> nn.Module, got "
            f"the module instance {norm!r}; pass its class (e.g. nn.GroupNorm) or a "
            "functools.partial so every layer gets its own parameters"
        )
    if isinstance(norm, type):
        if not issubclass(norm, nn.Module):
            raise TypeError(f"norm class must be an nn.Module subclass, got {norm.__name__}")
        if issubclass(norm, nn.GroupNorm):
            return functools.partial(_group_norm, norm)
        if norm is nn.LayerNorm:  # nn.LayerNorm(C) on NCHW would normalise over W: always a bug
            return LayerNorm2d
        return norm
    if callable(norm):
        return _checked(norm, "norm")
    raise TypeError(
        f"norm must be one of {list(NORMS)}, None, an nn.Module class or a callable "
        f"(channels) -> nn.Module, got {type(norm).__name__}"
    )


def get_act_layer(act: ActSpec, **kwargs: object) -> Callable[[], nn.Module]:
    """Resolve an ``act=`` argument into a zero-argument factory returning a fresh module.

    Args:
        act: a name from :data:`ACTS` (case-insensitive) or ``None`` (= ``"none"``); an
            ``nn.Module`` class; or a zero-argument callable returning an ``nn.Module``
            (e.g. ``functools.partial(nn.LeakyReLU, 0.2)``).
        **kwargs: passed to the class or callable, e.g. ``negative_slope=0.2`` for
            ``"leaky_relu"`` (PyTorch's default slope 0.01 otherwise). Ignored by ``"none"``.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
        TypeError: wrong type, an ``nn.Module`` instance, or keyword arguments the named
            activation does not take.

    Example:
        >>> import vaekit as vk
        >>> vk.blocks.get_act_layer("leaky_relu", negative_slope=0.2)()
        LeakyReLU(negative_slope=0.2)
    """
    if act is None:
        act = "none"
    if isinstance(act, str):
        key = act.lower()
        if key not in _ACT_CLASSES:
            raise ValueError(
                f"unknown act {act!r}; valid names are {list(ACTS)} (or pass an nn.Module class "
                "or a zero-argument callable returning an nn.Module)"
            )
        cls = _ACT_CLASSES[key]
        if not kwargs or key == "none":
            return cls
        factory = functools.partial(cls, **kwargs)
        try:  # fail here, with the name, rather than deep inside some block's __init__
            factory()
        except TypeError as err:
            raise TypeError(f"act {act!r} does not accept {sorted(kwargs)}: {err}") from None
        return factory
    if isinstance(act, nn.Module):
        raise TypeError(
            f"act must be a name, an nn.Module class or a zero-argument callable, got the module "
            f"instance {act!r}; pass its class or a functools.partial (e.g. "
            "functools.partial(nn.LeakyReLU, 0.2))"
        )
    if isinstance(act, type):
        if not issubclass(act, nn.Module):
            raise TypeError(f"act class must be an nn.Module subclass, got {act.__name__}")
        return functools.partial(act, **kwargs) if kwargs else act
    if callable(act):
        return _checked(functools.partial(act, **kwargs) if kwargs else act, "act")
    raise TypeError(
        f"act must be one of {list(ACTS)}, None, an nn.Module class or a zero-argument callable "
        f"returning an nn.Module, got {type(act).__name__}"
    )


def make_norm(norm: NormSpec, channels: int) -> nn.Module:
    """Build one norm layer for ``channels``: ``get_norm_layer(norm)(channels)``.

    Example:
        >>> import vaekit as vk
        >>> type(vk.blocks.make_norm("batch", 8)).__name__
        'BatchNorm2d'
        >>> type(vk.blocks.make_norm("layer", 8)).__name__
        'LayerNorm2d'
    """
    return get_norm_layer(norm)(channels)


def make_act(act: ActSpec, **kwargs: object) -> nn.Module:
    """Build one activation module: ``get_act_layer(act, **kwargs)()``.

    Example:
        >>> import vaekit as vk
        >>> vk.blocks.make_act("silu")
        SiLU()
    """
    return get_act_layer(act, **kwargs)()
