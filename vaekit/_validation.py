"""Input checks shared by every public entry point.

Every user-facing error is a ``ValueError`` or ``TypeError`` that names what was expected and
what came. Checks that need to read tensor *values* (ranges, finiteness) are skipped while
``torch.compile`` traces, because a data-dependent branch would break the graph; shape and
dtype checks are static and always run.
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

__all__ = [
    "REDUCTIONS",
    "DTypeError",
    "check_broadcasts",
    "check_choice",
    "check_finite",
    "check_float_tensor",
    "check_gaussian_window",
    "check_image",
    "check_int",
    "check_number",
    "check_positive",
    "check_range",
    "check_reduction",
    "check_same_shape",
    "is_compiling",
    "is_number",
    "old_keyword_names",
    "rename_keywords",
]

REDUCTIONS = ("none", "mean", "sum", "batchmean")
_F = TypeVar("_F", bound=Callable[..., Any])


class DTypeError(TypeError, ValueError):
    """A tensor of the wrong dtype. A ``TypeError`` (the Python convention) that is also a
    ``ValueError``, so ``except ValueError`` around a loss or model call catches every bad-input
    error vaekit raises."""


def is_compiling() -> bool:
    """True while ``torch.compile``/dynamo traces the caller (value checks are skipped)."""
    return torch.compiler.is_compiling()


def check_float_tensor(x: object, name: str = "input") -> torch.Tensor:
    """Require a floating-point tensor; raise :class:`DTypeError` otherwise."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise DTypeError(
            f"{name} must be a floating-point tensor (e.g. float32 images in [0, 1]), got dtype "
            f"{x.dtype}; convert with x.float() / 255 for uint8 images"
        )
    return x


def check_image(
    x: object,
    name: str = "input",
    *,
    channels: int | None = None,
    size: tuple[int, int] | None = None,
    min_size: int | None = None,
) -> torch.Tensor:
    """Require a float ``(B, C, H, W)`` tensor with optional channel count and spatial size."""
    x = check_float_tensor(x, name)
    if x.ndim != 4:
        raise ValueError(
            f"{name} must be a 4-D image batch (B, C, H, W), got {x.ndim}-D tensor of shape "
            f"{tuple(x.shape)}" + ("; add a batch dimension with x[None]" if x.ndim == 3 else "")
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{name} must have {channels} channel(s), got {x.shape[1]} (shape {tuple(x.shape)})"
        )
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        raise ValueError(
            f"{name} must have spatial size {tuple(size)}, got {tuple(x.shape[-2:])} "
            f"(shape {tuple(x.shape)})"
        )
    if min_size is not None and min(x.shape[-2:]) < min_size:
        raise ValueError(
            f"{name} must be at least {min_size}x{min_size} pixels, got {tuple(x.shape[-2:])}"
        )
    return x


def _shown(value: object) -> str:
    """``type (repr)`` of a bad argument for an error message, the repr cut to 60 characters."""
    text = repr(value)
    return f"{type(value).__name__} ({text if len(text) <= 60 else text[:57] + '...'})"


def check_int(
    value: object, name: str, minimum: int | None = 1, *, maximum: int | None = None
) -> int:
    """Require an integer in ``[minimum, maximum]``; return it as a plain ``int``.

    The rule for every count, size and index vaekit takes: the wrong *type* is a ``TypeError``
    (floats such as ``2.0``, strings, and bools: ``True`` is not a count), the right type with
    a bad *value* a ``ValueError``; both name the argument, what it must be and what came.
    Integer-like values (numpy integers, one-element integer tensors) are accepted.

    Args:
        value: the argument. name: its name in the message.
        minimum, maximum: inclusive bounds (``None``: unbounded on that side).

    Example:
        >>> from vaekit._validation import check_int
        >>> check_int(3, "channels")
        3
        >>> check_int(2.0, "channels")
        Traceback (most recent call last):
        TypeError: channels must be an int, got float (2.0)
        >>> check_int(0, "channels")
        Traceback (most recent call last):
        ValueError: channels must be >= 1, got 0
    """
    try:
        if isinstance(value, bool):
            raise TypeError
        out = operator.index(value)  # int, numpy integer, integer one-element tensor
    except TypeError:
        raise TypeError(f"{name} must be an int, got {_shown(value)}") from None
    _check_bounds(out, name, out, None, minimum, maximum, None)
    return out


