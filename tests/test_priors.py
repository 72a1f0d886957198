"""Priors: the interface, densities, samplers, KL, registry and save/load.

Fitting (EM, flow and diffusion training, encode_dataset) is in test_priors_fit.py.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.distributions as D
from hypothesis import given, settings
from hypothesis import strategies as st
from priors_utils import (
    ALL_NAMES,
    DENSITY_NAMES,
    TinyEncoder,
    double,
    make_prior,
    registry_name,
)

import vaekit as vk
from vaekit.priors import NotFittedError, PriorCapabilityError


def tiny_config(**overrides) -> vk.VAEConfig:
    base = dict(
        in_channels=1, image_size=16, widths=(4, 8), block="conv", attention_at=(),
        latent="flat", latent_dim=3, latent_channels=2,
    )  # fmt: skip
    return vk.VAEConfig(**{**base, **overrides})


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- registry and package --------------------------------------------------------------------
def test_registry_names_and_aliases():
    assert vk.priors.available() == [
        "diffusion",
        "edm",
        "flow",
        "gmm",
        "mog",
        "standard_normal",
        "vamp",
    ]
    assert isinstance(vk.priors.build("normal"), vk.priors.StandardNormal)
    assert isinstance(vk.priors.build("MOG", components=2), vk.priors.MixtureOfGaussians)
    assert vk.priors.get("gaussian_mixture") is vk.priors.GaussianMixture
    assert vk.priors.density_names() == ["flow", "gmm", "mog", "standard_normal", "vamp"]
    with pytest.raises(ValueError, match=r"unknown prior 'flwo'.*did you mean 'flow'"):
        vk.priors.build("flwo")
    assert "priors" in vk.__all__ and vk.priors.StandardNormal is not None


def test_capability_flags():
    p = vk.priors
    assert p.StandardNormal.has_closed_form_kl and not p.StandardNormal.needs_fit
    assert p.MixtureOfGaussians.learned_with_vae and p.VampPrior.learned_with_vae
    for cls in (p.GaussianMixture, p.Flow, p.LatentDiffusion):
        assert cls.needs_fit and not cls.learned_with_vae and not cls.has_closed_form_kl
    assert not p.LatentDiffusion.has_log_prob


# -- StandardNormal is what vaekit did before ----------------------------------------------
@pytest.mark.parametrize("latent", ["flat", "spatial"])
def test_standard_normal_sample_is_bit_identical_to_vae_sample_prior(latent):
    vae = vk.VAE(tiny_config(latent=latent))
    prior = vk.priors.StandardNormal().setup(vae.latent_shape)
    shape = (5, *vae.latent_shape)

    def old_sample_prior(temperature, generator=None):  # VAE.sample_prior before priors
        return torch.randn(shape, generator=generator) * temperature

    for temperature in (0.0, 0.5, 1, 1.7):
        for seed in (0, 1):
            expected = old_sample_prior(temperature, gen(seed))
            got = prior.sample(5, temperature=temperature, generator=gen(seed))
            assert torch.equal(got, expected)
            assert torch.equal(vae.sample_prior(5, temperature, gen(seed)), expected)
    torch.manual_seed(3)  # without a generator: the same global-RNG draw
    expected = old_sample_prior(0.8)
    torch.manual_seed(3)
    assert torch.equal(prior.sample(5, temperature=0.8), expected)
    # the same errors for bad arguments
    for bad, err in (("1.0", TypeError), (-1.0, ValueError), (math.nan, ValueError)):
        with pytest.raises(err, match="temperature"):
            vae.sample_prior(2, bad)
        with pytest.raises(err, match="temperature"):
            prior.sample(2, temperature=bad)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        prior.sample(0)
    with pytest.raises(TypeError, match="n must be an int, got float"):
        prior.sample(2.0)


def test_standard_normal_kl_is_bit_identical_to_the_kl_loss():
    q = vk.DiagonalGaussian(torch.randn(6, 2, 3, 3), torch.randn(6, 2, 3, 3))
    prior = vk.priors.StandardNormal((2, 3, 3))
    assert torch.equal(
        prior.kl_elementwise(q), vk.functional.kl_normal(q.mean, q.logvar, reduction="none")
    )
    assert torch.equal(prior.kl(q), q.kl())
    assert torch.equal(prior.kl(q).mean(), vk.losses.KL()(q))
    assert torch.equal(vk.priors.kl_to_prior(q, prior), prior.kl(q))


def test_standard_normal_log_prob_matches_torch():
    z = torch.randn(7, 2, 2, 3, dtype=torch.float64)
    ref = D.Independent(D.Normal(torch.zeros(2, 2, 3, dtype=torch.float64), 1.0), 3).log_prob(z)
    got = vk.priors.StandardNormal((2, 2, 3)).log_prob(z)
    assert got.dtype == torch.float64 and torch.allclose(got, ref, rtol=0, atol=1e-12)
    half = vk.priors.StandardNormal((3,)).log_prob(torch.zeros(2, 3, dtype=torch.bfloat16))
    assert half.dtype == torch.float32  # a float32 island


# -- densities -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", DENSITY_NAMES)
def test_log_prob_integrates_to_one_in_1d(name):
    prior = double(make_prior(name, (1,)))
    z = torch.linspace(-25, 25, 40_001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        p = prior.log_prob(z).exp()
    assert p.shape == (40_001,)
    assert float(torch.trapezoid(p, z[:, 0])) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", DENSITY_NAMES)
def test_log_prob_integrates_to_one_in_2d(name):
    prior = double(make_prior(name, (2,), seed=2))
    axis = torch.linspace(-16, 16, 641, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        p = prior.log_prob(grid).exp().view(641, 641)
    mass = torch.trapezoid(torch.trapezoid(p, axis, dim=1), axis)
    assert float(mass) == pytest.approx(1.0, abs=1e-4)


def _reference_mixture(prior, shape):
    """The same mixture as a torch.distributions.MixtureSameFamily (float64)."""
    if isinstance(prior, vk.priors.MixtureOfGaussians):
        comp = D.Independent(D.Normal(prior.means, prior.log_scales.exp()), len(shape))
        return D.MixtureSameFamily(D.Categorical(logits=prior.logits), comp)
    if isinstance(prior, vk.priors.VampPrior):
        q = prior.components()
        comp = D.Independent(D.Normal(q.mean, q.std), len(shape))
        return D.MixtureSameFamily(D.Categorical(logits=torch.zeros(3, dtype=q.mean.dtype)), comp)
    cat = D.Categorical(logits=prior.log_weights)
    if prior.covariance == "full":
        comp = D.MultivariateNormal(prior.means, scale_tril=prior.scale_tril)
    else:
        comp = D.Independent(D.Normal(prior.means, prior.scales), 1)
    return D.MixtureSameFamily(cat, comp)


@pytest.mark.parametrize("name", ["mog", "vamp", "gmm", "gmm_diag"])
@pytest.mark.parametrize("shape", [(4,), (2, 2, 3)])
def test_mixture_log_prob_matches_mixture_same_family(name, shape):
    prior = double(make_prior(name, shape, seed=2))
    z = 2 * torch.randn(32, *shape, dtype=torch.float64)
    with torch.no_grad():
        ref = _reference_mixture(prior, shape)
        expected = ref.log_prob(z.flatten(1) if name.startswith("gmm") else z)
        got = prior.log_prob(z)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


# -- sampling --------------------------------------------------------------------------------
def _components(prior):
    """(weights (K,), means (K, D), variances (K, D)) of a mixture-like prior, float64."""
    if isinstance(prior, vk.priors.StandardNormal):
        d = prior.num_latent_dims
        return torch.ones(1), torch.zeros(1, d), torch.ones(1, d)
    if isinstance(prior, vk.priors.MixtureOfGaussians):
        return (
            prior.log_weights.exp(),
            prior.means.flatten(1),
            (2 * prior.log_scales).exp().flatten(1),
        )
    if isinstance(prior, vk.priors.VampPrior):
        q = prior.components()
        k = q.mean.shape[0]
        return torch.full((k,), 1 / k), q.mean.flatten(1), q.var.flatten(1)
    var = prior.scale_tril.square().sum(-1) if prior.covariance == "full" else prior.scales.square()
    return prior.log_weights.exp(), prior.means, var


shapes = st.one_of(
    st.tuples(st.integers(1, 6)),
    st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3)),
)


@settings(max_examples=12)
@given(
    name=st.sampled_from(["standard_normal", "mog", "vamp", "gmm", "gmm_diag"]),
    shape=shapes,
    temperature=st.sampled_from([0.5, 1.0, 1.5]),
    seed=st.integers(0, 100),
)
def test_samples_follow_the_density_moments(name, shape, temperature, seed):
    prior = double(make_prior(name, shape, seed=seed))
    n = 4000
    with torch.no_grad():
        z = prior.sample(n, temperature=temperature, generator=gen(seed))
        w, mu, var = (t.detach().double() for t in _components(prior))
    assert z.shape == (n, *shape) and z.dtype == torch.float64
    mean = (w[:, None] * mu).sum(0)
    second = (w[:, None] * (temperature**2 * var + mu.square())).sum(0)
    variance = second - mean.square()
    z = z.flatten(1)
    zscore = (z.mean(0) - mean) / (variance / n).sqrt()
    assert float(zscore.abs().max()) < 5.0, zscore.tolist()
    ratio = z.var(0) / variance
    assert float((ratio - 1).abs().max()) < 0.2, ratio.tolist()


def test_flow_samples_follow_its_density():
    prior = double(make_prior("flow", (1,), seed=4))
    grid = torch.linspace(-25, 25, 40_001, dtype=torch.float64)
    with torch.no_grad():
        p = prior.log_prob(grid[:, None]).exp()
        z = prior.sample(20_000, generator=gen(4))[:, 0]
    mean = torch.trapezoid(p * grid, grid)
    var = torch.trapezoid(p * (grid - mean).square(), grid)
    assert abs(float(z.mean() - mean)) < 5 * float(var.sqrt()) / math.sqrt(20_000)
    assert float(z.var() / var) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("name", ["standard_normal", "mog", "vamp", "gmm", "gmm_diag"])
def test_temperature_scales_the_spread_around_the_components(name):
    prior = make_prior(name, (3,))
    with torch.no_grad():
        z0 = prior.sample(200, temperature=0.0, generator=gen(1))
        z1 = prior.sample(200, temperature=1.0, generator=gen(1))
        zt = prior.sample(200, temperature=0.3, generator=gen(1))
        _, means, _ = _components(prior)
    # temperature 0: every sample is a component mean
    assert torch.cdist(z0, means.float()).min(1).values.max() < 1e-5
    # the same component and noise: z_T = z_0 + T (z_1 - z_0)
    torch.testing.assert_close(zt, z0 + 0.3 * (z1 - z0))


def test_temperature_of_flow_and_diffusion():
    flow = make_prior("flow", (2,))
    with torch.no_grad():
        stds = [
            float(flow.sample(2000, temperature=t, generator=gen()).std(0).mean())
            for t in (0.5, 1.0, 1.5)
        ]
        assert stds[0] < stds[1] < stds[2]
        assert torch.equal(flow.sample(3, temperature=0.0), flow.sample(3, temperature=0.0))
    diffusion = make_prior("diffusion", (2,))
    z0 = diffusion.sample(5, temperature=0.0, generator=gen())
    assert torch.allclose(z0, z0[:1].expand_as(z0))  # one deterministic DDIM path from x_T = 0
    z1 = diffusion.sample(500, temperature=1.0, generator=gen())
    assert float(z1.std(0).min()) > 1e-3


@pytest.mark.parametrize("name", ALL_NAMES)
def test_dtype_follows_the_module(name):
    prior = double(make_prior(name, (2,)))
    assert prior.dtype == torch.float64
    assert prior.sample(3, generator=gen()).dtype == torch.float64
    if prior.has_log_prob:
        assert prior.log_prob(torch.zeros(2, 2, dtype=torch.float64)).dtype == torch.float64


# -- KL ---------------------------------------------------------------------------------------
def test_mc_kl_is_unbiased_against_the_closed_form():
    g = gen(5)
    q = vk.DiagonalGaussian(torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g))
    s = 40_000
    z = q.sample_n(s, generator=g)
    # a standard normal prior
    prior = vk.priors.StandardNormal((4,))
    exact = prior.kl(q)
    per_sample = q.log_prob(z) - prior.log_prob(z.flatten(0, 1)).view(s, 3)
    est = vk.priors.mc_kl(q, z, prior)
    torch.testing.assert_close(est, per_sample.mean(0))
    assert ((est - exact).abs() < 5 * per_sample.std(0) / math.sqrt(s)).all(), (est, exact)
    # another Gaussian prior: a one-component diagonal mixture, against kl_normal
    gauss = vk.priors.GaussianMixture(components=1, covariance="diag", latent_shape=(4,))
    with torch.no_grad():
        gauss.means.copy_(torch.randn(1, 4, generator=g))
        gauss.scales.copy_(torch.rand(1, 4, generator=g) + 0.5)
    gauss._set_fitted()
    exact = vk.functional.kl_normal(
        q.mean, q.logvar, gauss.means.expand(3, 4), (2 * gauss.scales.log()).expand(3, 4),
        reduction="none",
    ).sum(1)  # fmt: skip
    per_sample = q.log_prob(z) - gauss.log_prob(z.flatten(0, 1)).view(s, 3)
    est = vk.priors.mc_kl(q, z, gauss)
    assert ((est - exact).abs() < 5 * per_sample.std(0) / math.sqrt(s)).all(), (est, exact)
    # one sample per image: shape (B,), equal to the pointwise difference
    z1 = q.sample(generator=g)
    torch.testing.assert_close(vk.priors.mc_kl(q, z1, gauss), q.log_prob(z1) - gauss.log_prob(z1))
    torch.testing.assert_close(vk.priors.kl_to_prior(q, gauss, z1), vk.priors.mc_kl(q, z1, gauss))


def test_kl_errors():
    q = vk.DiagonalGaussian(torch.zeros(2, 3), torch.zeros(2, 3))
    mog = vk.priors.MixtureOfGaussians(2, latent_shape=(3,))
    with pytest.raises(PriorCapabilityError, match="mc_kl"):
        mog.kl(q)
    with pytest.raises(ValueError, match="pass z"):
        vk.priors.kl_to_prior(q, mog)
    with pytest.raises(ValueError, match=r"shape \(2, 3\) or \(S, 2, 3\)"):
        vk.priors.mc_kl(q, torch.zeros(2, 4), mog)
    with pytest.raises(ValueError, match=r"posterior.mean must have shape \(B, 4\)"):
        vk.priors.StandardNormal((4,)).kl(q)
    with pytest.raises(TypeError, match="DiagonalGaussian"):
        vk.priors.StandardNormal((3,)).kl((q.mean, q.logvar))


# -- learned with the VAE ----------------------------------------------------------------------
def test_learned_priors_get_gradients():
    mog = make_prior("mog", (3,))
    mog.log_prob(torch.randn(4, 3)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mog.parameters())
    vamp = make_prior("vamp", (3,))
    vamp.log_prob(torch.randn(4, 3)).sum().backward()
    assert vamp.pseudo_inputs.grad.abs().sum() > 0
    assert vamp.encoder.fc.weight.grad.abs().sum() > 0  # through the encoder


def test_setup_binds_the_latent_shape_and_checks_it():
    mog = vk.priors.MixtureOfGaussians(components=16)
    assert mog.latent_shape is None and list(mog.parameters()) == []
    assert mog.setup((4, 2, 2)) is mog
    assert mog.means.shape == (16, 4, 2, 2) and mog.logits.shape == (16,)
    mog.setup([4, 2, 2])  # the same shape again: nothing changes
    with pytest.raises(
        ValueError, match=r"latent_shape \(4, 2, 2\) but the model's latent shape is \(8,\)"
    ):
        mog.setup((8,))
    for bad in ((0,), (2, 3), "4"):
        with pytest.raises((TypeError, ValueError), match="latent_shape"):
            vk.priors.StandardNormal(bad)


def test_vamp_setup_with_a_vae_encoder():
    vae = vk.VAE(tiny_config(latent_dim=2))
    prior = vk.priors.VampPrior(pseudo_inputs=4)
    with pytest.raises(ValueError, match=r"missing \['encoder=', 'data_shape=\(C, H, W\)'\]"):
        prior.setup((2,)).sample(2)
    prior.setup((2,), encoder=vae.encode, data_shape=(1, 16, 16))
    assert prior.pseudo_inputs.shape == (4, 1, 16, 16)
    u = prior.pseudo_inputs.detach()
    assert float(u.min()) >= 0.0 and float(u.max()) <= 1.0
    assert set(prior.state_dict()) == {"pseudo_inputs"}  # the encoder is not copied in
    assert prior.sample(3, generator=gen()).shape == (3, 2)
    with pytest.raises(ValueError, match=r"pseudo-inputs of shape \(1, 16, 16\)"):
        prior.setup((2,), data_shape=(3, 16, 16))
    data = torch.rand(10, 1, 16, 16)
    prior.init_pseudo_inputs(data, generator=gen())
    assert all(any(torch.equal(u, x) for x in data) for u in prior.pseudo_inputs)
    with pytest.raises(ValueError, match="at least pseudo_inputs=4 images"):
        prior.init_pseudo_inputs(data[:3])
    bad = vk.priors.VampPrior(2).setup((3,), encoder=vae.encode, data_shape=(1, 16, 16))
    with pytest.raises(ValueError, match=r"encoder gives latents of shape \(2,\)"):
        bad.sample(1)


# -- ex-post priors before fitting -------------------------------------------------------------
@pytest.mark.parametrize("name", ["gmm", "flow", "diffusion"])
def test_unfitted_priors_refuse_to_sample(name):
    prior = vk.priors.build(name)
    with pytest.raises(ValueError, match=r"no latent_shape yet.*fit it on latents"):
        prior.sample(2)
    prior.setup((3,))
    assert not prior.is_fitted
    with pytest.raises(
        NotFittedError, match=r"not fitted: call \.fit\(latents\) with latents of shape \(N, 3\)"
    ):
        prior.sample(2)
    with pytest.raises(ValueError, match="must be finite"):
        prior.fit(torch.tensor([[0.0, math.nan, 1.0]] * 20), progress=False)
    with pytest.raises(ValueError, match=r"latents must have shape \(B, 3\)"):
        prior.fit(torch.zeros(20, 4), progress=False)
    with pytest.raises(ValueError, match=r"latents must be \(N, D\) flat or \(N, C, h, w\)"):
        vk.priors.build(name).fit(torch.zeros(20, 2, 2), progress=False)
    with pytest.raises(TypeError, match="floating-point"):
        vk.priors.build(name).fit(torch.zeros(20, 2, dtype=torch.long), progress=False)


def test_bad_input_messages():
    prior = make_prior("mog", (3,))
    with pytest.raises(ValueError, match=r"z must have shape \(B, 3\) = \(batch, \*latent_shape\)"):
        prior.log_prob(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"no latent_shape yet"):
        vk.priors.StandardNormal().sample(1)
    with pytest.raises(ValueError, match="at least 10 latents"):
        vk.priors.GaussianMixture(10).fit(torch.randn(5, 2), progress=False)
    with pytest.raises(ValueError, match="covariance must be one of"):
        vk.priors.GaussianMixture(covariance="spherical")
    with pytest.raises(ValueError, match="sample_steps must be <= steps=10"):
        vk.priors.LatentDiffusion(steps=10, sample_steps=20)
    with pytest.raises(ValueError, match="denoiser='conv' needs spatial latents"):
        vk.priors.LatentDiffusion(denoiser="conv", latent_shape=(4,))


def test_diffusion_has_no_density():
    prior = make_prior("diffusion", (2,))
    with pytest.raises(
        PriorCapabilityError,
        match=r"no tractable density.*\['flow', 'gmm', 'mog', 'standard_normal', 'vamp'\]",
    ) as info:
        prior.log_prob(torch.zeros(3, 2))
    assert isinstance(info.value, ValueError) and isinstance(info.value, NotImplementedError)
    with pytest.raises(PriorCapabilityError):
        vk.priors.mc_kl(
            vk.DiagonalGaussian(torch.zeros(1, 2), torch.zeros(1, 2)), torch.zeros(1, 2), prior
        )


# -- save / load -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL_NAMES)
def test_config_and_state_dict_round_trip_gives_identical_samples(name, tmp_path):
    from safetensors.torch import load_file, save_file

    shape = (2, 2, 2) if name == "diffusion" else (3,)
    prior = make_prior(name, shape)
    config = json.loads(json.dumps(vk.priors.to_config(prior)))
    assert config["name"] == registry_name(name)
    save_file(
        {k: v.contiguous() for k, v in prior.state_dict().items()}, tmp_path / "p.safetensors"
    )
    loaded = vk.priors.from_config(config, load_file(tmp_path / "p.safetensors"))
    if name == "vamp":
        loaded.setup(shape, encoder=prior.encoder)
    assert type(loaded) is type(prior) and loaded.is_fitted
    assert torch.equal(loaded.sample(6, generator=gen(7)), prior.sample(6, generator=gen(7)))
    if prior.has_log_prob:
        z = prior.sample(4, generator=gen(8))
        assert torch.equal(loaded.log_prob(z), prior.log_prob(z))
    if prior.needs_fit:  # loaded fitted weights are frozen, as after fit
        assert not any(p.requires_grad for p in loaded.parameters())


def test_from_config_errors_and_unregistered_priors():
    with pytest.raises(ValueError, match=r"\{'name': \.\.\., 'config': \{\.\.\.\}\}"):
        vk.priors.from_config({"name": "gmm"})

    class Mine(vk.priors.StandardNormal):
        pass

    with pytest.raises(ValueError, match=r"not a registered prior.*@vk\.priors\.register"):
        vk.priors.to_config(Mine((2,)))
    same = vk.priors.from_config(json.dumps(vk.priors.to_config(vk.priors.GaussianMixture(3))))
    assert same.latent_shape is None and same.components == 3


def test_log_prob_and_sample_compile_without_graph_breaks():
    for prior in (vk.priors.StandardNormal((3,)), make_prior("mog", (3,))):
        fn = torch.compile(prior.log_prob, backend="eager", fullgraph=True)
        z = torch.randn(4, 3)
        torch.testing.assert_close(fn(z), prior.log_prob(z))


def test_vamp_with_tiny_encoder_reference():
    enc = TinyEncoder((2,))
    prior = vk.priors.VampPrior(3, (2,), enc.data_shape, input_range=(0.0, 1.0))
    prior.setup((2,), encoder=enc)
    with torch.no_grad():
        prior.pseudo_inputs.fill_(2.0)  # clamped to 1 before the encoder
        q = enc(torch.ones(3, *enc.data_shape))
    z = torch.randn(5, 2)
    ref = D.Independent(D.Normal(q.mean[0], q.std[0]), 1).log_prob(z)  # 3 equal components
    torch.testing.assert_close(prior.log_prob(z), ref)
