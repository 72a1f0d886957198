"""KL, free bits, composition (Weighted, MultiScale) and VAELoss scaling."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vaekit as vk


def gaussian(*shape: int, seed: int = 0, scale: float = 1.0) -> vk.DiagonalGaussian:
    g = torch.Generator().manual_seed(seed)
    return vk.DiagonalGaussian(
        scale * torch.randn(shape, generator=g), scale * torch.randn(shape, generator=g)
    )


floats = st.floats(-4, 4, allow_nan=False, width=32)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(floats, floats, floats, floats), min_size=1, max_size=6))
def test_kl_matches_torch_distributions(rows):
    m, lv, m2, lv2 = torch.tensor(rows, dtype=torch.float64).T.reshape(4, 1, -1)
    normal = lambda mean, logvar: torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    std = torch.distributions.kl_divergence(normal(m, lv), normal(0 * m, 0 * lv)).sum(-1).mean()
    torch.testing.assert_close(vk.losses.KL()(m, lv), std)
    torch.testing.assert_close(vk.functional.free_bits_kl(m, lv), std)
    prior = vk.DiagonalGaussian(m2, lv2, logvar_range=None)
    two = torch.distributions.kl_divergence(normal(m, lv), normal(m2, lv2)).sum(-1).mean()
    torch.testing.assert_close(vk.losses.KL()(m, lv, prior=prior), two)


@pytest.mark.parametrize("shape", [(3, 5), (3, 2, 4, 4)])
def test_kl_of_unit_shift_is_half_nat_per_dim(shape):
    q = vk.DiagonalGaussian(torch.ones(shape), torch.zeros(shape))
    dims = math.prod(shape[1:])
    assert float(vk.losses.KL()(q)) == pytest.approx(0.5 * dims)
    assert float(vk.losses.build("kl")(q.mean, q.logvar)) == pytest.approx(0.5 * dims)


def test_kl_agrees_with_monte_carlo():
    q = gaussian(4, 6, seed=3, scale=0.7)
    n = 20_000
    z = q.sample_n(n, generator=torch.Generator().manual_seed(0))  # (n, B, D)
    prior = vk.DiagonalGaussian(torch.zeros_like(q.mean), torch.zeros_like(q.logvar))
    log_ratio = (q.log_prob(z) - prior.log_prob(z)).mean(1)  # batch mean, (n,)
    estimate, stderr = log_ratio.mean(), log_ratio.std() / math.sqrt(n)
    assert abs(float(vk.losses.KL()(q)) - float(estimate)) < 4 * float(stderr)


def test_kl_is_float32_under_autocast():
    q = gaussian(2, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = vk.losses.KL(free_bits=0.1)(q.mean.bfloat16(), q.logvar.bfloat16())
    assert value.dtype == torch.float32 and torch.isfinite(value)


@pytest.mark.parametrize(
    ("shape", "group", "groups"),
    [((4, 6), "dim", 6), ((4, 2, 3, 3), "dim", 18), ((4, 2, 3, 3), "channel", 2),
     ((4, 6), "element", 6)],
)  # fmt: skip
def test_free_bits_floor_and_gradients(shape, group, groups):
    mean = torch.zeros(shape)
    mean[:, 0] = 3.0  # group 0 is far above any floor, the rest is at KL = 0
    mean.requires_grad_(True)
    logvar = torch.zeros(shape, requires_grad=True)
    lam = 0.5
    kl = vk.losses.KL(free_bits=lam, group=group)
    terms = kl.forward_terms(mean, logvar)
    assert float(terms["kl"].detach()) >= lam * groups - 1e-6
    assert float(terms["kl_raw"].detach()) == pytest.approx(4.5 * math.prod(shape[2:]))  # 0.5 * 3²
    torch.testing.assert_close(
        terms["kl"], vk.functional.free_bits_kl(mean, logvar, lam, group=group)
    )
    terms["kl"].backward()
    assert float(mean.grad[:, 1:].abs().sum()) == 0  # below the floor: no gradient
    assert float(mean.grad[:, 0].abs().sum()) > 0


def test_free_bits_zero_is_plain_kl():
    q = gaussian(3, 2, 4, 4, seed=5)
    for group in vk.losses.kl.FREE_BITS_GROUPS:
        torch.testing.assert_close(vk.losses.KL(0.0, group=group)(q), q.kl().mean())


def test_kl_bad_arguments():
    with pytest.raises(ValueError, match="group must be one of"):
        vk.losses.KL(group="pixel")
    with pytest.raises(ValueError, match="free_bits must be >= 0"):
        vk.losses.KL(free_bits=-1.0)
    with pytest.raises(TypeError, match="DiagonalGaussian or \\(mean, logvar\\)"):
        vk.losses.KL()(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        vk.losses.KL()(torch.zeros(2, 3), torch.zeros(2, 4))


# -- composition ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 16, 16, generator=g)
    return (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1), x


def test_weighted_terms_and_sum(batch):
    noisy, x = batch
    recon = vk.losses.Weighted({"l1": 1.0, "ssim": 0.5, "fft": (vk.losses.FFTLoss(focal=1.0), 0.1)})
    terms = recon.forward_terms(noisy, x)
    assert list(terms) == ["l1", "ssim", "fft"]
    expected = terms["l1"] + 0.5 * terms["ssim"] + 0.1 * terms["fft"]
    torch.testing.assert_close(recon(noisy, x), expected)
    torch.testing.assert_close(terms["ssim"], vk.functional.ssim_loss(noisy, x))


def test_weighted_rejects_bad_specs():
    with pytest.raises(ValueError, match="unknown loss 'l3'"):
        vk.losses.Weighted({"l3": 1.0})
    with pytest.raises(ValueError, match="weight of term 'l1' must be >= 0"):
        vk.losses.Weighted({"l1": -1.0})
    with pytest.raises(ValueError, match="not a reconstruction loss"):
        vk.losses.Weighted({"kl": 1.0})
    with pytest.raises(ValueError, match="not one of"):
        vk.losses.Weighted({"recon": (vk.losses.L1Loss(), 1.0)})
    with pytest.raises(ValueError, match="same scalar reduction"):
        vk.losses.Weighted({"l1": 1.0, "mse": (vk.losses.MSELoss(reduction="sum"), 1.0)})
    with pytest.raises(TypeError, match="non-empty dict"):
        vk.losses.Weighted({})


def test_multiscale_averages_pyramid(batch):
    noisy, x = batch
    pool = torch.nn.functional.avg_pool2d
    multi = vk.losses.MultiScale("mse", scales=3, weights=[2, 1, 1])
    expected = (
        2 * vk.functional.mse_loss(noisy, x)
        + vk.functional.mse_loss(pool(noisy, 2), pool(x, 2))
        + vk.functional.mse_loss(pool(noisy, 4), pool(x, 4))
    ) / 4
    torch.testing.assert_close(multi(noisy, x), expected)
    torch.testing.assert_close(
        vk.losses.MultiScale("l1", scales=1)(noisy, x), vk.functional.l1_loss(noisy, x)
    )
    nested = vk.losses.MultiScale(vk.losses.Weighted({"l1": 1.0, "ms_ssim": 0.5}), scales=2)
    terms = nested.forward_terms(noisy, x)
    assert terms.keys() == {"l1", "ms_ssim"}
    torch.testing.assert_close(nested(noisy, x), terms["l1"] + 0.5 * terms["ms_ssim"])
    with pytest.raises(ValueError, match="at least 32 px"):
        vk.losses.MultiScale("l1", scales=6)(noisy, x)
    with pytest.raises(ValueError, match="scales must be >= 1, got 0"):
        vk.losses.MultiScale("l1", scales=0)


# -- VAELoss --------------------------------------------------------------------------------


def vae_output(x: torch.Tensor, recon_logvar=None, latent=(2, 4)) -> vk.VAEOutput:
    g = torch.Generator().manual_seed(7)
    q = vk.DiagonalGaussian(
        torch.randn(latent, generator=g), 0.5 * torch.randn(latent, generator=g)
    )
    recon = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1).requires_grad_(True)
    return vk.VAEOutput(recon=recon, posterior=q, z=q.mean, recon_logvar=recon_logvar)


@pytest.mark.parametrize("reduction", ["mean", "batchmean", "sum"])
def test_total_is_negative_elbo_with_gaussian_likelihood(batch, reduction):
    _, x = batch
    out = vae_output(x)
    sigma = 0.3
    loss = vk.losses.VAELoss(recon=vk.losses.GaussianNLLLoss(sigma, reduction=reduction), beta=1.0)
    res = loss(out, x)
    # by hand: log p(x|z) per sample and KL per sample, in nats, float64
    r, xd = out.recon.detach().double(), x.double()
    log_px = (
        (-0.5 * (math.log(2 * math.pi * sigma**2) + (xd - r) ** 2 / sigma**2)).flatten(1).sum(1)
    )
    m, lv = out.posterior.mean.double(), out.posterior.logvar.double()
    kl = 0.5 * (m**2 + lv.exp() - 1 - lv).sum(1)
    neg_elbo = kl - log_px  # (B,)
    dims = x[0].numel()
    expected = {"mean": neg_elbo.mean() / dims, "batchmean": neg_elbo.mean(), "sum": neg_elbo.sum()}
    assert float(res.total.detach()) == pytest.approx(float(expected[reduction]), rel=1e-5)
    assert float(res.terms["kl"]) == pytest.approx(float(kl.mean()), rel=1e-5)


def test_terms_are_detached_and_complete(batch):
    _, x = batch
    out = vae_output(x)
    loss = vk.losses.VAELoss(
        recon={"l1": 1.0, "ssim": 0.5}, kl=vk.losses.KL(free_bits=2.0), beta=lambda s: s / 10
    )
    res = loss(out, x, step=5)
    assert res.beta == 0.5
    assert set(res.terms) == {"l1", "ssim", "recon", "kl", "kl_raw"}
    assert all(not t.requires_grad for t in res.terms.values())
    assert res.total.requires_grad
    assert float(res.terms["kl"]) >= float(res.terms["kl_raw"])
    dims = x[0].numel()
    expected = res.terms["l1"] + 0.5 * res.terms["ssim"] + 0.5 * res.terms["kl"] / dims
    torch.testing.assert_close(res.total.detach(), expected)
    res.total.backward()
    assert out.recon.grad is not None
    bare = vk.losses.VAELoss(recon="mse")(out, x)
    assert set(bare.terms) == {"mse", "recon", "kl", "kl_raw"}


def test_spatial_latent_and_kl_scale_override(batch):
    _, x = batch
    out = vae_output(x, latent=(2, 2, 2, 2))
    res = vk.losses.VAELoss(recon="l1", kl_scale=1.0)(out, x)
    torch.testing.assert_close(res.total.detach(), res.terms["recon"] + out.posterior.kl().mean())


def test_decoder_logvar_is_passed_to_likelihoods(batch):
    _, x = batch
    logvar = torch.full(x.shape, -2.0)
    out = vae_output(x, recon_logvar=logvar)
    res = vk.losses.VAELoss(recon="gaussian_nll")(out, x)
    expected = vk.functional.gaussian_nll(out.recon, x, logvar)
    torch.testing.assert_close(res.terms["gaussian_nll"], expected.detach())
    mixed = vk.losses.VAELoss(recon=vk.losses.MultiScale({"l1": 1.0, "laplace_nll": 1.0}, 2))
    terms = mixed(out, x).terms
    assert {"l1", "laplace_nll"} <= terms.keys()


def test_logvar_with_a_loss_that_cannot_use_it(batch):
    _, x = batch
    out = vae_output(x, recon_logvar=torch.zeros(1, 1, 1, 1))
    with pytest.raises(ValueError, match="cannot use it"):
        vk.losses.VAELoss(recon="l1")(out, x)
    res = vk.losses.VAELoss(recon="l1", ignore_recon_logvar=True)(out, x)
    assert torch.isfinite(res.total)
    with pytest.raises(ValueError, match="two variance models"):
        vk.losses.VAELoss(recon=vk.losses.GaussianNLLLoss("learned"))(out, x)


def test_vaeloss_bad_arguments(batch):
    _, x = batch
    out = vae_output(x)
    with pytest.raises(ValueError, match=r"beta\(0\) must be >= 0, got -1.0"):
        vk.losses.VAELoss(recon="l1", beta=lambda s: -1.0)(out, x, step=0)
    with pytest.raises(ValueError, match=r"beta\(0\) must be finite, got nan"):
        vk.losses.VAELoss(recon="l1", beta=lambda s: float("nan"))(out, x, step=0)
    with pytest.raises(TypeError, match=r"beta\(0\) must be a number, got str"):
        vk.losses.VAELoss(recon="l1", beta=lambda s: "1")(out, x, step=0)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        vk.losses.VAELoss(recon="l1", beta=-0.1)
    # a schedule that goes negative is refused when the loss is built, not at step 8
    S = vk.schedules
    for bad in (
        S.Linear(1e-3, -1e-3, steps=10),
        S.Cyclical(100, start=-1.0, end=1.0),
        S.Sequence([(5, S.Constant(0.0)), (5, S.Cosine(0.0, -2.0, steps=5))]),
    ):
        with pytest.raises(ValueError, match=r"beta must stay .* >= 0 at every step.*ranges over"):
            vk.losses.VAELoss(recon="l1", beta=bad)
    with pytest.raises(ValueError, match="reduce to a scalar"):
        vk.losses.VAELoss(recon=vk.losses.L1Loss(reduction="none"))
    with pytest.raises(TypeError, match="VAEOutput"):
        vk.losses.VAELoss(recon="l1")((out.recon, out.posterior), x)
    with pytest.raises(ValueError, match=r"out.recon and x.*\(2, 1, 16, 16\).*\(2, 1, 8, 8\)"):
        vk.losses.VAELoss(recon="l1")(out, x[..., :8, :8])
    with pytest.raises(TypeError, match="kl must be"):
        vk.losses.VAELoss(recon="l1", kl=vk.losses.L1Loss())


def test_a_schedule_needs_the_step(batch):
    _, x = batch
    out = vae_output(x)
    for beta in (vk.schedules.Linear(0.0, 1.0, steps=10), lambda step: min(1.0, step / 10)):
        loss = vk.losses.VAELoss(recon="l1", beta=beta)
        with pytest.raises(TypeError, match=r"beta is a schedule .*pass step="):
            loss(out, x)  # would train at beta(0) = 0 forever
        assert loss(out, x, step=5).beta == 0.5
    for beta in (0.25, vk.schedules.Constant(0.25)):  # no step needed
        res = vk.losses.VAELoss(recon="l1", beta=beta)(out, x)
        assert res.beta == 0.25
        torch.testing.assert_close(
            res.total, vk.losses.VAELoss(recon="l1", beta=beta)(out, x, step=7).total
        )


@pytest.mark.parametrize("reduction", ["sum", "batchmean"])
def test_multiscale_sum_pairs_with_the_kl_on_one_scale(batch, reduction):
    # on images constant on 4x4 blocks every level equals the full-resolution one, so
    # kl_scale="auto" must see MultiScale(mse) exactly as mse: the same total
    noisy, x = batch

    def blocky(t):
        return t[..., ::4, ::4].repeat_interleave(4, -2).repeat_interleave(4, -1)

    out = vae_output(x)
    out = vk.VAEOutput(recon=blocky(noisy), posterior=out.posterior, z=out.z)
    mse = vk.losses.MSELoss(reduction=reduction)
    plain = vk.losses.VAELoss(recon=mse)(out, blocky(x))
    multi = vk.losses.VAELoss(recon=vk.losses.MultiScale(mse, scales=3))(out, blocky(x))
    torch.testing.assert_close(multi.total, plain.total)
    assert float(plain.total - plain.terms["recon"]) > 0.1 * float(plain.total)  # KL matters


def test_kl_and_vaeloss_compile_without_graph_breaks(batch):
    _, x = batch
    out = vae_output(x, recon_logvar=torch.zeros(1, 1, 1, 1), latent=(2, 2, 2, 2))
    loss = vk.losses.VAELoss(
        recon=vk.losses.MultiScale({"gaussian_nll": 1.0, "ssim": 0.5}, scales=2),
        kl=vk.losses.KL(0.1, group="channel"),
        beta=lambda step: 0.5,
    )
    compiled = torch.compile(loss, backend="eager", fullgraph=True)
    res, ref = compiled(out, x, step=3), loss(out, x, step=3)
    torch.testing.assert_close(res.total, ref.total)
    assert res.terms.keys() == ref.terms.keys()
    kl = torch.compile(vk.losses.KL(0.1), backend="eager", fullgraph=True)
    torch.testing.assert_close(kl(out.posterior), vk.losses.KL(0.1)(out.posterior))


# -- the KL to the model's prior ------------------------------------------------------------
def tiny_vae(prior=None, latent: str = "flat") -> vk.VAE:
    cfg = vk.VAEConfig(
        in_channels=1, image_size=8, widths=(4,), latent=latent, latent_dim=3,
        latent_channels=2, attention_at=(), block="conv",
    )  # fmt: skip
    return vk.VAE(cfg, prior=prior)


@pytest.mark.parametrize("shape", [(4, 6), (4, 2, 3, 3)])
@pytest.mark.parametrize("group", ["dim", "channel", "element"])
def test_standard_normal_prior_gives_exactly_the_old_kl(shape, group):
    q = gaussian(*shape, seed=2)
    prior = vk.priors.StandardNormal(shape[1:])
    for lam in (0.0, 0.3):
        kl = vk.losses.KL(lam, group=group)
        old, new = kl.forward_terms(q), kl.forward_terms(q, prior=prior, z=q.sample())
        assert new.keys() == old.keys() == {"kl", "kl_raw"}  # closed form: no kl_mc
        assert all(torch.equal(new[k], old[k]) for k in old)


@pytest.mark.parametrize("recon", ["bce", "gaussian_nll"])
def test_total_is_the_negative_elbo_per_dimension_with_the_vaes_prior(recon):
    torch.manual_seed(0)
    vae = tiny_vae().train()
    x = torch.rand(3, 1, 8, 8)
    out = vae(x)
    assert isinstance(out.prior, vk.priors.StandardNormal)
    sigma = 0.2
    loss_fn = vk.losses.VAELoss(recon=recon if recon == "bce" else vk.losses.GaussianNLLLoss(sigma))
    res = loss_fn(out, x)
    r, xd = out.recon.detach().double(), x.double()
    if recon == "bce":
        log_px = (xd * r.log() + (1 - xd) * (1 - r).log()).flatten(1).sum(1)
    else:
        log_px = (-0.5 * (math.log(2 * math.pi * sigma**2) + (xd - r) ** 2 / sigma**2)).sum(
            (1, 2, 3)
        )
    q = out.posterior.detach()
    m, lv = q.mean.double(), q.logvar.double()
    kl = 0.5 * (m**2 + lv.exp() - 1 - lv).sum(1)
    neg_elbo_per_dim = (kl - log_px).mean() / x[0].numel()
    assert float(res.total.detach()) == pytest.approx(float(neg_elbo_per_dim), rel=1e-5)
    # out.prior = None (an output built by hand) is N(0, I): the same numbers, bit for bit
    plain = loss_fn(vk.VAEOutput(out.recon, out.posterior, out.z), x)
    assert torch.equal(plain.total, res.total) and plain.terms.keys() == res.terms.keys()


def one_gaussian_prior(d: int) -> vk.priors.MixtureOfGaussians:
    """A one-component mixture: a Gaussian prior without the closed-form flag (Monte Carlo)."""
    prior = vk.priors.MixtureOfGaussians(components=1, latent_shape=(d,))
    with torch.no_grad():
        prior.means.copy_(torch.tensor([[0.5, -1.0, 0.2, 1.5]]))
        prior.log_scales.copy_(torch.tensor([[0.3, -0.2, 0.0, 0.5]]))
    return prior


def test_monte_carlo_kl_matches_the_closed_form_in_expectation():
    q = gaussian(5, 4, seed=4, scale=0.6)
    prior = one_gaussian_prior(4)
    as_gaussian = vk.DiagonalGaussian(
        prior.means.detach().expand(5, 4), 2 * prior.log_scales.detach().expand(5, 4)
    )
    exact = float(vk.losses.KL()(q, prior=as_gaussian))
    n = 4000  # every image repeated n times: one batch of 20,000 one-sample estimates
    big = vk.DiagonalGaussian(q.mean.repeat(n, 1), q.logvar.repeat(n, 1))
    z = big.sample(generator=torch.Generator().manual_seed(0))
    terms = vk.losses.KL().forward_terms(big, prior=prior, z=z)
    assert set(terms) == {"kl", "kl_raw", "kl_mc"}
    assert torch.equal(terms["kl_mc"], terms["kl_raw"]) and torch.equal(
        terms["kl"], terms["kl_raw"]
    )
    per_image = (big.log_prob(z) - prior.log_prob(z)).detach()
    stderr = float(per_image.std()) / math.sqrt(per_image.numel())
    assert abs(float(terms["kl"].detach()) - exact) < 4 * stderr


@pytest.mark.parametrize("name", ["mog", "vamp"])
def test_learned_priors_get_gradients_through_the_loss(name):
    torch.manual_seed(0)
    prior = vk.priors.MixtureOfGaussians(4) if name == "mog" else vk.priors.VampPrior(4)
    vae = tiny_vae(prior).train()
    x = torch.rand(4, 1, 8, 8)
    res = vk.losses.VAELoss(recon="bce")(vae(x), x)
    assert {"kl", "kl_raw", "kl_mc"} <= res.terms.keys()
    res.total.backward()
    params = dict(vae.prior.named_parameters())
    assert params and all(p.grad is not None and p.grad.abs().sum() > 0 for p in params.values())
    assert all(p.grad is not None for p in vae.encoder.parameters())


@pytest.mark.parametrize(
    ("shape", "group", "groups"), [((6, 3), "dim", 3), ((6, 2, 2, 2), "dim", 8),
                                   ((6, 2, 2, 2), "channel", 2)],
)  # fmt: skip
def test_free_bits_with_a_monte_carlo_kl_floor_the_total(shape, group, groups):
    q = gaussian(*shape, seed=6)
    q = vk.DiagonalGaussian(q.mean + 2.0, q.logvar)  # well away from the prior: KL > 0
    mog = vk.priors.MixtureOfGaussians(3, latent_shape=shape[1:])
    z = q.sample(generator=torch.Generator().manual_seed(0))
    raw = vk.losses.KL().forward_terms(q, prior=mog, z=z)["kl"]
    assert float(raw.detach()) > 1.0
    lam = float(raw.detach()) / groups + 0.5  # the floor lam * groups is above the KL
    terms = vk.losses.KL(lam, group=group).forward_terms(q, prior=mog, z=z)
    assert float(terms["kl"].detach()) == pytest.approx(lam * groups)
    assert torch.equal(terms["kl_raw"], raw) and torch.equal(terms["kl_mc"], raw)
    terms["kl"].backward()  # below the floor: no gradient to push the KL further down
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in mog.parameters())
    lam = float(raw.detach()) / groups - 0.5  # a floor below the KL leaves the estimate
    low = vk.losses.KL(lam, group=group).forward_terms(q, prior=mog, z=z)
    assert torch.equal(low["kl"], raw)
    low["kl"].backward()
    assert all(p.grad.abs().sum() > 0 for p in mog.parameters())
    with pytest.raises(ValueError, match=r"group='element' need a KL per latent element"):
        vk.losses.KL(0.1, group="element")(q, prior=mog, z=z)


def test_priors_that_cannot_be_trained_with_are_refused():
    vae = tiny_vae()
    x = torch.rand(2, 1, 8, 8)
    loss_fn = vk.losses.VAELoss(recon="bce")
    vae.prior = vk.priors.GaussianMixture(components=2)  # ex-post, not fitted
    names = r"\['flow', 'gmm', 'mog', 'standard_normal', 'vamp'\]"
    with pytest.raises(
        vk.priors.NotFittedError, match=rf"not fitted, so it cannot be used for training.*{names}"
    ):
        loss_fn(vae(x), x)
    vae.prior.fit(torch.randn(10, 3), progress=False)
    assert "kl_mc" in loss_fn(vae(x), x).terms  # fitted: a fixed prior to train against
    diffusion = vk.priors.LatentDiffusion(steps=10, sample_steps=2, hidden=8, depth=1)
    vae.prior = diffusion.fit(torch.randn(16, 3), iterations=1, progress=False)
    with pytest.raises(
        ValueError, match=rf"no tractable density.*cannot be used for training.*{names}"
    ):
        loss_fn(vae(x), x)
    q, mog = gaussian(2, 3), vk.priors.MixtureOfGaussians(2, latent_shape=(3,))
    with pytest.raises(ValueError, match="pass z=, a sample of the posterior"):
        vk.losses.KL()(q, prior=mog)
    with pytest.raises(ValueError, match=r"z must be one sample of the posterior, shape \(2, 3\)"):
        vk.losses.KL()(q, prior=mog, z=torch.zeros(5, 2, 3))
    with pytest.raises(TypeError, match=r"DiagonalGaussian, a vaekit\.priors\.Prior or None"):
        vk.losses.KL()(q, prior="mog")


def test_vaeloss_with_a_learned_prior_compiles_without_graph_breaks():
    torch.manual_seed(0)
    vae = tiny_vae(vk.priors.MixtureOfGaussians(3)).train()
    x = torch.rand(2, 1, 8, 8)
    out = vae(x)
    loss = vk.losses.VAELoss(recon="bce", kl=vk.losses.KL(0.1))
    compiled = torch.compile(loss, backend="eager", fullgraph=True)
    res, ref = compiled(out, x), loss(out, x)
    torch.testing.assert_close(res.total, ref.total)
    assert res.terms.keys() == ref.terms.keys()
