"""Tests for ``vaekit.blocks``: every block in CASES goes through every generic test.

Zero-initialised parts are perturbed where a test needs signal through them: ``perturb`` sets
LayerScale γ to 1 and gives SelfAttention's output projection random weights, so the gradient
test checks connectivity rather than the (deliberately tiny) magnitude at init.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import vaekit as vk
from vaekit import blocks

torch.set_num_threads(1)


def _same(h: int) -> int:
    return h


def _half(h: int) -> int:
    return math.ceil(h / 2)


def _double(h: int) -> int:
    return 2 * h


@dataclass(frozen=True)
class Case:
    """A block under test: ``build(in_ch, out_ch)``; blocks that keep width ignore ``out_ch``."""

    id: str
    build: Callable[[int, int], nn.Module]
    keeps_channels: bool = False
    channel_multiple: int = 1  # in_ch is scaled by this (attention heads)
    out_size: Callable[[int], int] = _same

    def make(self, in_ch: int, out_ch: int) -> tuple[nn.Module, int, int]:
        in_ch *= self.channel_multiple
        out_ch = in_ch if self.keeps_channels else out_ch
        torch.manual_seed(0)
        return self.build(in_ch, out_ch), in_ch, out_ch


CASES = [
    Case("conv", lambda i, o: blocks.ConvNormAct(i, o)),
    Case(
        "conv_batch_relu_s2",
        lambda i, o: blocks.ConvNormAct(i, o, stride=2, norm="batch", act="relu"),
        out_size=_half,
    ),
    Case("conv_layer_gelu_k1", lambda i, o: blocks.ConvNormAct(i, o, 1, norm="layer", act="gelu")),
    Case(
        "conv_none_leaky",
        lambda i, o: blocks.ConvNormAct(
            i, o, norm="none", act="leaky_relu", act_kwargs={"negative_slope": 0.2}
        ),
    ),
    Case("se", lambda i, o: blocks.SqueezeExcitation(i), keeps_channels=True),
    Case("bottleneck", lambda i, o: blocks.ResidualBottleneck(i), keeps_channels=True),
    Case(
        "bottleneck_batch_plain",
        lambda i, o: blocks.ResidualBottleneck(
            i, ratio=2, se=False, layer_scale=None, norm="batch", act="relu", dropout=0.1
        ),
        keeps_channels=True,
    ),
    Case(
        "bottleneck_layer_tanh",
        lambda i, o: blocks.ResidualBottleneck(i, norm="layer", act="tanh", layer_scale=0.1),
        keeps_channels=True,
    ),
    Case("resblock_same", lambda i, o: blocks.ResBlock(i, i), keeps_channels=True),
    Case("resblock_proj", lambda i, o: blocks.ResBlock(i, o, dropout=0.1)),
    Case(
        "resblock_classes",
        lambda i, o: blocks.ResBlock(
            i, o, norm=nn.GroupNorm, act=functools.partial(nn.LeakyReLU, 0.2)
        ),
    ),
    Case("preact_same", lambda i, o: blocks.PreActResBlock(i, i), keeps_channels=True),
    Case("preact_proj", lambda i, o: blocks.PreActResBlock(i, o, norm="batch", dropout=0.1)),
    Case("attention", lambda i, o: blocks.SelfAttention(i), keeps_channels=True),
    Case(
        "attention_heads",
        lambda i, o: blocks.SelfAttention(i, heads=2, norm="layer"),
        keeps_channels=True,
        channel_multiple=2,
    ),
    Case(
        "attention_head_dim",
        lambda i, o: blocks.SelfAttention(i, heads=3, head_dim=4, norm="batch"),
        keeps_channels=True,
    ),
    Case("down", lambda i, o: blocks.Downsample(i, o), out_size=_half),
    Case(
        "down_same_group",
        lambda i, o: blocks.Downsample(i, i, norm="group", act="silu"),
        keeps_channels=True,
        out_size=_half,
    ),
    Case("up_bilinear", lambda i, o: blocks.Upsample(i, o), out_size=_double),
    Case(
        "up_nearest_same_batch",
        lambda i, o: blocks.Upsample(i, i, mode="nearest", norm="batch", act="relu"),
        keeps_channels=True,
        out_size=_double,
    ),
]
IDS = [c.id for c in CASES]
parametrize_cases = pytest.mark.parametrize("case", CASES, ids=IDS)


def perturb(module: nn.Module) -> nn.Module:
    """Undo the deliberate near-zero inits so every parameter gets a usable gradient."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, blocks.LayerScale):
                m.gamma.fill_(1.0)
            if isinstance(m, blocks.PreActResBlock):
                m.conv2.weight.copy_(0.1 * torch.randn(m.conv2.weight.shape, generator=gen))
            if isinstance(m, blocks.SelfAttention):
                m.proj.weight.copy_(0.3 * torch.randn(m.proj.weight.shape, generator=gen))
                m.proj.bias.copy_(0.1 * torch.randn(m.proj.bias.shape, generator=gen))
    return module


