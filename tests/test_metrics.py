"""Metrics: exact values on models with a known likelihood, bounds, batching and bad input."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import vaekit as vk
from vaekit import metrics as M
from vaekit.losses import WeightsNotFoundError


def tiny_vae(**overrides) -> vk.VAE:
    base = dict(
        in_channels=1, image_size=16, widths=(4, 8), depth=1, block="resblock",
        attention_at=(), latent="flat", latent_dim=3,
    )  # fmt: skip
    base.update(overrides)
    return vk.VAE(vk.VAEConfig(**base))


class LinearGaussian(nn.Module):
    """z ~ N(0, I_2), x = W z + b + N(0, s^2 I_4) shaped (1, 2, 2): p(x) is known exactly.

    W has orthogonal columns, so the true posterior is diagonal; ``shift``/``scale`` make the
    encoder wrong on purpose (then IWAE must beat the ELBO and tighten with K).
    """

    def __init__(self, shift: float = 0.0, var_scale: float = 1.0) -> None:
        super().__init__()
        w = torch.tensor([[1.0, 0.5], [1.0, -0.5], [-1.0, 0.5], [-1.0, -0.5]], dtype=torch.float64)
        self.register_buffer("w", w * 1.5)
        self.register_buffer("b", torch.tensor([0.1, -0.2, 0.3, 0.0], dtype=torch.float64))
        self.sigma, self.shift, self.var_scale = 0.3, shift, var_scale
        self.latent_shape = (2,)

    def encode(self, x: torch.Tensor) -> vk.DiagonalGaussian:
        prec = 1.0 + (self.w**2).sum(0) / self.sigma**2  # diagonal: W^T W is diagonal
        mean = ((x.flatten(1) - self.b) @ self.w) / self.sigma**2 / prec
        logvar = (-prec.log() + math.log(self.var_scale)).expand_as(mean)
        return vk.DiagonalGaussian(mean + self.shift, logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.w.T + self.b).view(-1, 1, 2, 2)

    def sample_x(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        noise = self.sigma * torch.randn(n, 4, generator=generator, dtype=torch.float64)
        return (z @ self.w.T + self.b + noise).view(n, 1, 2, 2)

    def exact_nll(self, x: torch.Tensor) -> torch.Tensor:
        cov = self.w @ self.w.T + self.sigma**2 * torch.eye(4, dtype=torch.float64)
        return -torch.distributions.MultivariateNormal(self.b, cov).log_prob(x.flatten(1))


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


# -- likelihood bounds ------------------------------------------------------------------------
def test_iwae_equals_exact_nll_with_the_true_posterior(gen):
    model = LinearGaussian()
    x = model.sample_x(20, gen)
    exact = model.exact_nll(x)
    for k, bs in ((1, 1024), (16, 1024), (16, 7)):  # bs=7: K and images both chunked
        got = M.iwae_nll(model, x, k=k, likelihood="gaussian", sigma=model.sigma,
                         batch_size=bs, generator=gen, reduction="none")  # fmt: skip
        torch.testing.assert_close(got, exact, rtol=0, atol=1e-9)
    # the ELBO is tight too, but its reconstruction term is a Monte Carlo average
    elbo = M.elbo_nll(model, x, k=4096, likelihood="gaussian", sigma=model.sigma, generator=gen)
    assert float(elbo) == pytest.approx(float(exact.mean()), abs=0.02)


def test_iwae_below_elbo_and_decreasing_in_k(gen):
    model = LinearGaussian(shift=0.1, var_scale=0.5)  # too narrow, off-centre: loose ELBO
    x = model.sample_x(256, gen)
    exact = float(model.exact_nll(x).mean())
    kw = dict(likelihood="gaussian", sigma=model.sigma, generator=gen)
    elbo = float(M.elbo_nll(model, x, k=64, **kw))
    bounds = [float(M.iwae_nll(model, x, k=k, **kw)) for k in (1, 4, 16, 64, 256)]
    assert bounds[0] == pytest.approx(elbo, abs=0.3)  # K = 1 is the ELBO (MC noise)
    assert all(a > b for a, b in itertools.pairwise(bounds)), bounds
    assert exact < bounds[-1] < bounds[1] < elbo
    assert bounds[-1] - exact < 0.2 * (elbo - exact)  # K = 256 closes most of the gap


class MixturePriorLinearGaussian(LinearGaussian):
    """The linear-Gaussian model with a 3-component mixture prior: p(x) is a Gaussian
    mixture, known exactly; the encoder (the N(0, I) model's posterior) is only close."""

    def __init__(self, shift: float = 0.0, var_scale: float = 1.0) -> None:
        super().__init__(shift, var_scale)
        prior = vk.priors.MixtureOfGaussians(components=3, latent_shape=(2,)).double()
        with torch.no_grad():
            prior.means.copy_(torch.tensor([[-1.0, 0.5], [0.8, 0.8], [0.3, -1.2]]))
            prior.log_scales.copy_(torch.tensor([[-0.3, 0.1], [0.0, -0.5], [0.2, 0.0]]))
            prior.logits.copy_(torch.tensor([0.2, -0.4, 0.1]))
        self.prior = prior.requires_grad_(False)

    def exact_nll(self, x: torch.Tensor) -> torch.Tensor:
        p = self.prior
        mean = p.means @ self.w.T + self.b  # (K, 4)
        var = torch.exp(2 * p.log_scales)  # (K, 2)
        cov = self.w @ torch.diag_embed(var) @ self.w.T + self.sigma**2 * torch.eye(4).double()
        mix = torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(logits=p.logits),
            torch.distributions.MultivariateNormal(mean, cov),
        )
        return -mix.log_prob(x.flatten(1))

    def brute_force_neg_elbo(self, x: torch.Tensor) -> torch.Tensor:
        """-E_q[log p(x|z) + log p(z) - log q(z|x)] by quadrature on a 2-D grid, per image."""
        q = self.encode(x)
        out = []
        for i in range(x.shape[0]):
            m, s = q.mean[i], q.std[i]
            axes = [torch.linspace(-9, 9, 361, dtype=torch.float64) * s[j] + m[j] for j in (0, 1)]
            z = torch.cartesian_prod(*axes)  # (G, 2)
            cell = (axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0])
            log_q = torch.distributions.Normal(m, s).log_prob(z).sum(1)
            log_px = torch.distributions.Normal(self.decode(z).flatten(1), self.sigma)
            log_px = log_px.log_prob(x[i].flatten()).sum(1)
            integrand = log_q.exp() * (log_px + self.prior.log_prob(z) - log_q)
            out.append(-(integrand.sum() * cell))
        return torch.stack(out)


