"""vk.discriminators: the registry and the N-layer PatchGAN."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import vaekit as vk
from vaekit.discriminators import PatchGAN


def test_registry_names_and_errors():
    assert vk.discriminators.available() == ["patchgan"]
    assert isinstance(vk.discriminators.build("PatchGAN", in_channels=1), PatchGAN)
    assert vk.discriminators.get("patchgan") is PatchGAN
    assert vk.discriminators.name_of(PatchGAN(1)) == "patchgan"
    with pytest.raises(ValueError, match=r"unknown discriminator 'patchgn'.*did you mean"):
        vk.discriminators.build("patchgn")
    with pytest.raises(ValueError, match="already registered"):
        vk.discriminators.register("patchgan")(PatchGAN)


def test_user_registered_discriminator_works_with_the_adversarial_loss():
    @vk.discriminators.register("test_global")
    class Global(nn.Module):
        def __init__(self, in_channels: int = 3) -> None:
            super().__init__()
            self.in_channels = in_channels
            self.head = nn.Linear(in_channels, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(x.mean(dim=(2, 3)))

    try:
        disc = vk.discriminators.build("test_global", in_channels=1)
        adv = vk.losses.Adversarial(disc, adaptive=False, weight=2.0)
        x = torch.rand(3, 1, 8, 8)
        res = adv.generator_loss(x)
        assert res.total.item() == pytest.approx(-2.0 * disc(x).mean().item(), rel=1e-6)
        with pytest.raises(ValueError, match="must have 1 channel"):
            adv.generator_loss(torch.rand(3, 2, 8, 8))
    finally:
        vk.discriminators.unregister("test_global")
    assert "test_global" not in vk.discriminators.available()


def test_factory_must_return_a_module():
    vk.discriminators.register("test_not_a_module")(lambda **kw: "nope")
    try:
        with pytest.raises(TypeError, match=r"must return an nn.Module, got str"):
            vk.discriminators.build("test_not_a_module")
    finally:
        vk.discriminators.unregister("test_not_a_module")


@settings(max_examples=15, deadline=None)
@given(
    layers=st.integers(1, 4),
    extra=st.integers(0, 20),
    width_extra=st.integers(0, 9),
    channels=st.sampled_from([1, 3]),
    norm=st.sampled_from(["batch", "group", "none", "layer"]),
)
def test_patchgan_logit_map_shape(layers, extra, width_extra, channels, norm):
    disc = PatchGAN(channels, width=4, layers=layers, norm=norm)
    h, w = disc.min_size + extra, disc.min_size + width_extra
    out = disc(torch.rand(2, channels, h, w))
    assert out.shape == (2, 1, h // 2**layers - 2, w // 2**layers - 2)


@pytest.mark.parametrize(("size", "channels", "logits"), [(28, 1, 1), (32, 1, 2), (256, 3, 30)])
def test_patchgan_at_the_users_sizes(size, channels, logits):
    disc = vk.discriminators.build("patchgan", in_channels=channels, width=8)
    assert disc(torch.rand(1 if size == 256 else 2, channels, size, size)).shape[-2:] == (
        logits,
        logits,
    )


def test_patchgan_layout_follows_pix2pix():
    disc = PatchGAN(3, width=64, layers=3)
    convs = [m for m in disc.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4) for c in convs)
    # a norm makes the conv bias redundant; the first and last conv have no norm
    assert [c.bias is not None for c in convs] == [True, False, False, False, True]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in disc.modules()) == 3
    assert all(abs(c.weight.std().item() - 0.02) < 0.005 for c in convs[1:4])


def test_spectral_norm_bounds_each_conv():
    disc = PatchGAN(1, width=8, layers=2, norm="none", spectral_norm=True)
    convs = [m for m in disc.modules() if isinstance(m, nn.Conv2d)]
    assert all(nn.utils.parametrize.is_parametrized(c, "weight") for c in convs)
    disc.train()
    for _ in range(30):  # power iterations run in train-mode forwards
        disc(torch.rand(2, 1, 16, 16))
    for c in convs:
        sigma = torch.linalg.matrix_norm(c.weight.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=0.05)


def test_bad_inputs_and_arguments():
    disc = PatchGAN(1, width=4)
    with pytest.raises(ValueError, match=r"must have 1 channel\(s\), got 3"):
        disc(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"at least 24x24 pixels for layers=3.*layers=2 needs 12"):
        disc(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match="4-D image batch"):
        disc(torch.rand(1, 32, 32))
    with pytest.raises(TypeError, match="floating-point"):
        disc(torch.zeros(2, 1, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="layers must be"):
        PatchGAN(1, layers=0)
    with pytest.raises(TypeError, match="in_channels"):
        PatchGAN(1.5)
    with pytest.raises(ValueError, match="unknown norm 'batchnorm'"):
        PatchGAN(1, norm="batchnorm")
    with pytest.raises(TypeError, match="spectral_norm must be a bool"):
        PatchGAN(1, spectral_norm="yes")


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_patchgan_compiles_without_graph_breaks(spectral_norm):
    disc = PatchGAN(1, width=4, layers=2, norm="group", spectral_norm=spectral_norm).eval()
    x = torch.rand(2, 1, 20, 20)
    compiled = torch.compile(disc, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), disc(x))


def test_patchgan_bf16_autocast_and_channels_last():
    disc = PatchGAN(3, width=4, layers=2).eval()
    x = torch.rand(2, 3, 24, 24)
    ref = disc(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = disc(x)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), ref, atol=0.05, rtol=0.05)
    disc_cl = disc.to(memory_format=torch.channels_last)
    torch.testing.assert_close(disc_cl(x.to(memory_format=torch.channels_last)), ref)
