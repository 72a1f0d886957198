"""SSIM / MS-SSIM against pytorch-msssim, the small-image rule and NaN safety."""

from __future__ import annotations

import pytest
import pytorch_msssim
import torch

import vaekit as vk


def pair(side: int, channels: int = 1, noise: float = 0.1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, channels, side, side, generator=g)
    # smooth the images a little so SSIM is not dominated by white noise
    x = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1)
    return (x + noise * torch.randn(x.shape, generator=g)).clamp(0, 1), x


def test_ssim_and_ms_ssim_equal_pytorch_msssim_at_161_px():
    noisy, x = pair(161, channels=3)
    ours = vk.functional.ssim_loss(noisy, x, reduction="none")
    ref = pytorch_msssim.ssim(noisy, x, data_range=1.0, size_average=False)
    torch.testing.assert_close(ours, 1 - ref)
    ours = vk.functional.ms_ssim_loss(noisy, x, reduction="none")
    ref = pytorch_msssim.ms_ssim(noisy, x, data_range=1.0, size_average=False)
    torch.testing.assert_close(ours, 1 - ref)


@pytest.mark.parametrize(("side", "levels"), [(28, 2), (32, 2), (64, 3)])
def test_ms_ssim_on_small_images(side, levels):
    assert vk.losses.ms_ssim_levels(side) == levels
    _, x = pair(side)
    assert float(vk.functional.ms_ssim_loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    values = [
        float(vk.functional.ms_ssim_loss(pair(side, noise=s)[0], x)) for s in (0.02, 0.1, 0.3)
    ]
    assert values == sorted(values) and values[0] > 0  # more noise, larger loss


def test_ms_ssim_levels_rule():
    sides = (8, 11, 21, 22, 160, 161, 512)
    assert [vk.losses.ms_ssim_levels(s) for s in sides] == [1, 1, 2, 2, 4, 5, 5]
    assert vk.losses.ms_ssim_levels(512, max_levels=3) == 3
    # images smaller than the window: the window shrinks, SSIM of identity is still 1
    _, x = pair(6)
    assert float(vk.functional.ms_ssim_loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(vk.functional.ssim_loss(x, x)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("fn", [vk.functional.ssim_loss, vk.functional.ms_ssim_loss])
def test_negative_structure_gives_no_nan(fn):
    _, x = pair(32)
    inverted = (1 - x).requires_grad_(True)  # anti-correlated: cs and SSIM < 0
    value = fn(inverted, x)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(inverted.grad).all()
    assert float(value.detach()) > 0.99  # SSIM < 0: 1 - SSIM > 1; MS-SSIM floors cs at ~0


def test_cut_weights_keep_their_total():
    noisy, x = pair(64)  # 64 px: only the first 3 of 5 levels fit
    a = vk.functional.ms_ssim_loss(noisy, x, weights=[1, 1, 1, 1, 1])
    b = vk.functional.ms_ssim_loss(noisy, x, weights=[5 / 3] * 3)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="non-negative numbers"):
        vk.functional.ms_ssim_loss(noisy, x, weights=[-1, 1])
    with pytest.raises(ValueError, match="window_size must be odd, got 4"):
        vk.losses.SSIMLoss(win_size=4)


def test_data_range_255():
    noisy, x = pair(32)
    torch.testing.assert_close(
        vk.functional.ssim_loss(noisy * 255, x * 255, data_range=255.0),
        vk.functional.ssim_loss(noisy, x),
    )
    with pytest.raises(ValueError, match=r"\[0, 1\].*data_range=1"):
        vk.functional.ssim_loss(noisy * 255, x * 255)


# -- one name per SSIM parameter (window_size, window_sigma, k1, k2), old names as aliases ----
NEW = dict(window_size=7, window_sigma=2.0, k1=0.02, k2=0.05)
OLD = dict(win_size=7, win_sigma=2.0, K=(0.02, 0.05))


@pytest.mark.parametrize(
    "fn", [vk.functional.ssim_loss, vk.functional.ms_ssim_loss], ids=["ssim", "ms_ssim"]
)
def test_old_ssim_parameter_names_are_aliases(fn):
    noisy, x = pair(32)
    new = fn(noisy, x, **NEW)
    assert torch.equal(fn(noisy, x, **OLD), new)
    assert not torch.equal(fn(noisy, x), new)  # the parameters do reach the maths
    name = "ssim" if fn is vk.functional.ssim_loss else "ms_ssim"
    for kwargs in (NEW, OLD):
        module = vk.losses.build(name, **kwargs)
        assert {k: module.hparams[k] for k in NEW} == NEW  # stored under the new names
        assert torch.equal(module(noisy, x), new)


@pytest.mark.parametrize(
    ("make", "old"),
    [
        (lambda **kw: vk.functional.ssim_loss(*pair(16), **kw), "win_sigma"),
        (lambda **kw: vk.functional.ms_ssim_loss(*pair(16), **kw), "win_sigma"),
        (lambda **kw: vk.losses.SSIMLoss(**kw), "win_sigma"),
        (lambda **kw: vk.losses.MSSSIMLoss(**kw), "win_sigma"),
        (lambda **kw: vk.metrics.ssim(*pair(16), **kw), "sigma"),
    ],
    ids=["ssim_loss", "ms_ssim_loss", "SSIMLoss", "MSSSIMLoss", "metrics.ssim"],
)
def test_old_and_new_name_together_is_a_type_error(make, old):
    with pytest.raises(TypeError, match=rf"{old}= \(the old name of window_sigma=\)"):
        make(window_sigma=1.5, **{old: 1.5})


def test_old_names_together_and_bad_k():
    with pytest.raises(TypeError, match=r"K= \(the old name of k1= and k2=\) and k1="):
        vk.losses.SSIMLoss(K=(0.01, 0.03), k1=0.01)
    with pytest.raises(TypeError, match=r"win_size= .*window_size="):
        vk.losses.MSSSIMLoss(win_size=7, window_size=7)
    with pytest.raises(ValueError, match="K must be a sequence of 2 values"):
        vk.losses.SSIMLoss(K=0.01)
    with pytest.raises(TypeError, match="window_size must be an int, got float"):
        vk.losses.SSIMLoss(window_size=7.0)
    assert vk.losses.ms_ssim_levels(64, win_size=21) == vk.losses.ms_ssim_levels(64, 21) == 2


def test_metric_ssim_is_one_minus_the_loss_with_the_same_names():
    noisy, x = pair(32, channels=3)
    metric = vk.metrics.ssim(noisy, x, reduction="none", **NEW)
    loss = vk.functional.ssim_loss(noisy, x, reduction="none", **NEW)
    torch.testing.assert_close(metric, 1 - loss, rtol=0, atol=1e-6)
    assert torch.equal(
        vk.metrics.ssim(noisy, x, sigma=2.0), vk.metrics.ssim(noisy, x, window_sigma=2.0)
    )