def test_likelihoods_use_the_models_prior_against_exact_and_brute_force(gen):
    model = MixturePriorLinearGaussian()
    x = model.sample_x(6, gen)
    exact = model.exact_nll(x)
    kw = dict(likelihood="gaussian", sigma=model.sigma, generator=gen, reduction="none")
    iwae = M.iwae_nll(model, x, k=4096, **kw)
    torch.testing.assert_close(iwae, exact, rtol=0, atol=0.02)  # K large: the exact NLL
    # the N(0, I) formulas would be far off: the prior is really used
    assert (M.iwae_nll(LinearGaussian(), x, k=256, **kw) - exact).abs().max() > 0.3
    # an encoder off the posterior: the ELBO has a gap (~0.35 nats) that the MC KL must show
    loose = MixturePriorLinearGaussian(shift=0.08, var_scale=0.7)
    brute = loose.brute_force_neg_elbo(x)
    assert (brute > exact + 0.2).all()
    elbo = M.elbo_nll(loose, x, k=8192, **kw)  # the KL estimated on the same draws
    torch.testing.assert_close(elbo, brute, rtol=0, atol=0.05)


def test_likelihoods_with_standard_normal_are_what_they_were(gen):
    class NoPrior(nn.Module):  # a VAE-like module without .prior: the N(0, I) formulas
        def __init__(self, vae):
            super().__init__()
            self.vae = vae

        def encode(self, x):
            return self.vae.encode(x)

        def decode_with_logvar(self, z):
            return self.vae.decode_with_logvar(z)

    vae = tiny_vae(latent="spatial", latent_channels=2)
    x = torch.rand(5, 1, 16, 16)
    for metric in (M.iwae_nll, M.elbo_nll):
        a = metric(vae, x, k=6, generator=torch.Generator().manual_seed(1), reduction="none")
        b = metric(
            NoPrior(vae), x, k=6, generator=torch.Generator().manual_seed(1), reduction="none"
        )
        assert torch.equal(a, b)


def test_likelihoods_refuse_priors_without_a_density():
    vae = tiny_vae()
    x = torch.rand(2, 1, 16, 16)
    vae.prior = vk.priors.GaussianMixture(components=2)
    names = r"\['flow', 'gmm', 'mog', 'standard_normal', 'vamp'\]"
    for metric in (M.iwae_nll, M.elbo_nll):
        with pytest.raises(vk.priors.NotFittedError, match=rf"used for likelihoods.*{names}"):
            metric(vae, x, k=2)
    diffusion = vk.priors.LatentDiffusion(steps=10, sample_steps=2, hidden=8, depth=1)
    vae.prior = diffusion.fit(torch.randn(16, 3), iterations=1, progress=False)
    for metric in (M.iwae_nll, M.elbo_nll):
        with pytest.raises(ValueError, match=rf"no tractable density.*{names}"):
            metric(vae, x, k=2)
    vae.prior = vk.priors.GaussianMixture(components=2).fit(torch.randn(16, 3), progress=False)
    assert torch.isfinite(M.iwae_nll(vae, x, k=2)) and torch.isfinite(M.elbo_nll(vae, x))


def test_iwae_on_a_real_vae_restores_mode_and_has_no_grad():
    vae = tiny_vae().train()
    x = torch.rand(5, 1, 16, 16)
    g = torch.Generator().manual_seed(1)
    nll = M.iwae_nll(vae, x, k=8, generator=g, reduction="none")
    assert nll.shape == (5,) and nll.dtype == torch.float64 and torch.isfinite(nll).all()
    assert not nll.requires_grad and vae.training and vae.encoder.training
    # same generator seed -> same value, whatever the chunking of images
    a = M.iwae_nll(vae, x, k=8, batch_size=8, generator=torch.Generator().manual_seed(2))
    b = M.iwae_nll(vae, x, k=8, batch_size=8, generator=torch.Generator().manual_seed(2))
    assert a == b and float(a) > 0
    elbo = M.elbo_nll(vae, x, k=8, generator=g)
    assert float(M.iwae_nll(vae, x, k=64, generator=g)) <= float(elbo) + 1e-6