def randn(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------- generic block tests


@parametrize_cases
@settings(max_examples=15, deadline=None)
@given(
    in_ch=st.integers(1, 12),
    out_ch=st.integers(1, 12),
    h=st.one_of(st.sampled_from([7, 15, 28, 30]), st.integers(1, 32)),
    w=st.one_of(st.sampled_from([7, 15, 28, 30]), st.integers(1, 32)),
    batch=st.integers(1, 3),
)
def test_output_shape(case: Case, in_ch: int, out_ch: int, h: int, w: int, batch: int) -> None:
    # a norm over a single value (one 1x1 sample) is undefined; torch's GroupNorm refuses it
    assume(batch * h * w > 1)
    m, in_ch, out_ch = case.make(in_ch, out_ch)
    m.eval()  # BatchNorm cannot take train-mode statistics of a single 1x1 sample
    with torch.no_grad():
        y = m(torch.randn(batch, in_ch, h, w))
    assert y.shape == (batch, out_ch, case.out_size(h), case.out_size(w))
    assert y.dtype == torch.float32


@parametrize_cases
def test_gradients_reach_every_parameter(case: Case) -> None:
    m, in_ch, _ = case.make(4, 6)
    perturb(m).train()
    x = randn(2, in_ch, 9, 8).requires_grad_()
    y = m(x)
    (y * randn(*y.shape, seed=1)).sum().backward()  # random weights: a plain sum can be flat
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in m.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


@parametrize_cases
@pytest.mark.parametrize("kind", ["zeros", "ones", "big_normal"])
def test_finite_on_extreme_inputs(case: Case, kind: str) -> None:
    m, in_ch, _ = case.make(3, 5)
    m.train()
    shape = (2, in_ch, 7, 6)
    x = {
        "zeros": torch.zeros(shape),
        "ones": torch.ones(shape),
        "big_normal": randn(*shape, scale=10.0),
    }[kind].requires_grad_()
    y = m(x)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


@parametrize_cases
def test_channels_last_matches_contiguous(case: Case) -> None:
    m, in_ch, _ = case.make(4, 6)
    perturb(m).eval()
    x = randn(2, in_ch, 9, 7)
    with torch.no_grad():
        ref = m(x)
        y_input = m(x.to(memory_format=torch.channels_last))
        m.to(memory_format=torch.channels_last)
        y_both = m(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(y_input, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y_both, ref, atol=1e-5, rtol=1e-5)


@parametrize_cases
def test_compile_fullgraph_matches_eager(case: Case) -> None:
    m, in_ch, _ = case.make(4, 6)
    perturb(m).eval()
    x = randn(2, in_ch, 9, 7)
    torch._dynamo.reset()
    compiled = torch.compile(m, backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), m(x), atol=1e-6, rtol=1e-6)


@parametrize_cases
def test_wrong_channels_names_expected_and_got(case: Case) -> None:
    m, in_ch, _ = case.make(4, 6)
    with pytest.raises(ValueError, match=rf"{in_ch} channel.*got {in_ch + 1}"):
        m(torch.randn(1, in_ch + 1, 8, 8))
    with pytest.raises(ValueError, match="4-D"):
        m(torch.randn(in_ch, 8, 8))
    with pytest.raises(TypeError, match="floating-point"):
        m(torch.zeros(1, in_ch, 8, 8, dtype=torch.long))


def test_wrong_channels_under_compile_is_still_a_value_error() -> None:
    """Without fullgraph, dynamo falls back to eager for the raise and the ValueError surfaces.

    (With ``fullgraph=True`` dynamo wraps it in ``torch._dynamo.exc.Unsupported``, whose message
    still quotes the ValueError.)
    """
    torch._dynamo.reset()
    compiled = torch.compile(blocks.ResBlock(4, 6), backend="eager")
    with pytest.raises(ValueError, match=r"4 channel.*got 5"):
        compiled(torch.randn(1, 5, 6, 6))


@parametrize_cases
def test_bf16_autocast_is_finite(case: Case) -> None:
    m, in_ch, out_ch = case.make(4, 6)
    perturb(m).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(randn(2, in_ch, 5, 6))
    assert y.shape[:2] == (2, out_ch)
    assert torch.isfinite(y.float()).all()


# -------------------------------------------------------------------------------- attention


def test_attention_is_exact_identity_at_init() -> None:
    m = blocks.SelfAttention(8, heads=2)
    for x in (randn(2, 8, 5, 7), randn(1, 8, 4, 4, scale=10.0)):
        assert torch.equal(m(x), x)
        assert torch.equal(m(x.to(memory_format=torch.channels_last)), x)
    assert torch.count_nonzero(m.proj.weight) == 0 and torch.count_nonzero(m.proj.bias) == 0
    perturb(m)
    x = randn(2, 8, 5, 7)
    assert not torch.allclose(m(x), x)


def test_attention_mixes_positions() -> None:
    """Changing one pixel changes the output everywhere: attention is global."""
    m = perturb(blocks.SelfAttention(4)).eval()
    x = randn(1, 4, 6, 6)
    x2 = x.clone()
    x2[..., 0, 0] += 5.0
    delta = (m(x2) - m(x)).abs().sum(1)[0]
    assert (delta[1:, 1:] > 0).all()


def test_attention_heads_validation() -> None:
    with pytest.raises(ValueError, match=r"divisible by heads.*channels=10, heads=4"):
        blocks.SelfAttention(10, heads=4)
    m = blocks.SelfAttention(10, heads=4, head_dim=3)  # explicit width: no divisibility needed
    assert m.qkv.out_channels == 3 * 12 and m.proj.in_channels == 12
    with pytest.raises(ValueError, match="heads"):
        blocks.SelfAttention(8, heads=0)


# ------------------------------------------------------------------------------- resampling


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40))
def test_downsample_gives_ceil_sizes(h: int, w: int) -> None:
    y = blocks.Downsample(2, 3)(torch.randn(1, 2, h, w))
    assert y.shape[-2:] == (math.ceil(h / 2), math.ceil(w / 2))


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 16), w=st.integers(1, 16), th=st.integers(1, 40), tw=st.integers(1, 40))
def test_upsample_size_is_exact(mode: str, h: int, w: int, th: int, tw: int) -> None:
    y = blocks.Upsample(3, 2, mode=mode)(torch.randn(2, 3, h, w), size=(th, tw))
    assert y.shape == (2, 2, th, tw)


