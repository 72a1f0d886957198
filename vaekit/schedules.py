"""Annealing schedules for β (or any scalar): pure functions of the training step.

A schedule is a small immutable object called as ``sched(step) -> float``. It keeps no state,
so it gives the same value whenever it is asked (resume-safe: after loading a checkpoint at
step 12,000 the value is simply ``sched(12_000)``), and it round-trips through
``to_dict``/:func:`from_dict` so it can live in a JSON config next to the model.

- :class:`Constant`, :class:`Linear` and :class:`Cosine` ramps (KL warm-up, Bowman et al.
  2016; Sønderby et al. 2016).
- :class:`Cyclical`: cyclical annealing (Fu et al. 2019, "Cyclical Annealing Schedule: A
  Simple Approach to Mitigating KL Vanishing"): the training run is split into ``cycles``
  periods; each period ramps from ``start`` to ``end`` during its first ``ratio`` fraction and
  then holds ``end``.
- :class:`Sequence`: phases in order, each seeing its own local step (e.g. 50 epochs of β=0,
  then a 50-epoch ramp to 0.001).

Schedules count optimiser *steps*. Use :func:`epochs_to_steps` / :func:`steps_to_epochs` to
think in epochs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from ._registry import Registry
from ._validation import check_int, check_number, is_number

__all__ = [
    "SHAPES",
    "Constant",
    "Cosine",
    "Cyclical",
    "Linear",
    "Schedule",
    "Sequence",
    "as_schedule",
    "available",
    "epochs_to_steps",
    "from_dict",
    "steps_to_epochs",
]

SHAPES = ("linear", "cosine", "sigmoid")
_SIGMOID_SHARPNESS = 12.0  # logistic ramp: sigma(12 (t - 1/2)), rescaled to hit 0 and 1 exactly
SCHEDULES = Registry("schedule", "vaekit.schedules")  # name -> Schedule subclass


# -- argument checks --------------------------------------------------------------------------
def _as_step(step: object, name: str = "step") -> int:
    try:
        return check_int(step, name, minimum=0)
    except TypeError as err:
        raise TypeError(
            f"{err}; steps count optimiser steps: convert epochs with vk.schedules.epochs_to_steps"
        ) from None


def _ramp(start: float, end: float, t: float) -> float:
    """``start + (end - start) * t`` for ``t`` in [0, 1], exact at both ends, never outside."""
    if t >= 1.0:
        return end
    if t <= 0.0:
        return start
    value = start + (end - start) * t
    return min(max(value, min(start, end)), max(start, end))


def _shape_fn(shape: str) -> Callable[[float], float]:
    if shape == "linear":
        return lambda t: t
    if shape == "cosine":
        return lambda t: 0.5 * (1.0 - math.cos(math.pi * t))
    k = _SIGMOID_SHARPNESS
    lo, hi = 1.0 / (1.0 + math.exp(k / 2)), 1.0 / (1.0 + math.exp(-k / 2))
    return lambda t: (1.0 / (1.0 + math.exp(-k * (t - 0.5))) - lo) / (hi - lo)


# -- base class -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """Base class: subclasses set ``name`` and implement ``value(step)`` for a valid step.

    Subclasses are registered under ``name`` so :func:`from_dict` can rebuild them; a user
    schedule only needs to be a frozen dataclass with JSON-friendly fields.

    Example:
        >>> import vaekit as vk
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class Halving(vk.schedules.Schedule):
        ...     name = "halving"
        ...     every: int = 10
        ...     def value(self, step):
        ...         return 0.5 ** (step // self.every)
        >>> Halving(every=2)(5)
        0.25
        >>> vk.schedules.from_dict(Halving(every=2).to_dict())
        Halving(every=2)
    """

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name:
            if name in SCHEDULES:
                old = SCHEDULES.get(name)
                if (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
                    # another class already owns the name (a re-run notebook cell that
                    # redefines the same class replaces it instead)
                    SCHEDULES.register(name)  # raises the registry's "already registered"
                SCHEDULES.unregister(name)
            SCHEDULES.register(name)(cls)

    def value(self, step: int) -> float:
        raise NotImplementedError

    def __call__(self, step: int) -> float:
        """The value at optimiser step ``step`` (an int >= 0)."""
        return float(self.value(_as_step(step)))

    def bounds(self) -> tuple[float, float] | None:
        """A range ``(low, high)`` holding the value at every step, or ``None`` if unknown.

        Users of a schedule check it once, when they are built, instead of failing at the
        step that first reaches a bad value (``VAELoss`` refuses a β schedule that goes
        below 0). A user schedule may override it; the default ``None`` means "check every
        step".

        Example:
            >>> import vaekit as vk
            >>> vk.schedules.Linear(1e-3, -1e-3, steps=10).bounds()
            (-0.001, 0.001)
        """
        return None

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., **parameters}``; JSON-serialisable; inverse of :func:`from_dict`."""
        params = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"name": self.name, **params}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schedule:
        """Rebuild a schedule from :meth:`to_dict` output (same as :func:`from_dict`)."""
        return from_dict(d)