def test_iwae_uses_the_decoder_variance_and_likelihood_callables():
    vae = tiny_vae(variance="pixel", output="identity")
    x = torch.rand(3, 1, 16, 16)
    g = lambda: torch.Generator().manual_seed(0)
    gauss = M.iwae_nll(vae, x, k=4, likelihood="gaussian", generator=g())
    lap = M.iwae_nll(vae, x, k=4, likelihood="laplace", generator=g())
    assert torch.isfinite(gauss) and torch.isfinite(lap) and gauss != lap
    with pytest.raises(ValueError, match="leave sigma=None"):
        M.iwae_nll(vae, x, k=2, likelihood="gaussian", sigma=0.1)

    def my_ll(recon, target):  # a Gaussian with sigma = 1 written by the user
        return -0.5 * ((target - recon) ** 2 + math.log(2 * math.pi)).flatten(1).sum(1)

    plain = tiny_vae(output="identity")
    mine = M.iwae_nll(plain, x, k=4, likelihood=my_ll, generator=g())
    ours = M.iwae_nll(plain, x, k=4, likelihood="gaussian", sigma=1.0, generator=g())
    torch.testing.assert_close(mine, ours)


def test_bernoulli_logits_for_identity_output():
    x = (torch.rand(2, 1, 16, 16) > 0.5).float()
    logits = torch.randn(2, 1, 16, 16)
    a = M.log_likelihood(logits, x, logits=True)
    b = M.log_likelihood(torch.sigmoid(logits), x)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    assert torch.isfinite(M.log_likelihood(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))).all()


def test_closed_form_likelihoods():
    x, mu = torch.zeros(1, 1, 1, 2), torch.tensor([[[[1.0, -1.0]]]])
    g = M.log_likelihood(mu, x, "gaussian", sigma=2.0)
    want = 2 * torch.distributions.Normal(0.0, 2.0).log_prob(torch.tensor(1.0)).double()
    torch.testing.assert_close(g, want.view(1))
    lap = M.log_likelihood(mu, x, "laplace", scale=0.5)
    want = 2 * torch.distributions.Laplace(0.0, 0.5).log_prob(torch.tensor(1.0)).double()
    torch.testing.assert_close(lap, want.view(1))
    # a decoder logvar is a log-variance for both: Laplace var = 2 b^2
    lv = torch.full_like(x, math.log(2 * 0.5**2))
    torch.testing.assert_close(M.log_likelihood(mu, x, "laplace", logvar=lv), lap)


def test_bits_per_dim():
    assert M.bits_per_dim(math.log(2) * 784, (1, 28, 28)) == pytest.approx(1.0)
    nll = torch.tensor([0.0, 3072 * math.log(2)])
    torch.testing.assert_close(
        M.discretized_bits_per_dim(nll, 3072), torch.tensor([8.0, 9.0]), rtol=0, atol=1e-6
    )
    assert M.discretized_bits_per_dim(0.0, 10, data_range=256) == pytest.approx(0.0)
    # k/255 data (ToTensor): levels 1/255 apart, so log2(255) bits per dim for a zero NLL
    assert M.discretized_bits_per_dim(0.0, 10, bin_width=1 / 255) == pytest.approx(math.log2(255))
    # the bin-width form equals the bin-count form where both apply
    assert M.discretized_bits_per_dim(5.0, 10, bin_width=1 / 64) == pytest.approx(
        M.discretized_bits_per_dim(5.0, 10, num_bins=64)
    )
    with pytest.raises(ValueError, match="bin_width"):
        M.discretized_bits_per_dim(0.0, 10, bin_width=0.0)
    with pytest.raises(ValueError, match="num_dims"):
        M.bits_per_dim(1.0, 0)


# -- latent health ----------------------------------------------------------------------------
class FixedEncoder(nn.Module):
    """Posterior means: dim 0 follows the data, dim 1 is constant, dim 2 varies a little."""

    latent_shape = (3,)

    def encode(self, x):
        m = x.flatten(1).mean(1, keepdim=True)
        mean = torch.cat([10 * (m - 0.5), torch.zeros_like(m), 0.05 * (m - 0.5)], 1)
        return vk.DiagonalGaussian(mean, torch.zeros_like(mean))

    def decode(self, z):
        return torch.zeros(z.shape[0], 1, 4, 4)


def test_active_units_and_kl_per_dim():
    model = FixedEncoder()
    x = torch.rand(64, 1, 4, 4)
    loader = [(xb, torch.zeros(len(xb))) for xb in x.split(10)]  # (images, labels) batches
    activity = M.latent_activity(model, loader)
    means = model.encode(x).mean.double()
    torch.testing.assert_close(activity, means.var(0))
    assert M.active_units(model, loader) == 1
    assert M.active_units(model, x, threshold=0.0) == 2
    kl = M.kl_per_dim(model, x)
    torch.testing.assert_close(kl, (0.5 * means.square()).mean(0))
    spatial = tiny_vae(latent="spatial", latent_channels=2)
    assert M.kl_per_dim(spatial, torch.rand(4, 1, 16, 16)).shape == spatial.latent_shape