def test_odd_size_round_trip() -> None:
    """28 → 14 → 7 → 4 and back to 28, the decoder pattern for Fashion-MNIST."""
    x = torch.randn(1, 4, 28, 28)
    sizes = []
    for _ in range(3):
        sizes.append(tuple(x.shape[-2:]))
        x = blocks.Downsample(4, 4)(x)
    assert x.shape[-2:] == (4, 4)
    up = blocks.Upsample(4, 4)
    for size in reversed(sizes):
        x = up(x, size=size)
    assert x.shape[-2:] == (28, 28)
    assert [s[0] for s in sizes] == [28, 14, 7]


def test_upsample_compiles_with_size() -> None:
    m = blocks.Upsample(4, 3, mode="nearest").eval()
    x = randn(1, 4, 4, 4)
    torch._dynamo.reset()
    compiled = torch.compile(m, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x, size=(7, 7)), m(x, size=(7, 7)))


def test_dynamic_shape_compile_of_an_odd_size_round_trip() -> None:
    """``size=x.shape[-2:]`` is a tuple of SymInts under dynamic=True; it must not break."""

    class RoundTrip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.down = blocks.Downsample(2, 4)
            self.attn = perturb(blocks.SelfAttention(4, heads=2))
            self.up = blocks.Upsample(4, 2, mode="nearest")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.up(self.attn(self.down(x)), size=x.shape[-2:])

    net = RoundTrip().eval()
    torch._dynamo.reset()
    compiled = torch.compile(net, backend="eager", fullgraph=True, dynamic=True)
    for h, w in [(7, 9), (15, 28), (30, 5)]:
        x = randn(2, 2, h, w)
        y = compiled(x)
        assert y.shape == x.shape
        torch.testing.assert_close(y, net(x), atol=1e-6, rtol=1e-6)