# -- schedules --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Constant(Schedule):
    """The same value at every step.

    Example:
        >>> import vaekit as vk
        >>> vk.schedules.Constant(0.5)(10_000)
        0.5
    """

    name = "constant"
    v: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "v", check_number(self.v, "v"))

    def value(self, step: int) -> float:
        return self.v

    def bounds(self) -> tuple[float, float]:
        return (self.v, self.v)


@dataclass(frozen=True)
class _Ramp(Schedule):
    start: float = 0.0
    end: float = 1.0
    steps: int = 1
    delay: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", check_number(self.start, "start"))
        object.__setattr__(self, "end", check_number(self.end, "end"))
        object.__setattr__(self, "steps", check_int(self.steps, "steps", minimum=1))
        object.__setattr__(self, "delay", check_int(self.delay, "delay", minimum=0))

    def _progress(self, step: int) -> float:
        return min(max(step - self.delay, 0) / self.steps, 1.0)

    def bounds(self) -> tuple[float, float]:
        # every ramp stays between its two ends (see _ramp)
        return (min(self.start, self.end), max(self.start, self.end))


@dataclass(frozen=True)
class Linear(_Ramp):
    """``start`` for ``delay`` steps, then a linear ramp over ``steps`` steps, then ``end``.

    Args:
        start: value before and at the beginning of the ramp.
        end: value reached at step ``delay + steps`` and kept afterwards.
        steps: ramp length in steps (>= 1).
        delay: steps spent at ``start`` before the ramp (>= 0).

    Example:
        >>> import vaekit as vk
        >>> beta = vk.schedules.Linear(0.0, 1.0, steps=100, delay=50)
        >>> [beta(s) for s in (0, 50, 100, 150, 10_000)]
        [0.0, 0.0, 0.5, 1.0, 1.0]
    """

    name = "linear"

    def value(self, step: int) -> float:
        return _ramp(self.start, self.end, self._progress(step))


@dataclass(frozen=True)
class Cosine(_Ramp):
    """Like :class:`Linear` but with a half-cosine ramp (flat at both ends).

    Example:
        >>> import vaekit as vk
        >>> beta = vk.schedules.Cosine(0.0, 1.0, steps=100)
        >>> [round(beta(s), 3) for s in (0, 25, 50, 100)]
        [0.0, 0.146, 0.5, 1.0]
    """

    name = "cosine"

    def value(self, step: int) -> float:
        t = self._progress(step)
        return _ramp(self.start, self.end, 0.5 * (1.0 - math.cos(math.pi * t)) if t < 1 else 1.0)


