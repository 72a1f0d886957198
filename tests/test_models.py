"""Encoder / Decoder / VAE: shapes over random configs, numerics at step 0, compile,
channels_last, persistence and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vaekit as vk
from tests.conftest import tiny_config

# every registered body block, so a newly registered one is built into whole models too
BLOCK_NAMES = vk.blocks.available()


@st.composite
def configs(draw):
    n_levels = draw(st.integers(1, 3))
    widths = tuple(draw(st.sampled_from([4, 8, 12])) for _ in range(n_levels))
    h = draw(st.sampled_from([8, 9, 16, 28, 30]))
    w = draw(st.sampled_from([h, h, 12, 17]))
    latent = draw(st.sampled_from(["flat", "spatial"]))
    base = vk.VAEConfig(
        in_channels=1, image_size=(h, w), widths=widths, attention_at=(), latent=latent
    )
    attention_at = draw(st.lists(st.sampled_from(base.resolutions), max_size=1, unique=True))
    one_block = st.sampled_from(BLOCK_NAMES)
    return base.replace(
        in_channels=draw(st.sampled_from([1, 3])),
        depth=draw(st.integers(0, 2)),
        block=draw(st.one_of(one_block, st.tuples(*[one_block] * n_levels))),
        attention_at=tuple(attention_at),
        latent_dim=draw(st.integers(1, 6)),
        latent_channels=draw(st.integers(1, 4)),
        norm=draw(st.sampled_from(["group", "batch", "layer", "none"])),
        act=draw(st.sampled_from(["silu", "relu", "leaky_relu", "gelu", "tanh"])),
        variance=draw(st.sampled_from(["none", "pixel", "global"])),
        output=draw(st.sampled_from(["sigmoid", "identity"])),
    )


@given(cfg=configs(), batch=st.integers(1, 3))
def test_shapes_over_random_configs(cfg, batch):
    if cfg.norm == "batch":
        batch = max(batch, 2)  # BatchNorm cannot train on one value per channel (1x1 grids)
    vae = vk.VAE(cfg)
    x = torch.rand(batch, *cfg.data_shape)
    out = vae(x)
    assert out.recon.shape == x.shape
    assert out.z.shape == (batch, *cfg.latent_shape) == (batch, *vae.latent_shape)
    assert out.posterior.mean.shape == out.posterior.logvar.shape == out.z.shape
    if cfg.variance == "none":
        assert out.recon_logvar is None
    else:
        assert out.recon_logvar.shape == x.shape
    if cfg.output == "sigmoid":
        assert out.recon.min() >= 0 and out.recon.max() <= 1
    assert vk.Encoder(cfg)(x).mean.shape == (batch, *cfg.latent_shape)
    assert vk.Decoder(cfg)(torch.randn(batch, *cfg.latent_shape)).shape == x.shape


@pytest.mark.parametrize("block", BLOCK_NAMES)
@pytest.mark.parametrize("latent", ["flat", "spatial"])
@pytest.mark.parametrize("variance", ["none", "pixel", "global"])
def test_gradients_reach_every_parameter(block, latent, variance):
    cfg = tiny_config(block=block, latent=latent, variance=variance, attention_at=(8,))
    vae = vk.VAE(cfg)
    # zero-initialised parts (attention output projection, pixel-logvar half of the output
    # conv) block gradients to what sits before them at init; wake them up first
    with torch.no_grad():
        for p in vae.parameters():
            if p.abs().max() == 0:
                p.normal_(0.0, 0.1)
    out = vae(torch.rand(2, *cfg.data_shape))
    loss = out.recon.mean() + out.posterior.kl().mean()
    if out.recon_logvar is not None:
        loss = loss + out.recon_logvar.square().mean()
    loss.backward()
    for name, p in vae.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, f"zero gradient for {name}"


@pytest.mark.parametrize("norm", ["group", "batch", "layer", "none"])
@pytest.mark.parametrize("block", BLOCK_NAMES)
@pytest.mark.parametrize("fill", ["zeros", "ones", "noise"])
def test_step0_is_finite_for_extreme_inputs(norm, block, fill):
    cfg = tiny_config(norm=norm, block=block, variance="pixel", attention_at=(8,))
    vae = vk.VAE(cfg)
    x = {
        "zeros": torch.zeros(4, *cfg.data_shape),
        "ones": torch.ones(4, *cfg.data_shape),
        "noise": torch.randn(4, *cfg.data_shape) * 10.0,
    }[fill]
    out = vae(x)
    q = out.posterior
    # heads start near zero: q(z|x) ~ N(0, I) whatever the input
    assert q.mean.abs().max() < 1.0 and q.logvar.abs().max() < 1.0
    loss = (out.recon - x).square().mean() + q.kl().mean() + out.recon_logvar.mean()
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in vae.parameters() if p.grad is not None)


def test_logvar_is_clamped():
    cfg = tiny_config(logvar_range=(-3.0, 2.0), variance="pixel")
    vae = vk.VAE(cfg)
    with torch.no_grad():
        vae.encoder.head[1].bias.fill_(100.0)
        vae.decoder.out_conv.bias.fill_(-100.0)
    out = vae(torch.rand(2, *cfg.data_shape))
    assert out.posterior.logvar.max() == 2.0
    assert out.recon_logvar.min() == -3.0


@pytest.mark.parametrize("latent", ["flat", "spatial"])
def test_channels_last_matches(latent):
    cfg = tiny_config(latent=latent, block="bottleneck", attention_at=(8,), norm="layer")
    vae = vk.VAE(cfg).eval()
    x = torch.rand(2, *cfg.data_shape)
    ref = vae(x).recon
    vae_cl = vae.to(memory_format=torch.channels_last)
    got = vae_cl(x.to(memory_format=torch.channels_last)).recon
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("latent", ["flat", "spatial"])
def test_compiles_without_graph_breaks(latent):
    cfg = tiny_config(latent=latent, attention_at=(8,), block="bottleneck", variance="global")
    vae = vk.VAE(cfg).eval()
    x = torch.rand(2, *cfg.data_shape)
    compiled = torch.compile(vae, backend="eager", fullgraph=True)
    out, ref = compiled(x), vae(x)
    assert isinstance(out, vk.VAEOutput)
    torch.testing.assert_close(out.recon, ref.recon)
    torch.testing.assert_close(out.posterior.logvar, ref.posterior.logvar)


@pytest.mark.parametrize("latent", ["flat", "spatial"])
def test_compiled_training_forward_takes_any_batch_size(latent):
    # the posterior sample under a symbolic batch size: a compiled model meets a second batch
    # size at the end of an epoch (torch.randn(..., generator=None) broke that once)
    cfg = tiny_config(latent=latent)
    vae = vk.VAE(cfg).train()
    compiled = torch.compile(vae, backend="eager", fullgraph=True, dynamic=True)
    for batch in (3, 5):
        x = torch.rand(batch, *cfg.data_shape)
        torch.manual_seed(batch)
        out = compiled(x)
        torch.manual_seed(batch)
        ref = vae(x)
        assert out.z.shape == (batch, *vae.latent_shape)
        torch.testing.assert_close(out.z, ref.z)  # the same draws as eager
        torch.testing.assert_close(out.recon, ref.recon)


def test_train_samples_eval_is_deterministic(tiny_cfg):
    vae = vk.VAE(tiny_cfg)
    x = torch.rand(2, *tiny_cfg.data_shape)
    vae.train()
    a = vae(x, generator=torch.Generator().manual_seed(1))
    b = vae(x, generator=torch.Generator().manual_seed(1))
    c = vae(x, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a.z, b.z)
    assert not torch.allclose(a.z, c.z)
    vae.eval()
    e = vae(x)
    torch.testing.assert_close(e.z, e.posterior.mean)
    vae.sample_posterior_in_eval = True
    assert not torch.allclose(vae(x).z, e.posterior.mean)


def test_sample_temperature_and_generator(tiny_cfg):
    vae = vk.VAE(tiny_cfg).eval()
    g = lambda: torch.Generator().manual_seed(3)
    s1, s2 = vae.sample(5, generator=g()), vae.sample(5, generator=g())
    torch.testing.assert_close(s1, s2)
    assert s1.shape == (5, *tiny_cfg.data_shape)
    z = vae.sample_prior(2000, temperature=0.5, generator=g())
    assert abs(z.std().item() - 0.5) < 0.03
    zero = vae.sample(2, temperature=0.0)
    torch.testing.assert_close(zero, vae.decode(torch.zeros(2, *vae.latent_shape)))
    with pytest.raises(ValueError, match="temperature"):
        vae.sample(2, temperature=-1.0)
    with pytest.raises(ValueError, match=r"n must be >= 1, got 0"):
        vae.sample(0)
    with pytest.raises(TypeError, match=r"n must be an int, got float"):
        vae.sample(2.0)


@pytest.mark.parametrize("method", ["slerp", "linear"])
@pytest.mark.parametrize("latent", ["flat", "spatial"])
def test_interpolate_endpoints_and_shapes(method, latent):
    cfg = tiny_config(latent=latent)
    vae = vk.VAE(cfg).eval()
    x1, x2 = torch.rand(2, *cfg.data_shape)
    path = vae.interpolate(x1, x2, steps=5, method=method)
    assert path.shape == (5, *cfg.data_shape)
    torch.testing.assert_close(path[0], vae.reconstruct(x1[None])[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(path[-1], vae.reconstruct(x2[None])[0], rtol=1e-4, atol=1e-5)
    batched = vae.interpolate(torch.rand(3, *cfg.data_shape), torch.rand(3, *cfg.data_shape), 4)
    assert batched.shape == (4, 3, *cfg.data_shape)
    with pytest.raises(ValueError, match="method"):
        vae.interpolate(x1, x2, method="cubic")
    with pytest.raises(ValueError, match="same shape"):
        vae.interpolate(x1, x2[:, :8])


def test_slerp_keeps_norm_between_equal_norm_vectors():
    a, b = torch.randn(4, 16), torch.randn(4, 16)
    b = b / b.norm(dim=1, keepdim=True) * a.norm(dim=1, keepdim=True)
    path = vk.models.slerp(a, b, torch.linspace(0, 1, 7))
    torch.testing.assert_close(path.norm(dim=-1), a.norm(dim=1).expand(7, 4), rtol=1e-4, atol=1e-4)
    same = vk.models.slerp(a, a, torch.linspace(0, 1, 3))  # parallel: no NaN, stays at a
    torch.testing.assert_close(same, a.expand(3, 4, 16))


# -- persistence -------------------------------------------------------------------------
def test_save_load_roundtrip(tmp_path):
    cfg = tiny_config(block="conv", norm="batch", variance="global", attention_at=(8,))
    vae = vk.VAE(cfg)
    vae(torch.rand(4, *cfg.data_shape))  # move BatchNorm running stats away from init
    vae.eval()
    path = tmp_path / "vae.safetensors"
    vae.save(path)
    loaded = vk.VAE.load(path).eval()
    assert loaded.config == cfg
    x = torch.rand(3, *cfg.data_shape)
    assert torch.equal(loaded(x).recon, vae(x).recon)
    assert torch.equal(loaded(x).recon_logvar, vae(x).recon_logvar)


def test_load_rejects_bad_files(tmp_path):
    cfg = tiny_config()
    vae = vk.VAE(cfg)
    path = tmp_path / "vae.safetensors"
    vae.save(path)
    with pytest.raises(ValueError, match="latent_dim: expected 5, file has 3"):
        vk.VAE.load(path, expected_config=cfg.replace(latent_dim=5))
    with pytest.raises(ValueError, match="does not match"):
        vk.VAE(cfg.replace(widths=(4, 16))).load_weights(path)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        vk.VAE.load(truncated)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(ValueError, match="not a vaekit VAE checkpoint"):
        vk.VAE.load(other)
    with pytest.raises(FileNotFoundError):
        vk.VAE.load(tmp_path / "missing.safetensors")


def test_tampered_weights_are_named(tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    cfg = tiny_config()
    path = tmp_path / "vae.safetensors"
    vk.VAE(cfg).save(path)
    state = load_file(str(path))
    state["decoder.proj.weight"] = torch.zeros(5, 5)
    meta = {"format": "vaekit.VAE/1", "config": json.dumps(cfg.to_dict())}
    save_file(state, str(path), metadata=meta)
    with pytest.raises(ValueError, match=r"decoder\.proj\.weight"):
        vk.VAE.load(path)


def test_save_needs_config(tmp_path):
    cfg = tiny_config()
    enc, dec = vk.Encoder(cfg), vk.Decoder(cfg)
    vae = vk.VAE(encoder=enc, decoder=dec)
    assert vae.config == cfg  # recovered from the modules
    custom = vk.VAE(encoder=torch.nn.Identity(), decoder=torch.nn.Identity(), latent_shape=(3,))
    with pytest.raises(ValueError, match="needs a VAE built from a config"):
        custom.save(tmp_path / "x.safetensors")


def test_custom_encoder_returning_tuple():
    class Enc(torch.nn.Module):
        def forward(self, x):
            h = x.flatten(1)[:, :4]
            return h, torch.zeros_like(h)

    vae = vk.VAE(encoder=Enc(), decoder=torch.nn.Identity(), latent_shape=(4,))
    q = vae.encode(torch.rand(2, 1, 4, 4))
    assert isinstance(q, vk.DiagonalGaussian) and q.mean.shape == (2, 4)


# -- bad configs and inputs ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(block="dense"), r"unknown block 'dense': expected one of \[.*'resblock'.*register"),
        (dict(block=("conv", "conv", "conv")), r"one block per level: got 3 names .* 2 widths"),
        (dict(block=("conv", "resblok")), r"block\[1\]: unknown block 'resblok'.*'resblock'"),
        (dict(block_kwargs={"ratio": 2}), r"'resblock' \(ResBlock\) has no option 'ratio'"),
        (dict(block_kwargs=({},)), "one dict per level: got 1 dicts for 2 widths"),
        (dict(block_kwargs={"norm": "batch"}), "must not set 'norm'"),
        (dict(block="bottleneck", bottleneck_ratio=2, block_kwargs={"ratio": 8}), "disagree"),
        (dict(latent="global"), "latent must be one of"),
        (dict(norm="instance"), "norm must be one of"),
        (dict(act="swish"), "act must be one of"),
        (dict(output="tanh"), "output must be one of"),
        (dict(variance="learned"), "variance must be one of"),
        (dict(widths=()), "at least one level"),
        (dict(widths=(8, 0)), r"widths\[1\] must be >= 1, got 0"),
        (dict(depth=-1), "depth must be >= 0"),
        (dict(image_size=0), "image_size must be >= 1"),
        (dict(image_size=(16, 0)), r"image_size\[1\] must be >= 1"),
        (dict(attention_at=(12,)), r"heights \(16, 8, 4\)"),
        (dict(attention_at=(8,), attention_heads=3), "not divisible"),
        (dict(logvar_range=(5.0, -5.0)), "low < high"),
        (dict(dropout=1.5), "dropout"),
        (dict(latent_dim=0), "latent_dim must be >= 1"),
        (dict(layer_scale=-1.0), "layer_scale must be >= 0"),
    ],
)
def test_bad_configs_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(image_size="64"), "image_size must be an int"),
        (dict(widths=8), "widths must be a tuple"),
        (dict(depth=1.5), "depth must be an int"),
        (dict(act_kwargs=[0.2]), "act_kwargs must be a dict"),
        (dict(block=3), r"block must be a block name \(str\), got int"),
        (dict(block_kwargs=[0.2, 0.3]), r"block_kwargs\[0\] must be a dict"),
        (dict(block_kwargs="ratio=2"), "block_kwargs must be a dict or a tuple of dicts"),
        (dict(dropout="0.1"), "dropout must be a number"),
        (dict(attention_at=(8.0,)), r"attention_at\[0\] must be an int"),
    ],
)
def test_bad_config_types_raise_type_error(kwargs, match):
    with pytest.raises(TypeError, match=match):
        tiny_config(**kwargs)


@given(size=st.integers(1, 300), levels=st.integers(1, 5))
@settings(max_examples=40, deadline=None)
def test_default_attention_works_for_every_image_size(size, levels):
    # the default is attention at 16 px where that level exists, else none
    cfg = vk.VAEConfig(in_channels=1, image_size=size, widths=(8,) * levels, latent_dim=4)
    assert cfg.attention_at == ((16,) if 16 in cfg.resolutions else ())
    assert vk.VAEConfig.from_dict(cfg.to_dict()) == cfg


def test_default_attention_follows_a_replaced_image_size():
    cfg = vk.VAEConfig(in_channels=1, image_size=32, widths=(8, 16), latent_dim=4)
    assert cfg.attention_at == (16,)
    assert cfg.replace(image_size=28).attention_at == ()  # Fashion-MNIST's native size
    named = cfg.replace(attention_at=(16,))
    with pytest.raises(ValueError, match=r"attention_at entry 16 .* heights \(28, 14, 7\)"):
        named.replace(image_size=28)  # a level the user named stays an error
    with pytest.raises(TypeError, match="attention_at must be a tuple"):
        cfg.replace(attention_at="16")


def test_config_dict_roundtrip_and_unknown_keys():
    cfg = tiny_config(image_size=(16, 12), act="leaky_relu", act_kwargs={"negative_slope": 0.2})
    assert vk.VAEConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown VAEConfig field"):
        vk.VAEConfig.from_dict({**cfg.to_dict(), "widht": 3})


def test_bad_inputs(tiny_cfg):
    vae = vk.VAE(tiny_cfg)
    with pytest.raises(ValueError, match="1 channel"):
        vae(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"spatial size \(16, 16\), got \(32, 32\)"):
        vae(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="add a batch dimension"):
        vae(torch.rand(1, 16, 16))
    with pytest.raises(TypeError, match="floating-point"):
        vae(torch.zeros(2, 1, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"z must have shape \(N, 3\), got \(2, 4\)"):
        vae.decode(torch.randn(2, 4))
    with pytest.raises(TypeError, match="VAEConfig"):
        vk.VAE({"latent_dim": 3})
    with pytest.raises(ValueError, match="either config or encoder"):
        vk.VAE(tiny_cfg, encoder=vk.Encoder(tiny_cfg), decoder=vk.Decoder(tiny_cfg))


# -- presets -------------------------------------------------------------------------------
def test_preset_registry():
    assert vk.presets.available() == [
        "fmnist32", "cifar32", "celeba64", "celeba64-bottleneck", "celeba64-wide",
        "fmnist32-spatial", "fmnist28-spatial", "xray128-spatial", "xray256-spatial",
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"did you mean \['celeba64'"):
        vk.presets.config("celeba46")
    shapes = {n: vk.presets.config(n).latent_shape for n in vk.presets.available()}
    assert shapes["xray128-spatial"] == (64, 4, 4)
    assert shapes["fmnist32-spatial"] == (4, 8, 8)
    assert shapes["xray256-spatial"] == (8, 8, 8)
    assert shapes["celeba64-wide"] == (512,)
    assert vk.presets.config("celeba64-wide").act_kwargs == {"negative_slope": 0.2}


@pytest.mark.slow
@pytest.mark.parametrize("name", vk.presets.available())
def test_every_preset_runs_forward_backward(name):
    vae = vk.presets.build(name)
    cfg = vae.config
    x = torch.rand(2, *cfg.data_shape)
    out = vae(x)
    assert out.recon.shape == x.shape
    loss = (out.recon - x).square().mean() + out.posterior.kl().mean() / cfg.data_dims
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in vae.parameters())
    assert math.prod(vae.latent_shape) == out.posterior.num_latent_dims


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_forward_and_loss_are_finite(dtype):
    cfg = tiny_config(block="bottleneck", attention_at=(8,), variance="global")
    vae = vk.VAE(cfg)
    x = torch.rand(2, *cfg.data_shape)
    loss_fn = vk.losses.VAELoss(recon="gaussian_nll", kl=vk.losses.KL(free_bits=0.05))
    with torch.autocast("cpu", dtype=dtype):
        out = vae(x)
        res = loss_fn(out, x)
    assert out.recon.dtype in (dtype, torch.float32)
    assert res.total.dtype == torch.float32 and torch.isfinite(res.total)
    res.total.backward()
    assert all(torch.isfinite(p.grad).all() for p in vae.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", ["bce", "gaussian_nll", "l1"])
def test_step0_vae_loss_is_finite_on_preset(name):
    vae = vk.presets.build("fmnist32")
    x = torch.rand(4, 1, 32, 32)
    x[0], x[1] = 0.0, 1.0
    res = vk.losses.VAELoss(recon=name)(vae(x), x)
    assert torch.isfinite(res.total)
    res.total.backward()


@pytest.mark.parametrize(
    ("block", "norm", "latent"),
    [
        ("resblock", "group", "spatial"),
        ("bottleneck", "group", "spatial"),
        ("conv", "batch", "spatial"),
        ("resblock", "group", "flat"),
        ("preact", "group", "spatial"),
    ],
)
def test_sample_spread_grows_with_temperature_after_training(block, norm, latent):
    # z's scale reaches the images of a trained decoder: samples at T = 0.25, 0.5, 1 spread
    # more and more (measured ratios to T = 1: 0.31-0.54 and 0.58-0.79; asserted < 0.9)
    x_all, _ = vk.data.load_fashion_mnist("train", limit=512, pad_to=None)
    x_all = torch.nn.functional.avg_pool2d(x_all, 2)  # 14 px keeps it to ~2 s
    cfg = vk.VAEConfig(in_channels=1, image_size=14, widths=(8, 16), block=block, norm=norm,
                       latent=latent, latent_channels=2, latent_dim=8, attention_at=())  # fmt: skip
    vae = vk.VAE(cfg)
    loss_fn = vk.losses.VAELoss(recon="bce")
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(80):
        x = x_all[torch.randint(len(x_all), (32,), generator=gen)]
        res = loss_fn(vae(x), x)
        opt.zero_grad()
        res.total.backward()
        opt.step()
    vae.eval()
    eps = torch.randn(64, *vae.latent_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        spread = [vae.decode(t * eps).std(0).mean().item() for t in (0.25, 0.5, 1.0)]
    assert spread[0] < spread[1] < 0.9 * spread[2], spread


def test_config_stores_plain_ints_from_integer_likes():
    # numpy ints (from a sweep, a CSV) pass check_int; stored as int, the config saves as JSON
    import json

    import numpy as np

    cfg = tiny_config(widths=(np.int64(4), 8), latent_dim=np.int32(3), depth=np.int64(1))
    assert type(cfg.widths[0]) is int and type(cfg.latent_dim) is int and type(cfg.depth) is int
    assert vk.VAEConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(TypeError, match=r"widths\[0\] must be an int, got float"):
        tiny_config(widths=(4.0, 8))