def test_upsample_validation() -> None:
    with pytest.raises(ValueError, match=r"bilinear.*nearest.*'bicubic'"):
        blocks.Upsample(4, 4, mode="bicubic")
    up = blocks.Upsample(4, 4)
    with pytest.raises(ValueError, match="size"):
        up(torch.randn(1, 4, 3, 3), size=(0, 5))
    with pytest.raises(ValueError, match="size"):
        up(torch.randn(1, 4, 3, 3), size=7)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in up.modules())


def test_nearest_upsample_of_constant_is_constant_before_conv() -> None:
    """Resampling paths are linear and average-preserving: a constant map stays constant."""
    up = blocks.Upsample(2, 2, mode="nearest")
    with torch.no_grad():
        up.conv.weight.zero_()
    y = up(torch.full((1, 2, 3, 5), 0.7), size=(7, 11))
    torch.testing.assert_close(y, torch.full((1, 2, 7, 11), 0.7))
    down = blocks.Downsample(2, 2)
    with torch.no_grad():
        down.conv.weight.zero_()
    torch.testing.assert_close(down(torch.full((1, 2, 7, 7), 0.3)), torch.full((1, 2, 4, 4), 0.3))


def test_unnormalised_resampling_keeps_activation_scale() -> None:
    """Kaiming fan_in init: a stack of norm-free resamplers neither explodes nor vanishes."""
    torch.manual_seed(0)
    x = torch.randn(4, 16, 32, 32)
    chain = nn.Sequential(*(blocks.Downsample(16, 16) for _ in range(3)))
    chain.extend(blocks.Upsample(16, 16) for _ in range(3))
    with torch.no_grad():
        std = chain(x).std().item()
    assert 0.2 < std < 5.0


# ------------------------------------------------------------------------- other block facts


def test_bottleneck_near_identity_at_init_and_hidden_floor() -> None:
    m = blocks.ResidualBottleneck(16)
    assert m.hidden_channels == 8  # floor of 8, not 16 // 4
    assert blocks.ResidualBottleneck(4).hidden_channels == 4  # never wider than the input
    assert blocks.ResidualBottleneck(64).hidden_channels == 16
    x = randn(2, 16, 6, 6)
    assert (m(x) - x).abs().max() < 1e-4
    assert torch.equal(m.layer_scale.gamma, torch.full((16,), 1e-6))
    for off in (None, 0):
        assert isinstance(blocks.ResidualBottleneck(8, layer_scale=off).layer_scale, nn.Identity)


def test_resblock_skip_structure() -> None:
    assert isinstance(blocks.ResBlock(8, 8).skip, nn.Identity)
    skip = blocks.ResBlock(8, 16, norm="batch").skip
    assert isinstance(skip.conv, nn.Conv2d) and skip.conv.kernel_size == (1, 1)
    assert isinstance(skip.norm, nn.BatchNorm2d)