@dataclass(frozen=True)
class Cyclical(Schedule):
    """Cyclical annealing (Fu et al. 2019).

    The first ``total_steps`` steps are split into ``cycles`` periods of
    ``total_steps / cycles`` steps. With ``tau = (step mod period) / period`` in [0, 1), the
    value is ``start + (end - start) * f(tau / ratio)`` while ``tau < ratio`` and ``end`` for
    the rest of the period. After ``total_steps`` the value stays at ``end`` (training past
    the plan does not drop β back to ``start``).

    Args:
        total_steps: steps covered by the cycles (>= ``cycles``).
        cycles: number of periods M (Fu et al. use 4).
        ratio: fraction R of each period spent ramping, in (0, 1] (Fu et al. use 0.5).
        start, end: values at the start of each period and on the plateau.
        shape: ramp ``f``: ``"linear"``, ``"cosine"`` or ``"sigmoid"`` (a logistic curve
            rescaled to go exactly from 0 to 1).

    Example:
        >>> import vaekit as vk
        >>> beta = vk.schedules.Cyclical(total_steps=400, cycles=4, ratio=0.5)
        >>> [beta(s) for s in (0, 25, 50, 99, 100, 125, 400)]
        [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0]
    """

    name = "cyclical"
    total_steps: int = 1
    cycles: int = 4
    ratio: float = 0.5
    start: float = 0.0
    end: float = 1.0
    shape: str = "linear"

    def __post_init__(self) -> None:
        object.__setattr__(self, "cycles", check_int(self.cycles, "cycles", minimum=1))
        object.__setattr__(
            self, "total_steps", check_int(self.total_steps, "total_steps", minimum=1)
        )
        if self.total_steps < self.cycles:
            raise ValueError(
                f"total_steps must be >= cycles (each period needs at least one step), got "
                f"total_steps={self.total_steps}, cycles={self.cycles}"
            )
        ratio = check_number(self.ratio, "ratio")
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}")
        object.__setattr__(self, "ratio", ratio)
        object.__setattr__(self, "start", check_number(self.start, "start"))
        object.__setattr__(self, "end", check_number(self.end, "end"))
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {list(SHAPES)}, got {self.shape!r}")

    def bounds(self) -> tuple[float, float]:
        return (min(self.start, self.end), max(self.start, self.end))

    @property
    def period(self) -> float:
        """Length of one cycle in steps (may be fractional)."""
        return self.total_steps / self.cycles

    def value(self, step: int) -> float:
        if step >= self.total_steps:
            return self.end
        # integer arithmetic: exact periodicity even when the period is not a whole number
        tau = (step * self.cycles % self.total_steps) / self.total_steps
        t = tau / self.ratio
        if t >= 1.0:
            return self.end
        return _ramp(self.start, self.end, _shape_fn(self.shape)(t))


@dataclass(frozen=True)
class Sequence(Schedule):
    """Phases run in order; each phase's schedule sees its own local step (from 0).

    Past the last phase the last schedule keeps running with its local step, so a final
    ``Linear``/``Constant`` simply holds its end value.

    Args:
        phases: ``[(steps, schedule), ...]`` with ``steps >= 1`` per phase; schedules may be
            :class:`Schedule` objects, their ``to_dict()`` dicts, or plain numbers
            (:class:`Constant`).

    Example:
        >>> import vaekit as vk
        >>> spe = 100                                   # steps per epoch
        >>> warm = vk.schedules.epochs_to_steps(50, spe)
        >>> beta = vk.schedules.Sequence([
        ...     (warm, vk.schedules.Constant(0.0)),     # 50 epochs of a plain autoencoder
        ...     (warm, vk.schedules.Linear(0.0, 1e-3, steps=warm)),  # 50-epoch ramp
        ... ])
        >>> [beta(s) for s in (0, 4_999, 5_000, 7_500, 10_000, 20_000)]
        [0.0, 0.0, 0.0, 0.0005, 0.001, 0.001]
    """

    name = "sequence"
    phases: tuple[tuple[int, Schedule], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.phases, (str, bytes, dict)) or not isinstance(self.phases, Iterable):
            raise TypeError(
                "phases must be a list of (steps, schedule) pairs, got "
                f"{type(self.phases).__name__}"
            )
        phases = []
        for i, item in enumerate(self.phases):
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError(f"phase {i} must be a (steps, schedule) pair, got {item!r}")
            steps, sched = item
            if check_int(steps, f"phase {i} steps", minimum=None) == 0:
                raise ValueError(
                    f"phase {i} has zero length (steps=0); every phase needs steps >= 1 — "
                    "drop the phase instead"
                )
            steps = check_int(steps, f"phase {i} steps", minimum=1)
            phases.append((steps, as_schedule(sched, name=f"phase {i} schedule")))
        if not phases:
            raise ValueError("Sequence needs at least one (steps, schedule) phase, got none")
        object.__setattr__(self, "phases", tuple(phases))

    @property
    def boundaries(self) -> tuple[int, ...]:
        """Global step at which each phase starts."""
        out, total = [], 0
        for steps, _ in self.phases:
            out.append(total)
            total += steps
        return tuple(out)

    @property
    def total_steps(self) -> int:
        """Sum of the phase lengths."""
        return sum(steps for steps, _ in self.phases)

    def bounds(self) -> tuple[float, float] | None:
        parts = [sched.bounds() for _, sched in self.phases]
        if any(b is None for b in parts):
            return None
        return (min(lo for lo, _ in parts), max(hi for _, hi in parts))

    def value(self, step: int) -> float:
        offset = 0
        for steps, sched in self.phases[:-1]:
            if step < offset + steps:
                return sched(step - offset)
            offset += steps
        return self.phases[-1][1](step - offset)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "phases": [[s, p.to_dict()] for s, p in self.phases]}


