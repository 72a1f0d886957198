"""Shared plumbing for the loss modules: input checks, reductions and the module base.

Every loss takes ``(input, target)`` = (reconstruction, data), two ``(B, C, H, W)`` float
tensors of the same shape, and reduces with the shared vocabulary ``"none" | "mean" | "sum" |
"batchmean"`` (``batchmean``: sum over the non-batch dims, mean over the batch).
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch
from torch import nn

from .._maths import float32_island
from .._maths import upcast_half as _f32
from .._validation import (
    check_finite,
    check_image,
    check_range,
    check_reduction,
    check_same_shape,
    rename_keywords,
)
from ..distributions import _reduce_per_sample as reduce_loss

__all__ = ["FunctionalLoss", "float32_island", "prepare", "reduce_loss"]


def prepare(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float | None = None,
    check_input_range: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a (reconstruction, data) pair and upcast fp16/bf16 to float32.

    With ``data_range`` set, the values must lie in ``[0, data_range]`` (only ``target`` when
    ``check_input_range`` is False, e.g. logits); NaN fails the range check. Without a range,
    both must be finite: a NaN reconstruction or target raises here instead of turning the
    loss (and every weight after the next step) into NaN. Value checks are skipped under
    ``torch.compile``.
    """
    check_image(input, "input")
    check_image(target, "target")
    check_same_shape(input, target)
    if data_range is not None:
        hint = f"images must be scaled to [0, {data_range:g}] (data_range={data_range:g})"
        if check_input_range:
            check_range(input, 0.0, data_range, "input", hint)
        check_range(target, 0.0, data_range, "target", hint)
    if data_range is None or not check_input_range:
        check_finite(input, "input")
    if data_range is None:
        check_finite(target, "target")
    return _f32(input), _f32(target)


class FunctionalLoss(nn.Module):
    """Module twin of a functional loss: stores keyword hyperparameters, ``forward`` calls it.

    A subclass sets ``function``; its constructor then takes exactly the function's
    keyword-only arguments, with the same defaults and old names (so the two cannot drift
    apart), and ``Module(**kw)(x, y) == function(x, y, **kw)``. Override
    :meth:`check_hparams` to check (or normalise) them once, when the module is built.
    """

    function: ClassVar[Any]
    accepts_logvar: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "function" in cls.__dict__:  # what help() and editors show for the constructor
            cls.__signature__ = inspect.Signature(_keyword_parameters(cls.function))

    def __init__(self, **hparams: Any) -> None:
        super().__init__()
        fn, name = type(self).function, f"{type(self).__name__}()"
        hparams = rename_keywords(hparams, getattr(fn, "renamed_keywords", {}), name)
        params = {p.name: p.default for p in _keyword_parameters(fn)}
        unknown = sorted(set(hparams) - set(params))
        if unknown:
            raise TypeError(f"{name} got unknown argument(s) {unknown}; it takes {list(params)}")
        hparams = self.check_hparams({**params, **hparams})
        check_reduction(hparams.get("reduction", "mean"))
        self._hparam_names = tuple(hparams)
        for key, value in hparams.items():
            setattr(self, key, value)

    def check_hparams(self, hparams: dict[str, Any]) -> dict[str, Any]:
        """Check the keyword arguments when the module is built; return them (normalised)."""
        return hparams

    @property
    def hparams(self) -> dict[str, Any]:
        """The keyword arguments passed to the functional form."""
        return {k: getattr(self, k) for k in self._hparam_names}

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return type(self).function(input, target, **self.hparams)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())


def _keyword_parameters(fn: Any) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY]