def test_preact_resblock_starts_as_its_skip_and_keeps_the_stream_scale() -> None:
    m = blocks.PreActResBlock(8, 8, norm="group", act="silu")
    x = torch.randn(2, 8, 6, 6)
    assert isinstance(m.skip, nn.Identity) and torch.equal(m(x), x)
    with torch.no_grad():
        nn.init.normal_(m.conv2.weight, std=0.1)  # as after some training
    # the branch sees a normalised input, the stream does not: f(c x) - c x = f(x) - x
    for c in (0.5, 3.0):
        torch.testing.assert_close(m(c * x) - c * x, m(x) - x, atol=1e-4, rtol=1e-4)
    proj = blocks.PreActResBlock(8, 16, norm="batch")
    assert isinstance(proj.skip, nn.Conv2d) and proj.skip.kernel_size == (1, 1)
    assert (
        proj.conv1.bias is None and blocks.PreActResBlock(8, 8, norm="none").conv1.bias is not None
    )


def test_conv_bias_only_without_norm() -> None:
    assert blocks.ConvNormAct(3, 8).conv.bias is None
    assert blocks.ConvNormAct(3, 8, norm="none").conv.bias is not None
    assert blocks.ConvNormAct(3, 8, norm=None).conv.bias is not None
    assert blocks.ConvNormAct(3, 8, bias=True).conv.bias is not None
    assert blocks.ConvNormAct(3, 8, kernel_size=5).conv.padding == (2, 2)


def test_squeeze_excitation_gates_in_unit_interval() -> None:
    se = blocks.SqueezeExcitation(16, reduction=4)
    assert se.hidden_channels == 8
    x = randn(2, 16, 5, 5).abs() + 0.1
    ratio = se(x) / x
    assert (ratio > 0).all() and (ratio < 1).all()
    assert torch.allclose(ratio, ratio[..., :1, :1].expand_as(ratio))  # one gate per channel


def test_layernorm2d_matches_layernorm_over_channels() -> None:
    ln = blocks.LayerNorm2d(6)
    with torch.no_grad():
        ln.weight.copy_(randn(6, seed=3))
        ln.bias.copy_(randn(6, seed=4))
    ref = nn.LayerNorm(6, eps=ln.eps)
    ref.load_state_dict(ln.state_dict())
    x = randn(2, 6, 5, 4, scale=3.0)
    expected = ref(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), expected, atol=1e-5, rtol=1e-5)
    y_cl = ln(x.to(memory_format=torch.channels_last))
    assert y_cl.is_contiguous(memory_format=torch.channels_last)
    assert ln(x).is_contiguous()


def test_gradcheck_double() -> None:
    torch.manual_seed(0)
    modules = [  # (module, input channels), eval mode so dropout/BatchNorm are deterministic
        (perturb(blocks.SelfAttention(4, heads=2)), 4),
        (blocks.ResBlock(3, 4), 3),
        (blocks.ResidualBottleneck(4, layer_scale=0.5), 4),
        (blocks.LayerNorm2d(3), 3),
    ]
    for m, in_ch in modules:
        m = m.double().eval()
        x = torch.randn(1, in_ch, 3, 3, dtype=torch.double, requires_grad=True)
        assert torch.autograd.gradcheck(m, (x,), eps=1e-6, atol=1e-5)
    up = blocks.Upsample(2, 3).double()
    x = torch.randn(1, 2, 2, 3, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: up(t, size=(5, 5)), (x,), eps=1e-6, atol=1e-5)


# -------------------------------------------------------------------------------- factories


def test_group_count_examples() -> None:
    expected = {1: 1, 2: 1, 3: 1, 6: 1, 8: 2, 12: 3, 32: 8, 64: 16, 100: 25, 128: 32, 256: 32}
    assert {c: blocks.group_count(c) for c in expected} == expected
    assert blocks.group_count(64, max_groups=8) == 8
    assert blocks.group_count(64, min_group_channels=1) == 32


@settings(max_examples=15, deadline=None)
@given(channels=st.integers(1, 4096), max_groups=st.integers(1, 64))
def test_group_count_properties(channels: int, max_groups: int) -> None:
    g = blocks.group_count(channels, max_groups)
    assert 1 <= g <= max_groups and channels % g == 0
    assert channels // g >= min(4, channels)
    better = [
        d
        for d in range(g + 1, max_groups + 1)
        if channels % d == 0 and channels // d >= min(4, channels)
    ]
    assert not better, f"{better} also qualify and are larger than {g}"
    assert isinstance(blocks.make_norm("group", channels), nn.GroupNorm)