def test_aggregate_posterior_gap_reads_ghosting():
    class Shrunk(FixedEncoder):
        def __init__(self, scale):
            super().__init__()
            self.scale = scale

        def encode(self, x):  # posterior means ~ N(0, scale^2), posterior var 1 - scale^2
            g = torch.Generator().manual_seed(int(x.sum() * 1000) % 2**31)
            mean = self.scale * torch.randn(x.shape[0], 4, generator=g)
            return vk.DiagonalGaussian(mean, torch.full_like(mean, math.log(1 - self.scale**2)))

    x = torch.rand(800, 1, 4, 4)
    good = M.aggregate_posterior_gap(Shrunk(0.8), x, generator=torch.Generator().manual_seed(0))
    assert good.kl_per_dim < 0.01 and good.mmd < 5 * good.mmd_noise + 1e-3

    class Holes(Shrunk):  # means on a thin line: prior samples land off the data
        def encode(self, x):
            q = super().encode(x)
            mean = q.mean * torch.tensor([3.0, 0.1, 0.1, 0.1])
            return vk.DiagonalGaussian(mean, torch.full_like(mean, math.log(0.01)))

    bad = M.aggregate_posterior_gap(Holes(0.8), x, generator=torch.Generator().manual_seed(0))
    assert bad.kl > 10 * max(good.kl, 0.01) and bad.eig_min < 0.1 and bad.mmd > 10 * good.mmd_noise
    assert bad.num_samples == 800


def test_aggregate_posterior_gap_to_another_prior():
    class Clustered(nn.Module):  # posterior means in two tight clusters far from N(0, I)
        latent_shape = (2,)

        def encode(self, x):
            side = (x.flatten(1).mean(1, keepdim=True) > 0.5).double() * 2 - 1
            mean = torch.cat([3 * side, -2 * side], 1) + 0.3 * (x.flatten(1)[:, :2].double() - 0.5)
            return vk.DiagonalGaussian(mean, torch.full_like(mean, math.log(0.05)))

        def decode(self, z):
            return torch.zeros(z.shape[0], 1, 4, 4)

    model = Clustered()
    x = torch.rand(600, 1, 4, 4)
    g = lambda: torch.Generator().manual_seed(0)
    normal = M.aggregate_posterior_gap(model, x, generator=g())
    same = M.aggregate_posterior_gap(model, x, generator=g(), prior=vk.priors.StandardNormal((2,)))
    assert same.kl == pytest.approx(normal.kl, rel=0.2)  # N(0, I) by samples: about the same
    latents = model.encode(x).sample(generator=g()).float()
    gmm = vk.priors.GaussianMixture(components=2).fit(latents, generator=g(), progress=False)
    fitted = M.aggregate_posterior_gap(
        model,
        x,
        generator=g(),
        prior=gmm.double(),
        target="samples",  # fitted on samples
    )
    assert fitted.kl < 0.05 * normal.kl and fitted.mmd < 0.1 * normal.mmd
    assert 0.5 < fitted.eig_min <= fitted.eig_max < 2  # S relative to the prior's covariance
    with pytest.raises(TypeError, match="prior must be None"):
        M.aggregate_posterior_gap(model, x, prior="gmm")
    with pytest.raises(ValueError, match=r"prior samples latents of shape \(3,\)"):
        M.aggregate_posterior_gap(model, x, prior=vk.priors.StandardNormal((3,)))


def test_gap_to_a_prior_fitted_on_means_ignores_collapsed_dimensions():
    """An ex-post prior models the posterior means: compared with posterior samples it looks
    far off in every collapsed dimension (variance 1 there, means ~0), which ranked the best
    prior worst. target="auto" compares it with the means."""

    class HalfCollapsed(nn.Module):  # 2 active dims in two clusters, 2 collapsed ones
        latent_shape = (4,)

        def encode(self, x):
            u = x.flatten(1)[:, :4].double() - 0.5
            side = (x.flatten(1).mean(1, keepdim=True) > 0.5).double() * 2 - 1
            mean = torch.cat([3 * side + 0.3 * u[:, :1], -2 * side + 0.3 * u[:, 1:2],
                              0.01 * u[:, 2:]], 1)  # fmt: skip
            logvar = torch.cat([torch.full_like(mean[:, :2], math.log(0.01)),
                                torch.zeros_like(mean[:, 2:])], 1)  # fmt: skip
            return vk.DiagonalGaussian(mean, logvar)

    model, x = HalfCollapsed(), torch.rand(600, 1, 4, 4)
    g = lambda: torch.Generator().manual_seed(0)
    means = model.encode(x).mean.float()
    gmm = vk.priors.GaussianMixture(2, reg=1e-8).fit(means, generator=g(), progress=False)
    normal = M.aggregate_posterior_gap(model, x, generator=g())
    fitted = M.aggregate_posterior_gap(model, x, generator=g(), prior=gmm.double())
    assert (normal.target, fitted.target) == ("samples", "means")
    assert fitted.kl_per_dim < 0.1 * normal.kl_per_dim and fitted.mmd < 0.1 * normal.mmd
    old = M.aggregate_posterior_gap(model, x, generator=g(), prior=gmm.double(), target="samples")
    assert old.kl_per_dim > normal.kl_per_dim  # the reading that pointed the wrong way
    with pytest.raises(ValueError, match=r"target must be one of \['auto', 'samples', 'means'\]"):
        M.aggregate_posterior_gap(model, x, target="mean")


