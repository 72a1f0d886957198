"""Input checks shared by every public entry point.

Every user-facing error is a ``ValueError`` or ``TypeError`` that names what was expected and
what came. Checks that need to read tensor *values* (ranges, finiteness) are skipped while
``torch.compile`` traces, because a data-dependent branch would break the graph; shape and
dtype checks are static and always run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "REDUCTIONS",
    "DTypeError",
    "check_choice",
    "check_finite",
    "check_float_tensor",
    "check_image",
    "check_int",
    "check_positive",
    "check_range",
    "check_reduction",
    "check_same_shape",
    "is_compiling",
]

REDUCTIONS = ("none", "mean", "sum", "batchmean")


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


def check_int(value: object, name: str, minimum: int = 1) -> int:
    """Require an int ``>= minimum`` (bools rejected): channel counts, epochs and the like."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


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
    """Require a positive (or non-negative when ``strict=False``) number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if (strict and not value > 0) or (not strict and not value >= 0):
        raise ValueError(f"{name} must be {'>' if strict else '>='} 0, got {value!r}")