@pytest.mark.parametrize("bad", [0, -3])
def test_group_count_rejects_bad_values(bad: int) -> None:
    with pytest.raises(ValueError, match=">= 1"):
        blocks.group_count(bad)
    with pytest.raises(TypeError):
        blocks.group_count(8.0)
    with pytest.raises(TypeError):
        blocks.group_count(True)


def test_norm_factory_resolution() -> None:
    assert isinstance(blocks.make_norm("group", 12), nn.GroupNorm)
    assert blocks.make_norm("GROUP", 12).num_groups == 3
    assert isinstance(blocks.make_norm("batch", 12), nn.BatchNorm2d)
    assert isinstance(blocks.make_norm("layer", 12), blocks.LayerNorm2d)
    assert isinstance(blocks.make_norm("none", 12), nn.Identity)
    assert isinstance(blocks.make_norm(None, 12), nn.Identity)
    gn = blocks.make_norm(nn.GroupNorm, 100)
    assert (gn.num_groups, gn.num_channels) == (25, 100)
    assert isinstance(blocks.make_norm(nn.LayerNorm, 5), blocks.LayerNorm2d)
    assert isinstance(blocks.make_norm(nn.InstanceNorm2d, 5), nn.InstanceNorm2d)
    gn2 = blocks.make_norm(functools.partial(nn.GroupNorm, 2), 6)
    assert (gn2.num_groups, gn2.num_channels) == (2, 6)
    assert set(blocks.NORMS) == {"group", "batch", "layer", "none"}


def test_act_factory_resolution() -> None:
    assert isinstance(blocks.make_act("silu"), nn.SiLU)
    assert isinstance(blocks.make_act("SiLU"), nn.SiLU)
    assert blocks.make_act("leaky_relu").negative_slope == 0.01  # PyTorch's default
    assert blocks.make_act("leaky_relu", negative_slope=0.2).negative_slope == 0.2
    assert blocks.make_act(nn.LeakyReLU, negative_slope=0.3).negative_slope == 0.3
    assert blocks.make_act(functools.partial(nn.LeakyReLU, 0.2)).negative_slope == 0.2
    assert blocks.make_act("gelu", approximate="tanh").approximate == "tanh"
    assert isinstance(blocks.make_act("none"), nn.Identity)
    assert isinstance(blocks.make_act(None), nn.Identity)
    assert isinstance(blocks.make_act("tanh"), nn.Tanh)
    a, b = blocks.get_act_layer("relu")(), blocks.get_act_layer("relu")()
    assert a is not b
    assert set(blocks.ACTS) == {"silu", "relu", "leaky_relu", "gelu", "tanh", "none"}


def test_unknown_names_list_valid_ones() -> None:
    with pytest.raises(ValueError, match="gorup") as err:
        blocks.get_norm_layer("gorup")
    assert all(name in str(err.value) for name in blocks.NORMS)
    with pytest.raises(ValueError, match="swish") as err:
        blocks.get_act_layer("swish")
    assert all(name in str(err.value) for name in blocks.ACTS)
    with pytest.raises(ValueError, match=re.escape(str(list(blocks.NORMS)))):
        blocks.ResBlock(4, 4, norm="instance")
    with pytest.raises(ValueError, match="relu"):
        blocks.ConvNormAct(4, 4, act="prelu")


@pytest.mark.parametrize("bad", [3, 1.5, nn.ReLU(), int, ["silu"]])
def test_wrong_types_raise_type_error(bad: object) -> None:
    with pytest.raises(TypeError):
        blocks.get_act_layer(bad)
    norm_bad = nn.GroupNorm(2, 4) if isinstance(bad, nn.Module) else bad
    with pytest.raises(TypeError):
        blocks.get_norm_layer(norm_bad)