def is_number(value: object) -> bool:
    """True for a real number: int, float, numpy scalar or one-element real tensor; not bool."""
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and not (value.dtype.is_complex or value.dtype == torch.bool)
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(
    value: object,
    name: str,
    *,
    above: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
    finite: bool = True,
) -> float:
    """Require a real number within the given bounds; return it as a ``float``.

    Same rule as :func:`check_int`: not a number (a string, a bool, ``None``, a tensor of
    several values) is a ``TypeError``; a number that is NaN, infinite (unless
    ``finite=False``) or out of bounds is a ``ValueError``. Ints, floats, numpy scalars and
    one-element real tensors are numbers.

    Args:
        value: the argument. name: its name in the message.
        above, at_least: exclusive / inclusive lower bound. at_most, below: inclusive /
            exclusive upper bound.
        finite: refuse ``inf`` and ``-inf`` (NaN is always refused).

    Example:
        >>> from vaekit._validation import check_number
        >>> check_number(1, "sigma", above=0)
        1.0
        >>> check_number("0.5", "sigma", above=0)
        Traceback (most recent call last):
        TypeError: sigma must be a number, got str ('0.5')
        >>> check_number(0.0, "sigma", above=0)
        Traceback (most recent call last):
        ValueError: sigma must be > 0, got 0.0
    """
    if not is_number(value):
        raise TypeError(f"{name} must be a number, got {_shown(value)}")
    out = float(value)  # type: ignore[arg-type]
    shown = value if isinstance(value, (int, float)) else out
    if math.isnan(out) or (finite and math.isinf(out)):
        raise ValueError(f"{name} must be finite, got {shown!r}")
    _check_bounds(out, name, shown, above, at_least, at_most, below)
    return out


_BOUNDS = ((">", operator.gt), (">=", operator.ge), ("<=", operator.le), ("<", operator.lt))


def _check_bounds(value: float, name: str, shown: object, *limits: float | None) -> None:
    """``limits``: above, at_least, at_most, below (``None``: no such bound)."""
    bounds = [(op, limit, test) for (op, test), limit in zip(_BOUNDS, limits) if limit is not None]
    if not all(test(value, limit) for _, limit, test in bounds):
        wanted = " and ".join(f"{op} {limit}" for op, limit, _ in bounds)
        raise ValueError(f"{name} must be {wanted}, got {shown!r}")


def check_gaussian_window(window_size: object, window_sigma: object) -> None:
    """A Gaussian window (SSIM's) needs an odd int ``window_size >= 1`` and ``window_sigma > 0``."""
    if check_int(window_size, "window_size") % 2 == 0:
        raise ValueError(f"window_size must be odd, got {window_size}")
    check_number(window_sigma, "window_sigma", above=0)


def check_broadcasts(
    x: object, shape: Sequence[int], name: str, whose: str = "the expected"
) -> torch.Tensor:
    """Require a float tensor that broadcasts to ``shape`` (without growing it).

    ``whose`` names the shape in the message (``"the input's"``).
    """
    x = check_float_tensor(x, name)
    try:
        ok = torch.broadcast_shapes(x.shape, shape) == tuple(shape)
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name} must have {whose} shape {tuple(shape)} or broadcast to it "
            f"(e.g. (1, 1, 1, 1)), got {tuple(x.shape)}"
        )
    return x


def check_same_shape(
    x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("input", "target")
) -> None:
    """Require two tensors of identical shape (no broadcasting: it hides bugs)."""
    if x.shape != y.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )


