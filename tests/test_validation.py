"""The shared argument checks: one rule for every count and number vaekit takes.

A value of the wrong *type* (a float count, a string, a bool) is a ``TypeError``; the right
type with a bad *value* (0 images, a negative σ, NaN) is a ``ValueError``; both name the
argument, what it must be and what came.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import vaekit as vk
from vaekit._validation import (
    check_int,
    check_number,
    check_positive,
    is_number,
    old_keyword_names,
)


# -- check_int --------------------------------------------------------------------------------
@given(st.integers(-1000, 1000), st.integers(-10, 10), st.integers(0, 20))
def test_check_int_accepts_exactly_the_range(value, low, width):
    high = low + width
    if low <= value <= high:
        assert check_int(value, "n", low, maximum=high) == value
    else:
        with pytest.raises(ValueError, match=rf"^n must be >= {low} and <= {high}, got {value}$"):
            check_int(value, "n", low, maximum=high)


@pytest.mark.parametrize("value", [2.0, 2.5, "3", None, True, False, [1], torch.tensor(1.0)])
def test_check_int_refuses_non_integers_with_a_type_error(value):
    with pytest.raises(TypeError, match=rf"^count must be an int, got {type(value).__name__} \("):
        check_int(value, "count")


@pytest.mark.parametrize("value", [np.int64(3), np.uint8(3), torch.tensor(3)])
def test_check_int_accepts_integer_likes_as_plain_ints(value):
    out = check_int(value, "count")
    assert out == 3 and type(out) is int


# -- check_number -----------------------------------------------------------------------------
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_check_number_bounds_and_finiteness(value):
    if not math.isfinite(value):
        with pytest.raises(ValueError, match="sigma must be finite"):
            check_number(value, "sigma", above=0)
    elif value <= 0:
        with pytest.raises(ValueError, match=r"sigma must be > 0, got "):
            check_number(value, "sigma", above=0)
    else:
        assert check_number(value, "sigma", above=0) == value
    if value == math.inf:  # finite=False lets inf through the bounds
        assert check_number(value, "sigma", above=0, finite=False) == math.inf


@pytest.mark.parametrize(
    ("kwargs", "value", "message"),
    [
        (dict(at_least=0), -1, "x must be >= 0, got -1"),
        (dict(above=0, at_most=1), 2, "x must be > 0 and <= 1, got 2"),
        (dict(below=1), 1.0, "x must be < 1, got 1.0"),
    ],
)
def test_check_number_messages(kwargs, value, message):
    with pytest.raises(ValueError, match=rf"^{message}$"):
        check_number(value, "x", **kwargs)


@pytest.mark.parametrize("value", ["0.5", None, True, 1j, [0.5], torch.ones(2), np.bool_(True)])
def test_check_number_refuses_non_numbers_with_a_type_error(value):
    assert not is_number(value)
    with pytest.raises(TypeError, match=r"^x must be a number, got "):
        check_number(value, "x")


@pytest.mark.parametrize("value", [1, 0.5, np.float32(0.5), np.int64(2), torch.tensor(0.5)])
def test_numbers(value):
    assert is_number(value) and check_number(value, "x") == float(value)


def test_check_positive_is_check_number_with_inf_allowed():
    check_positive(math.inf, "x")
    check_positive(0, "x", strict=False)
    with pytest.raises(ValueError, match="x must be > 0, got 0"):
        check_positive(0, "x")
    with pytest.raises(TypeError, match="x must be a number"):
        check_positive("1", "x")


# -- renamed keywords -------------------------------------------------------------------------
def test_old_keyword_names():
    @old_keyword_names(size="window_size", K=("k1", "k2"))
    def f(*, window_size=11, k1=0.0, k2=0.0):
        return window_size, k1, k2

    assert f(size=3, K=(1, 2)) == f(window_size=3, k1=1, k2=2) == (3, 1, 2)
    assert f.__name__ == "f" and f.__wrapped__.__kwdefaults__["window_size"] == 11
    with pytest.raises(TypeError, match=r"size= \(the old name of window_size=\)"):
        f(size=3, window_size=3)
    with pytest.raises(TypeError, match=r"K= \(the old name of k1= and k2=\) and k2="):
        f(K=(1, 2), k2=2)
    with pytest.raises(ValueError, match="K must be a sequence of 2 values"):
        f(K=(1, 2, 3))


# -- one error type per mistake, across the package -------------------------------------------
def tiny_vae() -> vk.VAE:
    cfg = vk.VAEConfig(
        in_channels=1, image_size=8, widths=(4,), latent_dim=2, attention_at=(), block="conv"
    )
    return vk.VAE(cfg)


X = torch.rand(2, 1, 16, 16)
# (call taking the bad value, a good value of the right type that is out of range)
COUNTS = {
    "MultiScale(scales)": (lambda v: vk.losses.MultiScale("l1", scales=v), 0),
    "SSIMLoss(window_size)": (lambda v: vk.losses.SSIMLoss(window_size=v), -1),
    "metrics.ssim(window_size)": (lambda v: vk.metrics.ssim(X, X, window_size=v), 0),
    "iwae_nll(k)": (lambda v: vk.metrics.iwae_nll(tiny_vae(), X[..., :8, :8], k=v), 0),
    "bits_per_dim(num_dims)": (lambda v: vk.metrics.bits_per_dim(1.0, v), 0),
    "discretized_bits_per_dim(num_bins)": (
        lambda v: vk.metrics.discretized_bits_per_dim(1.0, 4, num_bins=v),
        1,
    ),
    "aggregate_posterior_gap(num_samples)": (
        lambda v: vk.metrics.aggregate_posterior_gap(tiny_vae(), X[..., :8, :8], num_samples=v),
        1,
    ),
    "kl_per_dim(max_batches)": (
        lambda v: vk.metrics.kl_per_dim(tiny_vae(), X[..., :8, :8], max_batches=v),
        0,
    ),
    "make_grid(nrow)": (lambda v: vk.viz.make_grid(X, nrow=v), 0),
    "make_grid(padding)": (lambda v: vk.viz.make_grid(X, padding=v), -1),
    "sample_grid(n)": (lambda v: vk.viz.sample_grid(tiny_vae(), n=v), 0),
    "traversal_grid(steps)": (
        lambda v: vk.viz.traversal_grid(tiny_vae(), X[:1, :, :8, :8], steps=v),
        1,
    ),
    "DiagonalGaussian.sample_n(n)": (
        lambda v: vk.DiagonalGaussian(torch.zeros(2, 3), torch.zeros(2, 3)).sample_n(v),
        0,
    ),
    "schedules.Linear(steps)": (lambda v: vk.schedules.Linear(0, 1, steps=v), 0),
}
NUMBERS = {
    "KL(free_bits)": (lambda v: vk.losses.KL(free_bits=v), -0.1),
    "FFTLoss(focal)": (lambda v: vk.losses.FFTLoss(focal=v), -1.0),
    "VAELoss(beta)": (lambda v: vk.losses.VAELoss(recon="l1", beta=v), -1.0),
    "Weighted(weight)": (lambda v: vk.losses.Weighted({"l1": v}), -1.0),
    "psnr(data_range)": (lambda v: vk.metrics.psnr(X, X, data_range=v), 0.0),
    "active_units(threshold)": (
        lambda v: vk.metrics.active_units(tiny_vae(), X[..., :8, :8], v),
        -1.0,
    ),
    "ClassifierFeatures.fit(lr)": (
        lambda v: vk.metrics.ClassifierFeatures.fit(X, torch.zeros(2, dtype=torch.long), lr=v),
        0.0,
    ),
    "sample_grid(temperatures)": (
        lambda v: vk.viz.sample_grid(tiny_vae(), temperatures=(v,)),
        -1.0,
    ),
    "traversal_grid(span)": (
        lambda v: vk.viz.traversal_grid(tiny_vae(), X[:1, :, :8, :8], span=v),
        0.0,
    ),
    "schedules.Constant(v)": (lambda v: vk.schedules.Constant(v), math.nan),
}


@pytest.mark.parametrize("name", list(COUNTS))
@pytest.mark.parametrize("wrong_type", [2.0, "3", True])
def test_a_count_of_the_wrong_type_is_a_type_error(name, wrong_type):
    call, _ = COUNTS[name]
    with pytest.raises(TypeError, match="must be an int, got"):
        call(wrong_type)


@pytest.mark.parametrize("name", list(COUNTS))
def test_a_count_out_of_range_is_a_value_error(name):
    call, bad = COUNTS[name]
    with pytest.raises(ValueError, match=rf"must be >= -?\d+.*got {bad}"):
        call(bad)


@pytest.mark.parametrize("name", list(NUMBERS))
@pytest.mark.parametrize("wrong_type", ["0.5", None, True])
def test_a_number_of_the_wrong_type_is_a_type_error(name, wrong_type):
    call, _ = NUMBERS[name]
    with pytest.raises(TypeError, match="must be a number, got"):
        call(wrong_type)


@pytest.mark.parametrize("name", list(NUMBERS))
def test_a_number_out_of_range_is_a_value_error(name):
    call, bad = NUMBERS[name]
    with pytest.raises(ValueError, match=r"must be (finite|[<>]=? -?\d)"):
        call(bad)


def test_a_scale_is_a_number_or_one_of_its_words():
    # strings are a valid type for sigma/scale ("optimal", "learned"): an unknown one is a value
    with pytest.raises(ValueError, match="sigma must be a positive float, 'learned', 'optimal'"):
        vk.losses.GaussianNLLLoss("0.5")
    with pytest.raises(TypeError, match="sigma must be a number, got bool"):
        vk.losses.GaussianNLLLoss(True)
    with pytest.raises(ValueError, match=r"scale must be > 0, got -1\.0"):
        vk.losses.LaplaceNLLLoss(-1.0)