def test_factory_type_errors_are_explained() -> None:
    with pytest.raises(TypeError, match="instance"):
        blocks.get_norm_layer(nn.BatchNorm2d(4))
    with pytest.raises(TypeError, match=r"must return an nn\.Module"):
        blocks.make_norm(lambda c: c * 2, 4)
    with pytest.raises(TypeError, match=r"must return an nn\.Module"):
        blocks.make_act(lambda: torch.relu)
    with pytest.raises(TypeError, match="tanh"):
        blocks.get_act_layer("tanh", negative_slope=0.2)
    with pytest.raises(TypeError, match="in_ch must be an int"):
        blocks.ResBlock(4.0, 8)


def test_resolution_happens_once_at_construction() -> None:
    calls = {"norm": 0, "act": 0}

    def norm_factory(c: int) -> nn.Module:
        calls["norm"] += 1
        return nn.GroupNorm(1, c)

    def act_factory() -> nn.Module:
        calls["act"] += 1
        return nn.SiLU()

    m = blocks.ResBlock(4, 6, norm=norm_factory, act=act_factory)
    built = dict(calls)
    assert built == {"norm": 3, "act": 2}  # conv1, conv2, skip norms; conv1 + output acts
    m(torch.randn(1, 4, 5, 5))
    assert calls == built


def test_public_names_are_exported() -> None:
    for name in blocks.__all__:
        assert hasattr(vk.blocks, name), name
    for name in ("ConvNormAct", "SqueezeExcitation", "ResidualBottleneck", "ResBlock"):
        assert name in blocks.__all__
    assert {"SelfAttention", "Downsample", "Upsample", "make_norm", "make_act"} <= set(
        blocks.__all__
    )


# ------------------------------------------------------------- every registered body block
# Parametrised over the registry: a block is tested here the moment it is registered (also a
# user's: tests/test_block_registry.py runs check_block_contract on one defined in the test).

REGISTERED = vk.blocks.available()
parametrize_registered = pytest.mark.parametrize("name", REGISTERED)
NORM_ACTS = [("group", "silu"), ("batch", "relu"), ("layer", "gelu"), ("none", "leaky_relu")]


def create(name: str, in_ch: int, out_ch: int, norm: str = "group", act: str = "silu"):
    """``vk.blocks.create`` with ``out_ch`` only where the block can change the width."""
    out_ch = out_ch if vk.blocks.traits(name).changes_channels else in_ch
    torch.manual_seed(0)
    return vk.blocks.create(name, in_ch, out_ch, norm=norm, act=act), out_ch


