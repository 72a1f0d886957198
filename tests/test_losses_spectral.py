"""The FFT loss: a function of the full 2-D spectrum, Parseval, and the Focal Frequency Loss.

References are computed here with explicit DFT matrices (no torch.fft), so a wrong half-
spectrum weighting, normalisation or focal weight in vaekit cannot also be in the reference.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vaekit as vk

fft_loss = vk.functional.fft_loss


def dft2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DFT by matrices: F[u, v] = Σ_{h,w} x[h, w] e^{-2πi(uh/H + vw/W)} / √(HW)."""
    H, W = x.shape[-2:]

    def matrix(n: int) -> torch.Tensor:
        k = torch.arange(n, dtype=torch.float64)
        return torch.exp(-2j * math.pi * torch.outer(k, k) / n)

    return matrix(H) @ x.to(torch.complex128) @ matrix(W).T / math.sqrt(H * W)


def focal_reference(x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Jiang et al. 2021, eq. 2-4 (FocalFrequencyLoss defaults): mean of w · |ΔF|²."""
    diff = dft2(x) - dft2(y)
    dist = diff.abs() ** 2
    w = diff.abs() ** alpha
    w = w / w.flatten(-2).max(-1).values[..., None, None]  # max over (H, W) per image, channel
    w = torch.nan_to_num(w, nan=0.0).clamp(0, 1)
    return (w * dist).mean()


def pair(*shape: int, seed: int = 0, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=dtype), torch.rand(shape, generator=g, dtype=dtype)


def test_rows_and_columns_count_alike():
    # the example: one cosine across the columns, or across the rows. The full ortho
    # spectrum of 0.1·cos(2πw/8) on 8x8 is 0.1·64/2/8 = 0.4 at (0, ±1) and 0 elsewhere, so
    # the L1 sum is 0.8 and the squared sum 0.32 = Σ d² (64 pixels · 0.01 · ½) for both
    n = 8
    p = torch.cos(2 * math.pi * torch.arange(n, dtype=torch.float64) / n)
    eh = p.view(1, 1, 1, n).expand(1, 1, n, n)
    ev = eh.transpose(-1, -2)
    z = torch.zeros(1, 1, n, n, dtype=torch.float64)
    for e in (eh, ev):
        assert float(fft_loss(0.5 + 0.1 * e, 0.5 + z, reduction="sum")) == pytest.approx(0.8)
        sq = fft_loss(0.5 + 0.1 * e, 0.5 + z, squared=True, reduction="sum")
        assert float(sq) == pytest.approx(0.32)


def test_docstring_value_by_hand():
    # a single 4 at pixel (0, 0) of a 4x4 image: every one of the 16 ortho coefficients is
    # 4 / sqrt(16) = 1, so the L1 sum is 16 and the squared sum 16 = 4² (Parseval)
    x, y = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    y[..., 0, 0] = 4.0
    assert float(fft_loss(x, y, reduction="sum")) == pytest.approx(16.0)
    assert float(fft_loss(x, y, reduction="mean")) == pytest.approx(1.0)
    assert float(fft_loss(x, y, squared=True, reduction="sum")) == pytest.approx(16.0)


options = st.sampled_from(
    [
        {},
        {"squared": True},
        {"amplitude_only": True},
        {"amplitude_only": True, "squared": True},
        {"focal": 1.0},
        {"focal": 0.5},
        {"focal": 2.0, "squared": True},
    ]
)


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 2),
    c=st.integers(1, 2),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    opts=options,
    seed=st.integers(0, 2**16),
)
def test_full_spectrum_reference_and_reductions(b, c, h, w, opts, seed):
    x, y = pair(b, c, h, w, seed=seed)
    fx, fy = dft2(x), dft2(y)
    diff = fx.abs() - fy.abs() if opts.get("amplitude_only") else fx - fy
    squared = opts.get("squared", opts.get("focal", 0) > 0)
    dist = diff.abs() ** 2 if squared else diff.abs()
    if opts.get("focal", 0) > 0:
        weight = diff.abs() ** opts["focal"]
        weight = weight / weight.flatten(-2).max(-1).values[..., None, None]
        dist = torch.nan_to_num(weight, nan=0.0).clamp(0, 1) * dist
    none = fft_loss(x, y, reduction="none", **opts)
    assert none.shape == (b, c, h, w)
    torch.testing.assert_close(none, dist)
    expected = {"mean": dist.mean(), "sum": dist.sum(), "batchmean": dist.sum() / b}
    for reduction, value in expected.items():
        torch.testing.assert_close(fft_loss(x, y, reduction=reduction, **opts), value)
        # a function of the full spectrum: transposing both images changes nothing
        xt, yt = x.transpose(-1, -2), y.transpose(-1, -2)
        torch.testing.assert_close(fft_loss(xt, yt, reduction=reduction, **opts), value)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_parseval_squared_is_mse(h, w, seed):
    x, y = pair(2, 3, h, w, seed=seed)
    torch.testing.assert_close(fft_loss(x, y, squared=True, reduction="sum"), ((x - y) ** 2).sum())
    torch.testing.assert_close(fft_loss(x, y, squared=True), vk.functional.mse_loss(x, y))
    torch.testing.assert_close(
        fft_loss(x, y, squared=True, reduction="batchmean"),
        vk.functional.mse_loss(x, y, reduction="batchmean"),
    )


def test_focal_frequency_loss_by_hand():
    # the pair: torch.rand(2, 3, 8, 8) twice after seed 0, float64; the paper's
    # formula (focal_reference, explicit DFT matrices) gives 0.1039
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    y = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    reference = focal_reference(x, y)
    assert float(reference) == pytest.approx(0.1039, abs=5e-5)
    torch.testing.assert_close(fft_loss(x, y, focal=1.0), reference)
    torch.testing.assert_close(vk.losses.FFTLoss(focal=1.0)(x, y), reference)
    for alpha in (0.5, 2.0):
        torch.testing.assert_close(fft_loss(x, y, focal=alpha), focal_reference(x, y, alpha))
    assert float(fft_loss(x, x, focal=1.0)) == 0.0  # 0/0 weights are 0, no NaN


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 1, 7, 5), (3, 2, 16, 9)])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_focal_equals_the_focal_frequency_loss_package(shape, alpha):
    ffl = pytest.importorskip(
        "focal_frequency_loss", reason="focal-frequency-loss is in the bench extra"
    )
    x, y = pair(*shape, seed=3)
    x.requires_grad_(True)
    ours = fft_loss(x, y, focal=alpha)
    (grad_ours,) = torch.autograd.grad(ours, x)
    ref = ffl.FocalFrequencyLoss(alpha=alpha)(x, y)
    (grad_ref,) = torch.autograd.grad(ref, x)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(grad_ours, grad_ref)  # the weight is detached in both
    torch.testing.assert_close(
        fft_loss(y, y, focal=alpha), ffl.FocalFrequencyLoss(alpha=alpha)(y, y)
    )


def test_focal_needs_the_squared_complex_distance():
    x, y = pair(1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"Focal Frequency Loss.*squared=False"):
        fft_loss(x, y, focal=1.0, squared=False)
    with pytest.raises(ValueError, match=r"Focal Frequency Loss.*amplitude_only=True"):
        fft_loss(x, y, focal=1.0, amplitude_only=True)
    with pytest.raises(ValueError, match="squared complex distance"):
        vk.losses.FFTLoss(focal=1.0, squared=False)
    with pytest.raises(TypeError, match="squared must be None, True or False"):
        vk.losses.FFTLoss(squared="yes")
    with pytest.raises(ValueError, match="focal must be >= 0"):
        vk.losses.FFTLoss(focal=-1.0)
    assert vk.losses.FFTLoss(focal=1.0).squared is True  # None resolves to FFL's distance
    assert vk.losses.FFTLoss().squared is False
    torch.testing.assert_close(fft_loss(x, y, focal=1.0), fft_loss(x, y, focal=1.0, squared=True))


def test_amplitude_and_focal_bounds():
    x, y = pair(2, 3, 16, 16, seed=1)
    plain = fft_loss(x, y)
    amp = fft_loss(x, y, amplitude_only=True)
    assert 0 < float(amp) <= float(plain)  # | |a| - |b| | <= |a - b| per frequency
    shifted = torch.roll(y, shifts=3, dims=-1)  # same amplitudes, another phase
    assert float(fft_loss(shifted, y, amplitude_only=True)) < 1e-12
    assert float(fft_loss(shifted, y)) > 0.1
    focal = fft_loss(x, y, focal=1.0)
    assert 0 < float(focal) < float(fft_loss(x, y, squared=True))  # weights in [0, 1]