def check_range(
    x: torch.Tensor, low: float, high: float, name: str = "input", hint: str = ""
) -> None:
    """Require ``low <= x <= high`` (skipped under ``torch.compile``).

    NaN/Inf values get the :func:`check_finite` message, not the range one: a NaN comes from
    the model, and the range ``hint`` (about scaling the images) would point the wrong way.
    """
    if is_compiling() or x.numel() == 0:
        return
    lo, hi = torch.aminmax(x.detach())
    lo, hi = float(lo), float(hi)
    if not (low <= lo and hi <= high):  # also catches NaN, which fails every comparison
        if not (math.isfinite(lo) and math.isfinite(hi)):
            check_finite(x, name)
        raise ValueError(
            f"{name} must lie in [{low:g}, {high:g}], got values in [{lo:.4g}, {hi:.4g}]"
            + (f"; {hint}" if hint else "")
        )


def check_finite(x: torch.Tensor, name: str = "input") -> None:
    """Require finite values (skipped under ``torch.compile``)."""
    if is_compiling():
        return
    if not bool(torch.isfinite(x.detach()).all()):
        bad = int((~torch.isfinite(x.detach())).sum())
        raise ValueError(f"{name} must be finite, got {bad} NaN/Inf value(s) of {x.numel()}")


def check_choice(value: object, choices: Sequence[object], name: str) -> None:
    """Require ``value in choices``; the error lists the valid choices."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def check_reduction(reduction: str, allowed: Sequence[str] = REDUCTIONS) -> str:
    """Validate a ``reduction`` argument against the shared vocabulary."""
    if reduction not in allowed:
        raise ValueError(f"reduction must be one of {list(allowed)}, got {reduction!r}")
    return reduction


def check_positive(value: float, name: str, *, strict: bool = True) -> None:
    """Require a number ``> 0`` (``>= 0`` when ``strict=False``); ``inf`` passes.

    :func:`check_number` with ``above=0`` (or ``at_least=0``) and ``finite=False``.
    """
    check_number(value, name, above=0 if strict else None, at_least=None if strict else 0,
                 finite=False)  # fmt: skip


def rename_keywords(
    kwargs: dict[str, Any], renamed: dict[str, str | tuple[str, ...]], owner: str
) -> dict[str, Any]:
    """``kwargs`` with old keyword names replaced by new ones (see :func:`old_keyword_names`).

    ``owner`` names the function in the messages (``"ssim_loss()"``).
    """
    kwargs = dict(kwargs)
    for old, new in renamed.items():
        if old not in kwargs:
            continue
        names = (new,) if isinstance(new, str) else new
        wanted = " and ".join(f"{n}=" for n in names)
        given = [n for n in names if n in kwargs]
        if given:
            raise TypeError(
                f"{owner} got {old}= (the old name of {wanted}) and {given[0]}=; pass {wanted} only"
            )
        value = kwargs.pop(old)
        if len(names) == 1:
            kwargs[names[0]] = value
            continue
        try:
            values = tuple(value)
        except TypeError:
            values = ()
        if len(values) != len(names):
            raise ValueError(
                f"{old} must be a sequence of {len(names)} values ({wanted}), got {value!r}"
            )
        kwargs.update(zip(names, values))
    return kwargs


def old_keyword_names(**renamed: str | tuple[str, ...]) -> Callable[[_F], _F]:
    """Decorator: keep renamed keyword arguments working under their old names.

    ``renamed`` maps each old name to its new name, or to a tuple of new names that the old
    value is unpacked into (``K=(0.01, 0.03)`` -> ``k1=0.01, k2=0.03``). Passing an old name
    together with its new name is a ``TypeError``, like any argument given twice. The mapping
    is kept as the wrapper's ``renamed_keywords`` attribute.

    Example:
        >>> from vaekit._validation import old_keyword_names
        >>> @old_keyword_names(win_size="window_size")
        ... def blur(*, window_size=11):
        ...     return window_size
        >>> blur(win_size=7)
        7
        >>> blur(win_size=7, window_size=5)
        Traceback (most recent call last):
        TypeError: blur() got win_size= (the old name of window_size=) and window_size=; pass window_size= only
    """

    def decorator(fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **rename_keywords(kwargs, renamed, f"{fn.__qualname__}()"))

        wrapper.renamed_keywords = dict(renamed)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator
