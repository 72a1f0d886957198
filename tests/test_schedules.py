"""Schedules: bounds, monotonicity, periodicity, continuity, round-trips and bad input."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vaekit as vk
from vaekit import schedules as S

values = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
lengths = st.integers(1, 5_000)
steps = st.integers(0, 50_000)
SETTINGS = settings(max_examples=60, deadline=None)


def _within(x: float, a: float, b: float) -> bool:
    return min(a, b) <= x <= max(a, b)


@SETTINGS
@given(start=values, end=values, n=lengths, delay=st.integers(0, 1_000), step=steps)
@pytest.mark.parametrize("cls", [S.Linear, S.Cosine])
def test_ramps_stay_in_range_and_are_monotone(cls, start, end, n, delay, step):
    sched = cls(start, end, steps=n, delay=delay)
    a, b = sched(step), sched(step + 1)
    assert _within(a, start, end) and _within(b, start, end)
    assert (b - a) * (end - start) >= 0  # never moves against the ramp direction
    assert sched(0) == start and sched(delay + n) == end and sched(delay + n + step) == end
    assert sched(min(step, delay)) == start


@SETTINGS
@given(
    period=st.integers(2, 200),
    cycles=st.integers(1, 6),
    ratio=st.floats(0.05, 1.0),
    start=values,
    end=values,
    shape=st.sampled_from(S.SHAPES),
    step=st.integers(0, 1_200),
)
def test_cyclical_periodic_bounded_and_hits_end(period, cycles, ratio, start, end, shape, step):
    ratio = min(ratio, 1 - 1 / period)  # leave at least one whole step on the plateau
    sched = S.Cyclical(
        period * cycles, cycles=cycles, ratio=ratio, start=start, end=end, shape=shape
    )
    assert _within(sched(step), start, end)
    if step + period < sched.total_steps:
        assert sched(step) == sched(step + period)
    for c in range(cycles):
        block = [sched(c * period + i) for i in range(period)]
        assert block[0] == start
        assert end in block
    assert sched(period * cycles + step) == end  # holds after the planned run


def test_cyclical_matches_fu_et_al():
    # T = 1000, M = 4, R = 0.5: period 250, ramp over 125 steps, then 1.0
    beta = S.Cyclical(1_000, cycles=4, ratio=0.5)
    assert beta(0) == 0.0 and beta(62) == pytest.approx(62 / 125) and beta(125) == 1.0
    assert beta(249) == 1.0 and beta(250) == 0.0 and beta(999) == 1.0
    # period 10/3: cycles start at 0, 3.33, 6.67, so values drop back after steps 3 and 6
    frac = [S.Cyclical(10, cycles=3, ratio=1.0)(s) for s in range(10)]
    assert frac == pytest.approx([0.0, 0.3, 0.6, 0.9, 0.2, 0.5, 0.8, 0.1, 0.4, 0.7])


@SETTINGS
@given(
    points=st.lists(values, min_size=2, max_size=5),
    lens=st.lists(st.integers(1, 300), min_size=4, max_size=4),
    shapes=st.lists(st.sampled_from([S.Linear, S.Cosine]), min_size=4, max_size=4),
)
def test_sequence_is_continuous_where_its_phases_are(points, lens, shapes):
    # chain ramps whose ends meet: the sequence then has no jump bigger than one ramp step
    phases = [(n, cls(a, b, steps=n)) for a, b, n, cls in zip(points, points[1:], lens, shapes)]
    seq = S.Sequence(phases)
    for boundary, (n, sched) in zip(seq.boundaries[1:], phases):
        assert seq(boundary) == sched(n)  # value after the edge == where the last phase ended
        max_jump = abs(sched.end - sched.start) * math.pi / 2 / n + 1e-9
        assert abs(seq(boundary) - seq(boundary - 1)) <= max_jump
    assert seq(seq.total_steps + 10) == phases[-1][1].end


def test_sequence_local_steps_and_two_phase_recipe():
    spe = 469  # 60,000 images at batch 128
    n = S.epochs_to_steps(50, spe)
    beta = S.Sequence([(n, 0.0), (n, S.Linear(0.0, 1e-3, steps=n))])
    assert beta(n - 1) == 0.0 and beta(n) == 0.0
    assert beta(n + n // 2) == pytest.approx(1e-3 * (n // 2) / n)
    assert beta(2 * n) == 1e-3 and beta(10 * n) == 1e-3
    assert S.steps_to_epochs(2 * n, spe) == 100.0


@pytest.mark.parametrize(
    "sched",
    [
        S.Constant(0.3),
        S.Linear(0.0, 1.0, steps=10, delay=3),
        S.Cosine(1.0, 0.1, steps=7),
        S.Cyclical(100, cycles=2, ratio=0.25, start=0.1, end=0.9, shape="sigmoid"),
        S.Sequence([(5, S.Constant(0.0)), (5, S.Sequence([(2, 0.5), (3, S.Linear(0.5, 1, 3))]))]),
    ],
    ids=lambda s: s.name,
)
def test_to_dict_round_trip_through_json(sched):
    d = json.loads(json.dumps(sched.to_dict()))
    back = S.from_dict(d)
    assert back == sched and S.Schedule.from_dict(d) == sched
    assert [back(s) for s in range(0, 40, 3)] == [sched(s) for s in range(0, 40, 3)]
    assert repr(back) == repr(sched) and type(sched).__name__ in repr(sched)


def test_repr_shows_parameters():
    assert repr(S.Linear(0, 1, steps=10)) == "Linear(start=0.0, end=1.0, steps=10, delay=0)"


def test_steps_accept_numpy_and_tensor_ints():
    import numpy as np
    import torch

    sched = S.Linear(0.0, 1.0, steps=10)
    assert sched(np.int64(5)) == sched(torch.tensor(5)) == 0.5


@pytest.mark.parametrize(
    "make, err, match",
    [
        (lambda: S.Linear(0, 1, steps=0), ValueError, "steps must be >= 1"),
        (lambda: S.Linear(0, 1, steps=10, delay=-1), ValueError, "delay must be >= 0"),
        (lambda: S.Linear(0, 1, steps=2.5), TypeError, "steps must be an int"),
        (lambda: S.Linear(0, float("nan"), steps=2), ValueError, "end must be finite"),
        (lambda: S.Constant("1"), TypeError, "v must be a number"),
        (lambda: S.Cyclical(100, ratio=0.0), ValueError, r"ratio must be in \(0, 1\]"),
        (lambda: S.Cyclical(3, cycles=4), ValueError, "total_steps must be >= cycles"),
        (lambda: S.Cyclical(100, shape="exp"), ValueError, "shape must be one of"),
        (lambda: S.Sequence([]), ValueError, "at least one"),
        (lambda: S.Sequence([(0, S.Constant(1.0))]), ValueError, "zero length"),
        (lambda: S.Sequence([(5, S.Constant(1.0)), (-2, 1.0)]), ValueError, "phase 1 steps"),
        (lambda: S.Sequence([(5, "linear")]), TypeError, "phase 0 schedule"),
        (lambda: S.Sequence([S.Constant(1.0)]), TypeError, r"\(steps, schedule\) pair"),
        (
            lambda: S.from_dict({"name": "exponential"}),
            ValueError,
            r"unknown schedule .exponential.: expected one of \[.constant.",
        ),
        (lambda: S.from_dict({"name": "linear", "stop": 1}), ValueError, "unknown parameter"),
        (lambda: S.from_dict([1]), TypeError, "expects a dict"),
        (lambda: S.epochs_to_steps(-1, 10), ValueError, "epochs must be >= 0"),
        (lambda: S.epochs_to_steps(1, 0), ValueError, "steps_per_epoch must be >= 1"),
    ],
)
def test_bad_arguments(make, err, match):
    with pytest.raises(err, match=match):
        make()


@pytest.mark.parametrize("step, err", [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_steps(step, err):
    with pytest.raises(err, match="step"):
        S.Constant(1.0)(step)
    with pytest.raises(err, match="step"):
        S.Sequence([(3, 0.0), (3, 1.0)])(step)


def test_schedules_are_exposed_and_stateless():
    assert vk.schedules.Linear is S.Linear
    beta = S.Cyclical(40, cycles=2)
    first = [beta(s) for s in range(40)]
    assert [beta(s) for s in reversed(range(40))][::-1] == first
    assert set(S.available()) >= {"constant", "linear", "cosine", "cyclical", "sequence"}


def _schedules(start, end, n):
    return [
        S.Constant(start),
        S.Linear(start, end, steps=n),
        S.Cosine(start, end, steps=n, delay=3),
        S.Cyclical(total_steps=n + 4, cycles=4, ratio=0.5, start=start, end=end, shape="sigmoid"),
        S.Sequence([(n, S.Constant(end)), (n, S.Linear(start, end, steps=n))]),
    ]


@SETTINGS
@given(start=values, end=values, n=st.integers(1, 300), step=steps)
def test_bounds_hold_every_value(start, end, n, step):
    for sched in _schedules(start, end, n):
        lo, hi = sched.bounds()
        assert lo <= sched(step) <= hi and lo <= sched(0) <= hi, sched
        assert lo == min(start, end) or isinstance(sched, S.Constant)


def test_bounds_of_a_user_schedule_are_unknown_unless_it_says():
    class Wave(S.Schedule):
        name = "test_wave_bounds"

        def value(self, step):
            return math.sin(step)

    assert Wave().bounds() is None
    assert S.Sequence([(5, Wave()), (5, S.Constant(1.0))]).bounds() is None
    S.SCHEDULES.unregister("test_wave_bounds")


def test_schedule_names_share_the_registry_rules():
    assert S.from_dict({"name": "LINEAR", "start": 0.0, "end": 1.0, "steps": 2})(1) == 0.5
    with pytest.raises(ValueError, match="did you mean 'cosine'"):
        S.from_dict({"name": "cosin"})
    with pytest.raises(ValueError, match="schedule name 'linear' is already registered"):

        class Clash(S.Schedule):
            name = "linear"

    assert S.from_dict({"name": "linear", "steps": 4}) == S.Linear(steps=4)  # untouched
