"""Blocks by name: the registry API, configs naming blocks (one or one per level, with options),
a block defined here working end to end, and every preset and saved config still building the
network it built before the registry (tests/preset_networks.json)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

import vaekit as vk
from tests.conftest import tiny_config
from tests.test_blocks import check_block_contract

FIXTURE = json.loads((Path(__file__).parent / "preset_networks.json").read_text())
BUILTIN = ("bottleneck", "conv", "preact", "resblock")


class ConvNeXtBlock(nn.Module):
    """A block "of a user's own" (ConvNeXt, Liu et al. 2022): depthwise 7x7 -> norm -> 1x1
    expand -> act -> 1x1 -> LayerScale, plus the input. It sets neither trait: the defaults
    (residual, changes channels) are what it is, except that it keeps its width."""

    changes_channels = False

    def __init__(self, in_ch, out_ch, *, norm="layer", act="gelu", expansion=4, dropout=0.0):
        super().__init__()
        if in_ch != out_ch:
            raise ValueError(f"ConvNeXtBlock keeps its width, got {in_ch} -> {out_ch}")
        self.channels = in_ch
        self.dwconv = nn.Conv2d(in_ch, in_ch, 7, padding=3, groups=in_ch)
        self.norm = vk.blocks.make_norm(norm, in_ch)
        self.pw1 = nn.Conv2d(in_ch, expansion * in_ch, 1)
        self.act = vk.blocks.make_act(act)
        self.drop = nn.Dropout(dropout)
        self.pw2 = nn.Conv2d(expansion * in_ch, in_ch, 1)
        self.gamma = nn.Parameter(torch.full((in_ch,), 1e-6))

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected (B, {self.channels} channels, H, W), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"expected a floating-point tensor, got {x.dtype}")
        h = self.pw2(self.drop(self.act(self.pw1(self.norm(self.dwconv(x))))))
        return x + self.gamma[:, None, None] * h


class DoubleConv(nn.Sequential):
    """A plain (non-residual) user block: the resampling next to it gets norm + act."""

    residual = False

    def __init__(self, in_ch, out_ch, *, norm, act):
        super().__init__(
            vk.blocks.ConvNormAct(in_ch, out_ch, norm=norm, act=act),
            vk.blocks.ConvNormAct(out_ch, out_ch, norm=norm, act=act),
        )


@pytest.fixture
def user_blocks():
    vk.blocks.register("test_convnext", aliases=("test_cnx",))(ConvNeXtBlock)
    vk.blocks.register("test_double_conv")(DoubleConv)
    yield
    vk.blocks.unregister("test_convnext")
    vk.blocks.unregister("test_double_conv")


def user_config(**overrides) -> vk.VAEConfig:
    return tiny_config(**{"block": "test_convnext", "norm": "layer", "act": "gelu", **overrides})


# ------------------------------------------------------------------------- registry API


def test_available_get_traits_name_of():
    assert set(BUILTIN) <= set(vk.blocks.available())
    assert vk.blocks.get("RESBLOCK") is vk.blocks.ResBlock  # names ignore case
    assert vk.blocks.name_of(vk.blocks.PreActResBlock(4, 4)) == "preact"
    assert vk.blocks.name_of(vk.blocks.SelfAttention(4)) is None
    assert vk.blocks.traits("conv") == vk.blocks.BlockTraits(residual=False, changes_channels=True)


def test_unknown_name_lists_known_ones_and_close_matches():
    with pytest.raises(ValueError, match=r"unknown block 'botleneck'.*'resblock'.*'bottleneck'"):
        vk.blocks.create("botleneck", 8, 8)
    with pytest.raises(ValueError, match="unknown block 'nope'"):
        vk.blocks.get("nope")
    with pytest.raises(ValueError, match="unknown block"):
        vk.blocks.unregister("nope")


def test_create_checks_channels_and_options():
    with pytest.raises(TypeError, match="in_ch must be an int"):
        vk.blocks.create("conv", 4.0, 8)
    with pytest.raises(ValueError, match="out_ch must be >= 1"):
        vk.blocks.create("conv", 4, 0)
    with pytest.raises(ValueError, match=r"'bottleneck' keeps its width.*got 8 and 16"):
        vk.blocks.create("bottleneck", 8, 16)
    with pytest.raises(ValueError, match=r"no option 'ratoi'.*did you mean 'ratio'"):
        vk.blocks.create("bottleneck", 8, 8, ratoi=2)
    with pytest.raises(ValueError, match=r"'resblock' \(ResBlock\) has no option 'se'.*'dropout'"):
        vk.blocks.create("resblock", 8, 8, se=True)
    conv = vk.blocks.create("conv", 4, 8, kernel_size=1, norm="batch", act="relu")
    assert conv.conv.kernel_size == (1, 1) and isinstance(conv.norm, nn.BatchNorm2d)
    with pytest.raises(TypeError, match="options must be a dict"):
        vk.blocks.block_options("conv", [("kernel_size", 1)])


def test_register_refuses_clashes_and_misfits(user_blocks):
    with pytest.raises(ValueError, match="already registered"):
        vk.blocks.register("Test_ConvNeXt")(ConvNeXtBlock)  # names ignore case
    with pytest.raises(ValueError, match="already registered"):
        vk.blocks.register("resblock")(ConvNeXtBlock)

    class NoNormAct(nn.Module):
        def __init__(self, in_ch, out_ch):
            super().__init__()

    with pytest.raises(
        TypeError, match=r"must take \(in_ch, out_ch, \*, norm, act.*no norm or act"
    ):
        vk.blocks.register("no_norm_act")(NoNormAct)

    class OneChannelArg(nn.Module):
        def __init__(self, channels, *, norm, act):
            super().__init__()

    with pytest.raises(TypeError, match=r"must take \(in_ch, out_ch"):
        vk.blocks.register("one_channel_arg")(OneChannelArg)

    class BadTrait(ConvNeXtBlock):
        residual = "yes"

    with pytest.raises(TypeError, match="residual must be a bool, got str"):
        vk.blocks.register("bad_trait")(BadTrait)
    assert not {"no_norm_act", "one_channel_arg", "bad_trait"} & set(vk.blocks.available())

    @vk.blocks.register("returns_a_tensor")
    def returns_a_tensor(in_ch, out_ch, *, norm, act):
        return torch.zeros(1)

    try:
        with pytest.raises(TypeError, match=r"must return an nn\.Module, got Tensor"):
            vk.blocks.create("returns_a_tensor", 4, 4)
    finally:
        vk.blocks.unregister("returns_a_tensor")


def test_a_factory_function_gets_the_default_traits():
    @vk.blocks.register("test_factory")
    def factory(in_ch, out_ch, *, norm, act, **options):
        return vk.blocks.ResBlock(in_ch, out_ch, norm=norm, act=act, **options)

    try:
        assert vk.blocks.traits("test_factory") == vk.blocks.BlockTraits(True, True)
        assert vk.blocks.block_options("test_factory", {"anything": 1}) == {"anything": 1}
        m = vk.blocks.create("test_factory", 4, 6, dropout=0.1)
        assert isinstance(m, vk.blocks.ResBlock) and m.dropout.p == 0.1
        assert vk.blocks.name_of(m) == "resblock"
    finally:
        vk.blocks.unregister("test_factory")


def test_a_user_block_meets_the_block_contract(user_blocks):
    # the checks test_blocks.py runs on every registered block
    check_block_contract("test_convnext")
    check_block_contract("test_double_conv")


# ---------------------------------------------------------------- configs naming blocks


def test_config_stores_the_registry_spelling_and_one_name_per_level():
    cfg = tiny_config(block="ResBlock")
    assert cfg.block == "resblock" and cfg == tiny_config(block="resblock")
    mixed = tiny_config(block=["conv", "Bottleneck"])
    assert mixed.block == ("conv", "bottleneck") and mixed.blocks == ("conv", "bottleneck")
    assert tiny_config(block="preact").blocks == ("preact", "preact")
    assert vk.VAEConfig.from_dict(mixed.to_dict()) == mixed
    assert json.loads(json.dumps(mixed.to_dict()))["block"] == ["conv", "bottleneck"]


@settings(max_examples=20, deadline=None)
@given(names=st.lists(st.sampled_from(BUILTIN), min_size=1, max_size=3))
def test_each_level_gets_its_block_and_resampling_follows_its_traits(names):
    widths = (4, 8, 8)[: len(names)]
    cfg = tiny_config(widths=widths, block=tuple(names), depth=1, norm="group")
    enc, dec = vk.Encoder(cfg), vk.Decoder(cfg)
    for level, name in enumerate(names):
        cls = vk.blocks.get(name)
        assert type(enc.stages[level][0]) is cls
        up = dec.ups[len(names) - 1 - level]  # the decoder's levels run bottom-up
        assert type(dec.stages[len(names) - 1 - level][0]) is cls
        plain = not vk.blocks.traits(name).residual
        for resample in (enc.downs[level], up):
            assert isinstance(resample.norm, nn.GroupNorm) == plain, (name, resample)
            assert isinstance(resample.act, nn.SiLU) == plain
    assert type(enc.mid[0]) is type(dec.mid[0]) is vk.blocks.get(names[-1])
    x = torch.rand(2, *cfg.data_shape)
    assert vk.VAE(cfg)(x).recon.shape == x.shape


def test_block_kwargs_one_dict_or_one_per_level():
    cfg = tiny_config(block="resblock", block_kwargs={"dropout": 0.2})
    assert all(s[0].dropout.p == 0.2 for s in vk.Encoder(cfg).stages)
    cfg = tiny_config(
        block=("resblock", "bottleneck"), block_kwargs=({}, {"ratio": 2, "se": False})
    )
    assert cfg.block_options(0) == {}
    assert cfg.block_options(1) == {"ratio": 2, "se": False, "layer_scale": 1e-6}
    enc = vk.Encoder(cfg)
    assert enc.stages[1][0].hidden_channels == 8 and isinstance(enc.stages[1][0].se, nn.Identity)
    assert vk.VAEConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match=r"block_kwargs \(one dict for every level; give one"):
        tiny_config(block=("resblock", "bottleneck"), block_kwargs={"ratio": 2})
    with pytest.raises(ValueError, match=r"level"):
        cfg.block_options(2)


def test_flat_fields_are_aliases_of_the_bottleneck_options():
    flat = tiny_config(block="bottleneck", bottleneck_ratio=2, se=False, layer_scale=None)
    kw = tiny_config(
        block="bottleneck", block_kwargs={"ratio": 2, "se": False, "layer_scale": None}
    )
    assert (
        flat.block_options(0)
        == kw.block_options(0)
        == {
            "ratio": 2,
            "se": False,
            "layer_scale": None,
        }
    )
    torch.manual_seed(0)
    a = vk.VAE(flat).state_dict()
    torch.manual_seed(0)
    b = vk.VAE(kw).state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    # the same value twice is fine, two values are not
    tiny_config(block="bottleneck", bottleneck_ratio=2, block_kwargs={"ratio": 2})
    with pytest.raises(ValueError, match=r"se=False and block_kwargs se=True disagree"):
        tiny_config(block="bottleneck", se=False, block_kwargs={"se": True})
    # the aliases fill only bottleneck levels; other blocks never saw them
    assert tiny_config(block="resblock", bottleneck_ratio=2, se=False).block_options(0) == {}


def test_dropout_reaches_the_blocks_that_take_it(user_blocks):
    assert tiny_config(block="resblock", dropout=0.1).block_options(0) == {"dropout": 0.1}
    assert tiny_config(block="conv", dropout=0.1).block_options(0) == {}  # as before: no dropout
    assert user_config(dropout=0.1).block_options(1) == {"dropout": 0.1}
    assert user_config().block_options(1) == {}  # 0 (the default) leaves the block's default
    with pytest.raises(ValueError, match=r"dropout=0\.1 and block_kwargs dropout=0\.3 disagree"):
        tiny_config(block="resblock", dropout=0.1, block_kwargs={"dropout": 0.3})


# ----------------------------------------------------------------- a user block end to end


def test_user_block_in_a_config_compiled_saved_and_loaded(user_blocks, tmp_path):
    cfg = user_config(block="test_cnx", block_kwargs={"expansion": 2}, latent="spatial")
    assert cfg.block == "test_convnext"  # the alias is stored as the registered name
    vae = vk.VAE(cfg)
    blocks = [m for m in vae.modules() if isinstance(m, ConvNeXtBlock)]
    assert len(blocks) == 2 * 2 + 2  # depth 1 on 2 levels in encoder and decoder, 2 mids
    assert all(b.pw1.out_channels == 2 * b.channels for b in blocks)
    assert isinstance(vae.encoder.downs[0].norm, nn.Identity)  # residual by default: linear
    with torch.no_grad():
        for b in blocks:
            b.gamma.fill_(0.5)  # as after training: the blocks matter
    vae.eval()
    x = torch.rand(3, *cfg.data_shape)
    ref = vae(x)
    torch._dynamo.reset()
    compiled = torch.compile(vae, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x).recon, ref.recon)

    path = tmp_path / "vae.safetensors"
    vae.save(path)
    again = vk.VAE.load(path).eval()
    assert again.config == cfg
    assert torch.equal(again(x).recon, ref.recon)


def test_per_level_user_and_builtin_blocks(user_blocks):
    cfg = user_config(block=("test_double_conv", "test_convnext"), norm="group")
    enc = vk.Encoder(cfg)
    assert isinstance(enc.stages[0][0], DoubleConv) and isinstance(enc.stages[1][0], ConvNeXtBlock)
    assert isinstance(enc.downs[0].norm, nn.GroupNorm)  # DoubleConv says residual = False
    assert isinstance(enc.downs[1].norm, nn.Identity)
    out = vk.VAE(cfg)(torch.rand(2, *cfg.data_shape))
    assert torch.isfinite(out.recon).all()


def test_a_file_naming_an_unregistered_block_says_what_to_import(user_blocks, tmp_path):
    cfg = user_config()
    path = tmp_path / "vae.safetensors"
    vk.VAE(cfg).save(path)
    data = cfg.to_dict()
    vk.blocks.unregister("test_convnext")
    try:
        with pytest.raises(ValueError, match=r"'test_convnext'.*vk\.blocks\.register"):
            vk.VAEConfig.from_dict(data)
        with pytest.raises(
            ValueError, match=r"invalid: block: unknown block 'test_convnext'.*import"
        ):
            vk.VAE.load(path)
    finally:
        vk.blocks.register("test_convnext", aliases=("test_cnx",))(ConvNeXtBlock)
    assert vk.VAE.load(path).config == cfg  # registered again: loads


# ------------------------------------------- the networks of every preset and saved config


def signature(vae: nn.Module) -> dict:
    """What tests/preset_networks.json recorded (see its "about")."""
    sd = vae.state_dict()

    def digest(lines):
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()

    return {
        "params": sum(p.numel() for p in vae.parameters()),
        "state_keys": len(sd),
        "keys_sha256": digest(list(sd)),
        "keys_shapes_sha256": digest(f"{k}:{tuple(v.shape)}" for k, v in sd.items()),
        # the network's modules; the prior (a VAE submodule since priors landed, StandardNormal
        # with no weights by default) is not part of the encoder/decoder this fixture pins
        "modules_sha256": digest(
            f"{n}:{type(m).__name__}"
            for n, m in vae.named_modules()
            if n != "prior" and not n.startswith("prior.")
        ),
    }


def test_the_fixture_covers_every_preset():
    missing = set(vk.presets.available()) - set(FIXTURE["presets"])
    assert not missing, f"record {sorted(missing)} in tests/preset_networks.json (signature())"


@pytest.mark.parametrize("name", sorted(FIXTURE["presets"]))
def test_every_preset_builds_the_network_it_built_before(name):
    with torch.device("meta"):  # shapes only: the 100 M-parameter preset costs nothing
        vae = vk.presets.build(name)
    assert signature(vae) == FIXTURE["presets"][name]


@pytest.mark.parametrize("name", sorted(FIXTURE["configs"]))
def test_saved_configs_load_and_build_the_network_they_built_before(name):
    entry = dict(FIXTURE["configs"][name])
    old = entry.pop("config")
    assert "block_kwargs" not in old  # written before the field existed
    cfg = vk.VAEConfig.from_dict(old)
    assert {k: v for k, v in cfg.to_dict().items() if k != "block_kwargs"} == old
    with torch.device("meta"):
        assert signature(vk.VAE(cfg)) == entry


def test_a_checkpoint_written_before_block_kwargs_loads(tmp_path):
    from safetensors.torch import save_file

    old = FIXTURE["configs"]["bottleneck-options"]["config"]
    torch.manual_seed(0)
    vae = vk.VAE(vk.VAEConfig.from_dict(old)).eval()
    state = {k: v.contiguous() for k, v in vae.state_dict().items()}
    meta = {"format": "vaekit.VAE/1", "vaekit_version": "0.1.0", "config": json.dumps(old)}
    path = tmp_path / "old.safetensors"
    save_file(state, str(path), metadata=meta)
    loaded = vk.VAE.load(path).eval()
    assert loaded.config.block_kwargs == {} and loaded.config.bottleneck_ratio == 2
    assert loaded.config.block_options(0) == {
        "ratio": 2,
        "se": False,
        "layer_scale": None,
        "dropout": 0.1,
    }
    x = torch.rand(2, 1, 16, 16)
    assert torch.equal(loaded(x).recon, vae(x).recon)