def test_latent_metrics_restore_training_mode():
    vae = tiny_vae().train()
    vae.decoder.eval()  # a mixed state must come back exactly
    M.kl_per_dim(vae, torch.rand(4, 1, 16, 16))
    M.aggregate_posterior_gap(vae, torch.rand(4, 1, 16, 16))
    assert vae.training and vae.encoder.training and not vae.decoder.training


# -- images -----------------------------------------------------------------------------------
images = st.integers(0, 2**31 - 1).map(
    lambda s: torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(s))
)


@settings(max_examples=25, deadline=None)
@given(x=images, y=images)
def test_psnr_ssim_properties(x, y):
    assert torch.isinf(M.psnr(x, x)) and M.ssim(x, x, window_size=7) == pytest.approx(1.0)
    assert M.psnr(x, y) == pytest.approx(float(M.psnr(y, x)))
    s = M.ssim(x, y, window_size=7, reduction="none")
    assert s.shape == (2,) and (s <= 1 + 1e-6).all() and (s >= -1 - 1e-6).all()
    per = M.psnr(x, y, reduction="none")
    assert float(M.psnr(x, y)) == pytest.approx(float(per.mean()))


def test_psnr_value_and_ssim_against_reference():
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(M.psnr(x, x * 0 + x + 0.05, reduction="none"),
                               torch.full((3,), 26.0206), rtol=0, atol=1e-3)  # fmt: skip
    # reference SSIM formula with the full-image statistics (one window = whole 11x11 image)
    a, b = torch.rand(1, 1, 11, 11), torch.rand(1, 1, 11, 11)
    got = M.ssim(a, b, window_size=11, sigma=1e6)  # ~uniform weights over the one window
    ma, mb = a.mean(), b.mean()
    va, vb = a.var(unbiased=False), b.var(unbiased=False)
    cov = ((a - ma) * (b - mb)).mean()
    c1, c2 = 0.01**2, 0.03**2
    want = (2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    assert float(got) == pytest.approx(float(want), abs=1e-5)


def test_image_stats():
    x = torch.zeros(2, 3, 8, 8)
    x[1, :, :, 4:] = 1.0
    s = M.image_stats(x)
    assert s.sharpness.shape == (2,) and s.sharpness[0] == 0 and s.sharpness[1] > 0
    torch.testing.assert_close(s.brightness, torch.tensor([0.0, 0.5]))
    torch.testing.assert_close(s.contrast, torch.tensor([0.0, 0.5]))
    assert s.min.tolist() == [0.0, 0.0] and s.max.tolist() == [0.0, 1.0]
    assert s.mean() == pytest.approx(
        {"sharpness": float(s.sharpness.mean()), "brightness": 0.25, "contrast": 0.25,
         "min": 0.0, "max": 0.5}
    )  # fmt: skip


# -- radial power spectrum --------------------------------------------------------------------
def _ring_count(h: int, w: int, k: int) -> int:
    """Coefficients of an H x W spectrum at round(|f| * max(H, W)) == k, counted by hand."""
    size = max(h, w)

    def signed(n: int) -> list[int]:  # FFT order: 0, 1, ..., then the negative frequencies
        return [i if i <= n // 2 else i - n for i in range(n)]

    return sum(round(math.hypot(j / h, i / w) * size) == k for j in signed(h) for i in signed(w))


@settings(max_examples=30, deadline=None)
@given(
    size=st.sampled_from([(16, 16), (12, 20), (20, 12), (9, 9)]),
    along=st.sampled_from(["rows", "cols"]),
    cycles=st.integers(1, 4),
    amplitude=st.floats(0.05, 0.5),
    phase=st.floats(0, 2 * math.pi),
)
def test_radial_spectrum_of_a_pure_tone_is_one_ring_in_closed_form(
    size, along, cycles, amplitude, phase
):
    h, w = size
    n = w if along == "cols" else h  # the tone runs along this axis: `cycles` periods in n px
    col = torch.arange(n, dtype=torch.float64)
    wave = 0.5 + amplitude * torch.cos(2 * math.pi * cycles * col / n + phase)
    x = (wave.view(1, n) if along == "cols" else wave.view(n, 1)).expand(h, w)
    x = x.expand(3, 2, h, w)  # 3 images, 2 identical channels
    freq, power = M.radial_power_spectrum(x, window=None)
    assert freq.dtype == power.dtype == torch.float64
    ring = round(cycles / n * max(h, w))  # the tone's frequency in cycles/pixel, on the ring grid
    # two coefficients (+-f) of |X|^2 = (A H W / 2)^2 each, normalised by H W, mean over the ring
    want = torch.zeros_like(power)
    want[ring] = 2 * (amplitude * h * w / 2) ** 2 / (h * w) / _ring_count(h, w, ring)
    torch.testing.assert_close(power, want, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(freq, torch.arange(len(freq), dtype=torch.float64) / max(h, w))
    # the (periodic) Hann window spreads each coefficient to its 8 neighbours only: the tone's
    # power stays in their rings; on the long axis the peak stays put away from the ends
    # (ring 0 is one coefficient, the last ring loses its outer neighbour)
    hann = M.radial_power_spectrum(x, window="hann").power
    other = h if along == "cols" else w
    near = {round(math.hypot((cycles + d) / n, e / other) * max(h, w))
            for d in (-1, 0, 1) for e in (-1, 0, 1)}  # fmt: skip
    far = [k for k in range(len(hann)) if k not in near]
    assert float(hann[far].abs().sum()) < 1e-9 * float(hann.sum())
    if n == max(h, w) and 2 <= ring < len(hann) - 1:
        assert int(hann.argmax()) == ring


def test_radial_spectrum_of_a_constant_image_is_its_mean():
    x = torch.full((2, 1, 6, 10), 0.25, dtype=torch.float64)
    freq, power = M.radial_power_spectrum(x, remove_mean=False, window=None)
    assert freq.shape == (6,) and float(freq[-1]) == 0.5
    want = torch.zeros(6, dtype=torch.float64)
    want[0] = 0.25**2 * 6 * 10  # |X(0)|^2 / (H W) = (c H W)^2 / (H W), one coefficient
    torch.testing.assert_close(power, want)
    assert float(M.radial_power_spectrum(x, window=None).power.abs().max()) < 1e-20


@pytest.mark.parametrize("window", ["hann", None])
def test_radial_spectrum_of_white_noise_is_flat_at_its_variance(window):
    sigma = 0.3
    x = 0.5 + sigma * torch.randn(64, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    spec = M.radial_power_spectrum(x, window=window)
    assert spec.power.dtype == torch.float32 and spec.frequency.shape == (17,)
    # rings 2..16 hold 12+ coefficients x 64 images: each mean within a few % of sigma^2; ring 1
    # loses a little to the mean removal under the window (its leakage reaches ring 1)
    first = 1 if window is None else 2
    ratio = spec.power[first:] / sigma**2
    assert float(ratio.min()) > 0.75 and float(ratio.max()) < 1.25, ratio
    per_image = M.radial_power_spectrum(x, window=window, reduction="none").power
    assert per_image.shape == (64, 17)
    torch.testing.assert_close(per_image.mean(0), spec.power)


def test_radial_spectrum_blur_removes_high_frequencies():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, 3, 24, 24, generator=g, dtype=torch.float64)
    # a circular 3x3 box blur: every coefficient is multiplied by |H(f)|^2 <= 1
    blurred = torch.nn.functional.avg_pool2d(
        torch.nn.functional.pad(x, (1, 1, 1, 1), mode="circular"), 3, 1
    )
    sharp = M.radial_power_spectrum(x, window=None).power
    soft = M.radial_power_spectrum(blurred, window=None).power
    assert bool((soft <= sharp * (1 + 1e-9)).all())
    high = slice(len(sharp) // 2, None)  # above 0.25 cycles/pixel the box passes little
    assert float((soft[high] / sharp[high]).max()) < 0.5
    # the sharpness statistic agrees
    assert float(M.image_stats(blurred).sharpness.mean()) < float(M.image_stats(x).sharpness.mean())
    # and the windowed spectrum (the default) tells the same story
    hann_ratio = M.radial_power_spectrum(blurred).power / M.radial_power_spectrum(x).power
    assert float(hann_ratio[high].max()) < 0.5


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 3),
    h=st.integers(2, 17),
    w=st.integers(2, 17),
    channels=st.sampled_from(M.spectrum.CHANNELS),
    window=st.sampled_from(M.spectrum.WINDOWS),
    seed=st.integers(0, 2**31 - 1),
    shift=st.tuples(st.integers(0, 16), st.integers(0, 16)),
)
def test_radial_spectrum_shapes_and_invariances(n, c, h, w, channels, window, seed, shift):
    x = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))
    kw = {"channels": channels, "window": window}
    freq, power = M.radial_power_spectrum(x, **kw)
    k = max(h, w) // 2 + 1
    assert freq.shape == power.shape == (k,) and power.dtype == torch.float32
    assert float(freq[0]) == 0 and float(freq[-1]) <= 0.5 and bool((freq.diff() > 0).all())
    assert bool(torch.isfinite(power).all() and (power >= 0).all())
    assert M.radial_power_spectrum(x, **kw, reduction="none").power.shape == (n, k)
    # power scales with the square of the contrast; the mean brightness does not count
    torch.testing.assert_close(M.radial_power_spectrum(3 * x + 7, **kw).power, 9 * power,
                               rtol=1e-3, atol=1e-5)  # fmt: skip
    # float64 in, float64 out
    assert M.radial_power_spectrum(x.double(), **kw).power.dtype == torch.float64
    if window is None:  # a circular shift only turns phases: the same power
        rolled = x.roll(shift, dims=(-2, -1))
        torch.testing.assert_close(M.radial_power_spectrum(rolled, **kw).power, power,
                                   rtol=1e-4, atol=1e-6)  # fmt: skip