def wake(module: nn.Module) -> nn.Module:
    """Give (near-)zero parameters random values: zero-init branches (LayerScale, a zeroed last
    conv) would otherwise hide the branch from the comparisons and gradients below."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            if p.abs().max() < 1e-3:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return module


def check_shape(name: str, in_ch: int, out_ch: int, h: int, w: int, norm: str, act: str) -> None:
    m, out_ch = create(name, in_ch, out_ch, norm, act)
    assert isinstance(m, nn.Module)
    m.eval()  # BatchNorm cannot take train-mode statistics of a single 1x1 sample
    with torch.no_grad():
        y = m(randn(2, in_ch, h, w))
    assert y.shape == (2, out_ch, h, w)  # a body block keeps the spatial size
    assert torch.isfinite(y).all()


def check_width_change(name: str) -> None:
    if vk.blocks.traits(name).changes_channels:
        assert vk.blocks.create(name, 4, 6)(randn(1, 4, 5, 5)).shape[1] == 6
    else:
        with pytest.raises(ValueError, match=rf"'{name}' keeps its width.*got 4 and 6"):
            vk.blocks.create(name, 4, 6)


def check_channels_last(name: str) -> None:
    m, _ = create(name, 4, 6)
    wake(m).eval()
    x = randn(2, 4, 9, 7)
    with torch.no_grad():
        ref = m(x)
        y_input = m(x.to(memory_format=torch.channels_last))
        m.to(memory_format=torch.channels_last)
        y_both = m(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(y_input, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y_both, ref, atol=1e-5, rtol=1e-5)


def check_compile(name: str) -> None:
    m, _ = create(name, 4, 6)
    wake(m).eval()
    x = randn(2, 4, 9, 7)
    torch._dynamo.reset()
    compiled = torch.compile(m, backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), m(x), atol=1e-6, rtol=1e-6)


def check_bad_input(name: str) -> None:
    """A ValueError naming the expected and the actual channels, a ValueError for a 3-D
    tensor, a TypeError for an integer tensor (built-ins: vaekit._validation.check_image)."""
    m, _ = create(name, 4, 6)
    with pytest.raises(ValueError, match=r"\b4\b.*\b5\b"):
        m(torch.randn(1, 5, 8, 8))
    with pytest.raises(ValueError):
        m(torch.randn(4, 8, 8))
    with pytest.raises(TypeError, match="float"):
        m(torch.zeros(1, 4, 8, 8, dtype=torch.long))


def check_gradients(name: str) -> None:
    m, _ = create(name, 4, 6)
    wake(m).train()
    x = randn(2, 4, 9, 8).requires_grad_()
    y = m(x)
    (y * randn(*y.shape, seed=1)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{pname} got no gradient"


def check_block_contract(name: str) -> None:
    """Everything a registered body block must do (what the parametrised tests below check)."""
    for norm, act in NORM_ACTS:
        check_shape(name, 3, 5, 7, 6, norm, act)
    check_width_change(name)
    check_channels_last(name)
    check_compile(name)
    check_bad_input(name)
    check_gradients(name)


@parametrize_registered
@settings(max_examples=10, deadline=None)
@given(
    in_ch=st.integers(1, 12),
    out_ch=st.integers(1, 12),
    h=st.integers(1, 20),
    w=st.integers(1, 20),
    norm_act=st.sampled_from(NORM_ACTS),
)
def test_registered_block_keeps_size_and_gives_out_ch(name, in_ch, out_ch, h, w, norm_act):
    check_shape(name, in_ch, out_ch, h, w, *norm_act)


@parametrize_registered
def test_registered_block_width_change(name: str) -> None:
    check_width_change(name)


@parametrize_registered
def test_registered_block_channels_last(name: str) -> None:
    check_channels_last(name)


@parametrize_registered
def test_registered_block_compiles_fullgraph(name: str) -> None:
    check_compile(name)


@parametrize_registered
def test_registered_block_bad_input(name: str) -> None:
    check_bad_input(name)


@parametrize_registered
def test_registered_block_gradients(name: str) -> None:
    check_gradients(name)


@parametrize_registered
def test_registered_block_is_the_class_it_names(name: str) -> None:
    m = vk.blocks.create(name, 4, 4)
    assert type(m) is vk.blocks.get(name)
    assert vk.blocks.name_of(m) == name
    assert vk.blocks.traits(name) == vk.blocks.BlockTraits(
        residual=type(m).residual, changes_channels=type(m).changes_channels
    )


def test_builtin_blocks_and_their_traits() -> None:
    expected = {
        "conv": (blocks.ConvNormAct, False, True),
        "resblock": (blocks.ResBlock, True, True),
        "bottleneck": (blocks.ResidualBottleneck, True, False),
        "preact": (blocks.PreActResBlock, True, True),
    }
    assert set(expected) <= set(REGISTERED)
    for name, (cls, residual, changes) in expected.items():
        assert vk.blocks.get(name) is cls
        assert vk.blocks.traits(name) == vk.blocks.BlockTraits(residual, changes)
    assert "attention" not in REGISTERED and "se" not in REGISTERED  # not body blocks


def test_bottleneck_takes_both_constructor_forms() -> None:
    torch.manual_seed(0)
    old = blocks.ResidualBottleneck(32, ratio=2, se=False)
    torch.manual_seed(0)
    new = vk.blocks.create("bottleneck", 32, 32, norm="group", act="silu", ratio=2, se=False)
    assert old.hidden_channels == new.hidden_channels == 16
    for (k, a), (k2, b) in zip(old.state_dict().items(), new.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert blocks.ResidualBottleneck(channels=8).in_ch == blocks.ResidualBottleneck(8, 8).out_ch
    with pytest.raises(ValueError, match=r"keeps its width.*got 4; pass .* as ratio=4"):
        blocks.ResidualBottleneck(32, 4)  # the old positional ratio, now out_ch
    with pytest.raises(TypeError):
        blocks.ResidualBottleneck(32, 32, 4)  # everything after out_ch is keyword-only
