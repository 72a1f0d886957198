"""MultiScale keeps every pyramid level on the full-resolution scale, for every reduction."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vaekit as vk

pool = torch.nn.functional.avg_pool2d


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["l1", "mse"]),
    reduction=st.sampled_from(["mean", "sum", "batchmean"]),
    scales=st.integers(1, 3),
    coarse=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 3), st.integers(1, 3)),
    weights=st.none() | st.lists(st.floats(0.1, 3.0), min_size=3, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_block_constant_images_give_the_wrapped_value(
    name, reduction, scales, coarse, weights, seed
):
    # images constant on 2^(scales-1) blocks are the same at every level, so the pyramid
    # average must be the wrapped loss itself when each level is on the full-res scale
    g = torch.Generator().manual_seed(seed)
    block = 2 ** (scales - 1)

    def upsampled() -> torch.Tensor:
        small = torch.rand(coarse, generator=g, dtype=torch.float64)
        return small.repeat_interleave(block, -2).repeat_interleave(block, -1)

    x, y = upsampled(), upsampled()
    loss = vk.losses.build(name, reduction=reduction)
    multi = vk.losses.MultiScale(loss, scales=scales, weights=weights and weights[:scales])
    assert multi.reduction == reduction
    torch.testing.assert_close(multi(x, y), loss(x, y))


def test_issue_example_and_odd_sizes():
    ones, zeros = torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    batchmean = vk.losses.MSELoss(reduction="batchmean")
    assert float(batchmean(ones, zeros)) == 16.0
    assert float(vk.losses.MultiScale(batchmean, scales=2)(ones, zeros)) == 16.0  # was 10.0
    summed = vk.losses.MultiScale(vk.losses.L1Loss(reduction="sum"), scales=3)
    assert float(summed(torch.ones(3, 1, 8, 8), torch.zeros(3, 1, 8, 8))) == 3 * 64
    # 5x5 pools to 2x2 (the last row and column are dropped): level 1 sums 4 pixels and is
    # scaled by 25/4, by the actual pooled size, not by 4
    multi = vk.losses.MultiScale(batchmean, scales=2)
    assert float(multi(torch.ones(1, 1, 5, 5), torch.zeros(1, 1, 5, 5))) == 25.0
    g = torch.Generator().manual_seed(0)  # 7x6 pools to 3x3
    x, y = torch.rand(2, 1, 7, 6, generator=g), torch.rand(2, 1, 7, 6, generator=g)
    expected = 0.5 * (
        vk.functional.l1_loss(x, y, reduction="sum")
        + (7 * 6) / (3 * 3) * vk.functional.l1_loss(pool(x, 2), pool(y, 2), reduction="sum")
    )
    multi = vk.losses.MultiScale(vk.losses.L1Loss(reduction="sum"), scales=2)
    torch.testing.assert_close(multi(x, y), expected)


def test_reduction_none_is_refused():
    with pytest.raises(ValueError, match=r"reduces to a scalar.*different shapes.*'none'"):
        vk.losses.MultiScale(vk.losses.L1Loss(reduction="none"))


def test_per_image_losses_are_not_rescaled():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 1, 32, 32, generator=g)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    ssim_sum = vk.losses.SSIMLoss(reduction="sum")
    multi = vk.losses.MultiScale(ssim_sum, scales=2)
    expected = 0.5 * (ssim_sum(noisy, x) + ssim_sum(pool(noisy, 2), pool(x, 2)))
    torch.testing.assert_close(multi(noisy, x), expected)
    # in a Weighted, each term by its own kind: l1 (per pixel) scaled by 4, ssim (per image) not
    mixed = vk.losses.MultiScale(
        vk.losses.Weighted(
            {"l1": (vk.losses.L1Loss(reduction="sum"), 1.0), "ssim": (ssim_sum, 0.5)}
        ),
        scales=2,
    )
    terms = mixed.forward_terms(noisy, x)
    l1 = vk.functional.l1_loss
    torch.testing.assert_close(
        terms["l1"],
        0.5 * (l1(noisy, x, reduction="sum") + 4 * l1(pool(noisy, 2), pool(x, 2), reduction="sum")),
    )
    torch.testing.assert_close(terms["ssim"], expected)

    class PerImageL1(torch.nn.Module):  # a custom loss declares its kind
        reduction, per_image = "sum", True

        def forward(self, input, target):
            return (input - target).abs().flatten(1).mean(1).sum()

    custom = vk.losses.MultiScale(PerImageL1(), scales=2)
    torch.testing.assert_close(
        custom(noisy, x), 0.5 * (PerImageL1()(noisy, x) + PerImageL1()(pool(noisy, 2), pool(x, 2)))
    )


def test_nested_weighted_mixing_kinds_is_refused():
    inner = vk.losses.Weighted(
        {
            "l1": (vk.losses.L1Loss(reduction="sum"), 1.0),
            "ssim": (vk.losses.SSIMLoss(reduction="sum"), 1.0),
        }
    )
    outer = vk.losses.Weighted({"both": (inner, 1.0)})
    with pytest.raises(ValueError, match="mixes per-pixel and per-image"):
        vk.losses.MultiScale(outer, scales=2)
    vk.losses.MultiScale(outer, scales=1)  # one level: nothing to rescale