def test_radial_spectrum_channels_grey_or_mean():
    stripes = (torch.arange(8) % 2).expand(8, 8)  # 0.5 cycles/pixel across: the last ring
    x = torch.stack([stripes, 1 - stripes]).float()[None]  # two channels in anti-phase
    grey = M.radial_power_spectrum(x, channels="grey", window=None).power
    each = M.radial_power_spectrum(x, channels="mean", window=None).power
    assert float(grey.abs().max()) < 1e-10  # the grey image is flat: nothing to see
    assert int(each.argmax()) == 4 and float(each[4]) > 0  # colour detail counts in "mean"
    same = x[:, :1].expand(1, 3, 8, 8)  # equal channels: the two modes agree
    torch.testing.assert_close(
        M.radial_power_spectrum(same, channels="grey").power,
        M.radial_power_spectrum(same, channels="mean").power,
    )
    # a checkerboard (0.5, 0.5) lies beyond 0.5 cycles/pixel radially: the dropped corner
    checker = ((torch.arange(8)[:, None] + torch.arange(8)) % 2).float().expand(1, 1, 8, 8)
    assert float(M.radial_power_spectrum(checker, window=None).power.abs().max()) < 1e-10


# -- FID --------------------------------------------------------------------------------------
def test_fid_matches_closed_form_and_sqrtm():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 5, generator=g, dtype=torch.float64)
    b = torch.randn(300, 5, generator=g, dtype=torch.float64) @ torch.randn(
        5, 5, generator=g, dtype=torch.float64
    )
    mu1, s1 = M.feature_stats(a)
    mu2, s2 = M.feature_stats(b)
    # reference via an eigen-decomposition of the (non-symmetric) product S1 S2
    eig = torch.linalg.eigvals(s1 @ s2)
    ref = (mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * eig.sqrt().real.sum()
    assert M.fid(a, b) == pytest.approx(float(ref), rel=1e-8)
    assert M.fid(a, a) == pytest.approx(0.0, abs=1e-9)
    assert M.fid(a, b) == pytest.approx(M.fid(b, a), rel=1e-8)


def test_extract_features_and_inception_random(tmp_path, monkeypatch):
    net = M.InceptionFeatures(weights=None).train()
    assert not net.net.training  # frozen backbone stays in eval
    feats = M.extract_features(net, torch.rand(3, 1, 20, 20), batch_size=2)
    assert feats.shape == (3, 2048) and feats.dtype == torch.float64
    assert isinstance(net, M.FeatureExtractor)


def test_inception_offline_error_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(FileNotFoundError, match=M.INCEPTION_WEIGHTS_FILE) as info:
        M.InceptionFeatures()
    assert str(tmp_path / "hub" / "checkpoints") in str(info.value)
    assert f"https://download.pytorch.org/models/{M.INCEPTION_WEIGHTS_FILE}" in str(info.value)
    # one weights flow for losses and metrics: the same error class as perceptual/lpips
    assert isinstance(info.value, ValueError) and isinstance(info.value, WeightsNotFoundError)
    with pytest.raises(FileNotFoundError, match="no such file"):
        M.InceptionFeatures(weights=tmp_path / "missing.pth")


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda v: M.iwae_nll(v, torch.rand(2, 3, 16, 16)), ValueError, "1 channel"),
        (lambda v: M.iwae_nll(v, torch.rand(2, 1, 8, 8)), ValueError, r"spatial size \(16, 16\)"),
        (lambda v: M.iwae_nll(v, torch.rand(1, 16, 16)), ValueError, "4-D"),
        (lambda v: M.iwae_nll(v, 2 * torch.rand(2, 1, 16, 16)), ValueError, r"\[0, 1\]"),
        (lambda v: M.iwae_nll(v, torch.rand(2, 1, 16, 16), k=0), ValueError, "k must"),
        (
            lambda v: M.iwae_nll(v, torch.rand(2, 1, 16, 16), likelihood="poisson"),
            ValueError,
            "one of",
        ),
        (
            lambda v: M.iwae_nll(v, torch.rand(2, 1, 16, 16), likelihood="gaussian"),
            ValueError,
            "sigma=",
        ),
        (
            lambda v: M.iwae_nll(v, torch.rand(2, 1, 16, 16), likelihood="laplace", sigma=0.1),
            ValueError,
            "scale=",
        ),
        (
            lambda v: M.iwae_nll(v, torch.rand(2, 1, 16, 16), likelihood=lambda r, x: r.sum()),
            ValueError,
            "shape",
        ),
        (lambda v: M.iwae_nll(v, torch.rand(2, 1, 16, 16), reduction="sum"), ValueError, "mean"),
        (
            lambda v: M.iwae_nll(torch.nn.Linear(1, 1), torch.rand(2, 1, 16, 16)),
            TypeError,
            "encode",
        ),
        (
            lambda v: M.psnr(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 9)),
            ValueError,
            "same shape",
        ),
        (
            lambda v: M.ssim(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)),
            ValueError,
            "at least 11x11",
        ),
        (
            lambda v: M.ssim(torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16), window_size=4),
            ValueError,
            "odd",
        ),
        (
            lambda v: M.psnr(torch.rand(2, 1, 8, 8).long(), torch.rand(2, 1, 8, 8)),
            TypeError,
            "floating",
        ),
        (lambda v: M.active_units(v, torch.rand(1, 1, 16, 16)), ValueError, ">= 2 images"),
        (lambda v: M.kl_per_dim(v, []), ValueError, "no batches"),
        (
            lambda v: M.kl_per_dim(v, [torch.zeros(2, 1, 16, 16, dtype=torch.uint8)]),
            TypeError,
            "x.float",
        ),
        (lambda v: M.fid(torch.randn(10, 3), torch.randn(10, 4)), ValueError, "feature size"),
        (lambda v: M.fid(torch.randn(1, 3), torch.randn(10, 3)), ValueError, ">= 2 rows"),
        (lambda v: M.InceptionFeatures(weights=3), TypeError, "weights must be"),
        (lambda v: M.radial_power_spectrum(torch.rand(1, 8, 8)), ValueError, "4-D"),
        (lambda v: M.radial_power_spectrum(torch.ones(1, 1, 8, 8).long()), TypeError, "floating"),
        (lambda v: M.radial_power_spectrum(torch.rand(2, 1, 1, 8)), ValueError, "at least 2x2"),
        (
            lambda v: M.radial_power_spectrum(torch.full((1, 1, 4, 4), math.nan)),
            ValueError,
            "images must be finite",
        ),
        (
            lambda v: M.radial_power_spectrum(torch.rand(1, 3, 8, 8), channels="rgb"),
            ValueError,
            r"channels must be one of \['grey', 'mean'\], got 'rgb'",
        ),
        (
            lambda v: M.radial_power_spectrum(torch.rand(1, 1, 8, 8), window="hamming"),
            ValueError,
            r"window must be one of \['hann', None\]",
        ),
        (
            lambda v: M.radial_power_spectrum(torch.rand(1, 1, 8, 8), remove_mean="yes"),
            TypeError,
            "remove_mean must be True or False",
        ),
        (
            lambda v: M.radial_power_spectrum(torch.rand(1, 1, 8, 8), reduction="sum"),
            ValueError,
            "reduction must be one of",
        ),
    ],
)
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call(tiny_vae())