# -- helpers ----------------------------------------------------------------------------------
def available() -> list[str]:
    """Names that :func:`from_dict` understands (built-ins and registered subclasses).

    Example:
        >>> import vaekit as vk
        >>> sorted(vk.schedules.available())[:3]
        ['constant', 'cosine', 'cyclical']
    """
    return SCHEDULES.available()


def from_dict(d: dict[str, Any]) -> Schedule:
    """Rebuild a schedule from its ``to_dict()`` (nested :class:`Sequence` phases included).

    Example:
        >>> import vaekit as vk
        >>> s = vk.schedules.Cyclical(1_000, cycles=4, shape="cosine")
        >>> vk.schedules.from_dict(s.to_dict()) == s
        True
    """
    if not isinstance(d, dict):
        raise TypeError(f"from_dict expects a dict with a 'name' key, got {type(d).__name__}")
    if "name" not in d:
        raise ValueError(f"schedule dict needs a 'name' key (one of {available()}), got {d!r}")
    name = d["name"]
    cls = SCHEDULES.get(name)  # ValueError listing the known names, with close matches
    params = {k: v for k, v in d.items() if k != "name"}
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for schedule {name!r}; expected {known}")
    if cls is Sequence:
        params["phases"] = [tuple(p) if isinstance(p, list) else p for p in params["phases"]]
    return cls(**params)


def as_schedule(value: Schedule | float | dict[str, Any], *, name: str = "schedule") -> Schedule:
    """A number becomes :class:`Constant`; a dict goes through :func:`from_dict`.

    Example:
        >>> import vaekit as vk
        >>> vk.schedules.as_schedule(0.25)
        Constant(v=0.25)
    """
    if isinstance(value, Schedule):
        return value
    if isinstance(value, dict):
        return from_dict(value)
    if not is_number(value):
        raise TypeError(
            f"{name} must be a vk.schedules.Schedule, a number or a schedule dict, got "
            f"{type(value).__name__} ({value!r})"
        )
    return Constant(float(value))


def epochs_to_steps(epochs: float, steps_per_epoch: int) -> int:
    """``round(epochs * steps_per_epoch)``: steps for a schedule written in epochs.

    Example:
        >>> import vaekit as vk
        >>> vk.schedules.epochs_to_steps(50, steps_per_epoch=469)   # 60k images, batch 128
        23450
        >>> vk.schedules.epochs_to_steps(0.5, steps_per_epoch=469)
        234
    """
    steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch", minimum=1)
    epochs = check_number(epochs, "epochs", at_least=0)
    return round(epochs * steps_per_epoch)


def steps_to_epochs(steps: int, steps_per_epoch: int) -> float:
    """``steps / steps_per_epoch``: where a step count lands in epochs.

    Example:
        >>> import vaekit as vk
        >>> vk.schedules.steps_to_epochs(23450, steps_per_epoch=469)
        50.0
    """
    steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch", minimum=1)
    return _as_step(steps, "steps") / steps_per_epoch