# -- sample_report ------------------------------------------------------------------------------
def test_sample_report_puts_sample_fd_next_to_reconstructions_and_the_floor():
    torch.manual_seed(0)
    vae = tiny_vae().train()
    feats = lambda x: torch.nn.functional.avg_pool2d(x, 4).flatten(1)
    g = lambda: torch.Generator().manual_seed(3)
    x, x_train = torch.rand(40, 1, 16, 16), torch.rand(60, 1, 16, 16)
    gmm = vk.priors.GaussianMixture(2).fit(torch.randn(100, 3) + 2, progress=False,
                                           generator=g())  # fmt: skip
    priors = {"standard_normal": vae.prior, "gmm": gmm}
    r = M.sample_report(vae, feats, x, priors=priors, train_images=x_train, generator=g())
    assert vae.training  # modes restored
    real = M.extract_features(feats, x)
    with torch.no_grad():
        recon = vae.eval()(x).recon.clamp(0, 1)
        fd_normal = M.fid(
            real,
            M.extract_features(feats, vae.decode(vae.prior.sample(40, generator=g())).clamp(0, 1)),
        )
    vae.train()
    assert r.recon == pytest.approx(M.fid(real, M.extract_features(feats, recon)), rel=1e-6)
    assert r.floor == pytest.approx(M.fid(real, M.extract_features(feats, x_train[:40])), rel=1e-6)
    assert list(r.samples) == ["standard_normal", "gmm"] and r.num_images == 40
    assert r.samples["standard_normal"] == pytest.approx(fd_normal, rel=1e-6)
    assert r.ratios == {k: v / r.recon for k, v in r.samples.items()}
    md = r.to_markdown()
    assert "| training images (floor) |" in md and "| samples: gmm |" in md
    again = M.sample_report(vae, feats, x, priors=priors, train_images=x_train, generator=g())
    assert again.samples == r.samples
    default = M.sample_report(vae, feats, x, generator=g())
    assert list(default.samples) == ["prior"] and math.isnan(default.floor)


def test_sample_report_bad_inputs():
    vae, feats = tiny_vae(), lambda x: x.mean((2, 3))
    x = torch.rand(8, 1, 16, 16)
    with pytest.raises(ValueError, match=r"images must be a batch \(N, C, H, W\) of at least 2"):
        M.sample_report(vae, feats, x[0])
    with pytest.raises(TypeError, match=r"priors must be a non-empty dict"):
        M.sample_report(vae, feats, x, priors={})
    with pytest.raises(TypeError, match=r"priors\['bad'\] cannot sample: got int"):
        M.sample_report(vae, feats, x, priors={"bad": 3})
    with pytest.raises(ValueError, match=r"train_images must be \(M, 1, 16, 16\) with M >= 2"):
        M.sample_report(vae, feats, x, train_images=torch.rand(8, 1, 8, 8))
