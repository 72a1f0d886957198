"""Ex-post priors: EM for the Gaussian mixture, the flow's bijection and fit, the diffusion
prior's samples, encode_dataset and the progress bars. Tiny models, few steps."""

from __future__ import annotations

import sys

import pytest
import torch
from priors_utils import make_prior
from torch.utils.data import DataLoader, TensorDataset

import vaekit as vk
from vaekit.priors._progress import progress_bar


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


CENTRES = torch.tensor([[2.0, 2.0], [-2.0, 2.0], [2.0, -2.0], [-2.0, -2.0]])


def four_blobs(n: int, g: torch.Generator) -> torch.Tensor:
    """A toy 2-D latent distribution that N(0, I) fits badly: 4 tight clusters."""
    return CENTRES[torch.randint(4, (n,), generator=g)] + 0.3 * torch.randn(n, 2, generator=g)


def mmd2(a: torch.Tensor, b: torch.Tensor) -> float:
    """Unbiased squared MMD with a sum of Gaussian kernels (bandwidths 0.2, 0.5, 1)."""

    def k(x, y):
        d = torch.cdist(x, y).square()
        return sum(torch.exp(-d / (2 * s * s)) for s in (0.2, 0.5, 1.0))

    n, m = len(a), len(b)
    kaa, kbb = k(a, a), k(b, b)
    xx = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
    yy = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return float(xx + yy - 2 * k(a, b).mean())


# -- Gaussian mixture (EM) -------------------------------------------------------------------
MEANS = torch.tensor([[0.0, 0.0], [2.5, 0.0], [0.0, 2.5]])
COVS = torch.tensor(
    [[[1.0, 0.6], [0.6, 0.8]], [[0.3, -0.1], [-0.1, 0.5]], [[0.6, 0.0], [0.0, 0.2]]]
)
WEIGHTS = torch.tensor([0.5, 0.3, 0.2])


def known_mixture(n: int, g: torch.Generator) -> torch.Tensor:
    k = torch.multinomial(WEIGHTS, n, replacement=True, generator=g)
    chol = torch.linalg.cholesky(COVS)
    return MEANS[k] + torch.einsum("nij,nj->ni", chol[k], torch.randn(n, 2, generator=g))


def test_em_never_decreases_the_likelihood_and_recovers_a_known_mixture():
    x = known_mixture(4000, gen(0))
    # EM's own maths, in float64 on every latent (float32 against float64: test_priors_select)
    gmm = vk.priors.GaussianMixture(
        components=3, reg=0.0, tol=1e-7, max_iter=300, precision="float64"
    )
    gmm.fit(x, generator=gen(1), progress=False, val_fraction=0)
    history = torch.tensor(gmm.history, dtype=torch.float64)
    assert gmm.converged and gmm.n_iter >= 5  # overlapping components: EM has work to do
    assert bool((history.diff() >= -1e-10).all()), history.diff().min()
    assert abs(float(gmm.log_prob(x).double().mean()) - gmm.history[-1]) < 1e-4
    # match each true component to its nearest fitted one
    order = torch.cdist(MEANS, gmm.means).argmin(1)
    assert sorted(order.tolist()) == [0, 1, 2]
    torch.testing.assert_close(gmm.means[order], MEANS, atol=0.15, rtol=0)
    torch.testing.assert_close(gmm.log_weights.exp()[order], WEIGHTS, atol=0.04, rtol=0)
    cov = gmm.scale_tril @ gmm.scale_tril.transpose(1, 2)
    torch.testing.assert_close(cov[order], COVS, atol=0.12, rtol=0)


def test_em_diag_and_regularised_full_are_monotone_up_to_the_floor():
    x = known_mixture(2000, gen(2))
    for covariance in ("diag", "full"):
        for precision, slack in (("float64", 1e-6), ("float32", 1e-5)):
            gmm = vk.priors.GaussianMixture(3, covariance, tol=1e-6, max_iter=300,
                                            precision=precision)  # fmt: skip
            gmm.fit(x, generator=gen(3), progress=False)
            assert bool((torch.tensor(gmm.history).diff() >= -slack).all()), covariance
    # a diagonal fit of axis-aligned data recovers its variances
    scales = torch.tensor([0.5, 2.0])
    y = torch.cat(
        [
            torch.randn(1500, 2, generator=gen(4)) * scales - 5,
            torch.randn(1500, 2, generator=gen(5)) * scales + 5,
        ]
    )
    diag = vk.priors.GaussianMixture(2, "diag").fit(y, generator=gen(6), progress=False)
    torch.testing.assert_close(diag.scales, scales.expand(2, 2), atol=0, rtol=0.1)  # ~5 SE


def test_em_is_reproducible_and_warns_when_not_converged():
    x = known_mixture(600, gen(7))
    a = vk.priors.GaussianMixture(3).fit(x, generator=gen(8), progress=False)
    b = vk.priors.GaussianMixture(3).fit(x, generator=gen(8), progress=False)
    assert torch.equal(a.means, b.means) and a.history == b.history
    with pytest.warns(RuntimeWarning, match="did not converge in max_iter=1"):
        vk.priors.GaussianMixture(3, tol=0.0, max_iter=1).fit(x, generator=gen(8), progress=False)


def test_em_refuses_singular_covariances_with_advice():
    x = torch.randn(50, 1).repeat(1, 2)  # on a line: singular without reg
    with pytest.raises(ValueError, match=r"not positive definite.*increase reg"):
        vk.priors.GaussianMixture(2, reg=0.0).fit(x, generator=gen(), progress=False)
    vk.priors.GaussianMixture(2, reg=1e-3).fit(
        x, generator=gen(), progress=False
    )  # the floor fixes it


def test_kmeans_plus_plus_is_seeded_and_picks_data_rows():
    x = known_mixture(500, gen(9))
    a = vk.priors.kmeans_plus_plus(x, 5, gen(10))
    assert torch.equal(a, vk.priors.kmeans_plus_plus(x, 5, gen(10)))
    assert all((x == c).all(1).any() for c in a)
    same = torch.zeros(10, 2)  # every point equal: still k centres
    assert vk.priors.kmeans_plus_plus(same, 3, gen()).shape == (3, 2)


def test_gmm_on_spatial_latents_flattens_them():
    latents = torch.randn(300, 2, 2, 2, generator=gen(11))
    gmm = vk.priors.GaussianMixture(2).fit(latents, generator=gen(12), progress=False)
    assert gmm.means.shape == (2, 8) and gmm.sample(4, generator=gen()).shape == (4, 2, 2, 2)
    assert gmm.log_prob(latents[:5]).shape == (5,)


# -- flow -------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5,), (1, 2, 2)])
def test_flow_inverse_and_log_det_match_autograd_in_float64(shape):
    flow = make_prior("flow", shape, seed=13).double()
    x = torch.randn(4, *shape, dtype=torch.float64)
    u, log_det = flow.to_base(x)
    torch.testing.assert_close(flow.from_base(u), x, rtol=0, atol=1e-12)
    for i in range(4):
        jac = torch.autograd.functional.jacobian(
            lambda v: flow.to_base(v.view(1, *shape))[0][0], x[i].flatten()
        )
        sign, logabs = torch.linalg.slogdet(jac)
        assert float(sign) > 0
        torch.testing.assert_close(log_det[i], logabs, rtol=0, atol=1e-10)


def test_flow_fit_beats_a_gaussian_and_is_reproducible():
    data, test = four_blobs(2000, gen(14)), four_blobs(1000, gen(15))
    gauss = vk.priors.GaussianMixture(1).fit(data, progress=False)
    flow = vk.priors.Flow(layers=6, hidden=64)
    assert flow.fit(data, iterations=300, generator=gen(16), progress=False) is flow
    assert flow.is_fitted and not any(p.requires_grad for p in flow.parameters())
    gain = float(flow.log_prob(test).mean() - gauss.log_prob(test).mean())
    assert gain > 0.25, gain  # measured ~0.7 nats per latent
    again = vk.priors.Flow(layers=6, hidden=64).fit(
        data, iterations=5, generator=gen(16), progress=False
    )
    other = vk.priors.Flow(layers=6, hidden=64).fit(
        data, iterations=5, generator=gen(16), progress=False
    )
    assert torch.equal(again.sample(3, generator=gen()), other.sample(3, generator=gen()))


# -- diffusion --------------------------------------------------------------------------------
def test_diffusion_samples_match_a_toy_mixture_far_better_than_a_gaussian():
    data, test = four_blobs(2000, gen(17)), four_blobs(500, gen(18))
    prior = vk.priors.LatentDiffusion(steps=100, sample_steps=20, hidden=64, depth=2)
    prior.fit(data, iterations=300, generator=gen(19), progress=False)
    samples = prior.sample(500, generator=gen(20))
    # the best Gaussian (the data's mean and std) and N(0, I) as baselines
    gaussian = torch.randn(500, 2, generator=gen(21)) * data.std(0) + data.mean(0)
    mmd_diffusion, mmd_gaussian = mmd2(samples, test), mmd2(gaussian, test)
    mmd_normal = mmd2(torch.randn(500, 2, generator=gen(22)), test)
    assert mmd_diffusion < 0.25 * mmd_gaussian < mmd_normal, (mmd_diffusion, mmd_gaussian)
    # fewer DDIM steps still work (coarser), and the count is checked
    assert prior.sample(10, sample_steps=5, generator=gen()).shape == (10, 2)
    with pytest.raises(ValueError, match="sample_steps must be <= steps=100"):
        prior.sample(1, sample_steps=101)


def test_diffusion_on_spatial_latents_uses_the_conv_denoiser():
    latents = torch.randn(64, 2, 3, 3, generator=gen(23)) * 3 + 1
    prior = vk.priors.LatentDiffusion(steps=20, sample_steps=4, channels=8, blocks=2)
    prior.fit(latents, iterations=3, generator=gen(24), progress=False)
    assert isinstance(prior.denoiser, vk.priors.diffusion.ConvDenoiser)
    assert any(isinstance(m, vk.blocks.PreActResBlock) for m in prior.denoiser.modules())
    assert prior.shift.shape == (2, 1, 1)  # per-channel standardisation
    torch.testing.assert_close(prior.shift.flatten(), latents.mean((0, 2, 3)))
    assert prior.sample(5, generator=gen()).shape == (5, 2, 3, 3)
    mlp = vk.priors.LatentDiffusion(steps=20, sample_steps=4, denoiser="mlp", hidden=8, depth=1)
    mlp.fit(latents, iterations=2, progress=False)
    assert isinstance(mlp.denoiser, vk.priors.diffusion.MLPDenoiser)
    assert mlp.sample(2).shape == (2, 2, 3, 3)


def test_diffusion_fit_is_reproducible_from_its_generator():
    latents = torch.randn(64, 2, 3, 3, generator=gen(25))
    runs = []
    for _ in range(2):
        prior = vk.priors.LatentDiffusion(steps=20, sample_steps=4, channels=8, blocks=2)
        prior.fit(latents, iterations=5, generator=gen(26), progress=False)
        runs.append((prior.history, prior.sample(4, generator=gen(27))))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])
    other = vk.priors.LatentDiffusion(steps=20, sample_steps=4, channels=8, blocks=2)
    other.fit(latents, iterations=5, generator=gen(28), progress=False)
    assert other.history != runs[0][0]  # the generator, not a global seed, decides


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_beta_schedules_decrease_from_one_to_zero(schedule):
    abar = vk.priors.diffusion.beta_schedule(schedule, 1000)
    assert abar.shape == (1000,) and bool((abar.diff() < 0).all())
    assert 0.99 < float(abar[0]) < 1.0 and float(abar[-1]) < 1e-3


# -- encode_dataset ---------------------------------------------------------------------------
def tiny_vae(latent: str = "flat") -> vk.VAE:
    return vk.VAE(
        vk.VAEConfig(
            in_channels=1, image_size=8, widths=(4,), latent=latent, latent_dim=3,
            latent_channels=2, attention_at=(), block="conv",
        )
    )  # fmt: skip


def test_encode_dataset_from_tensor_dataset_and_loader():
    vae = tiny_vae().train()
    x = torch.rand(10, 1, 8, 8)
    expected = vae.eval().encode(x).mean.detach()
    vae.train()
    vae.decoder.eval()  # a mixed-mode model comes back exactly as it was
    from_tensor = vk.priors.encode_dataset(vae, x, batch_size=4, progress=False)
    torch.testing.assert_close(from_tensor, expected)
    assert vae.training and vae.encoder.training and not vae.decoder.training
    assert from_tensor.device.type == "cpu" and not from_tensor.is_inference()
    assert not from_tensor.requires_grad
    pairs = TensorDataset(x, torch.arange(10))
    torch.testing.assert_close(
        vk.priors.encode_dataset(vae, pairs, batch_size=3, progress=False), expected
    )
    loader = DataLoader(pairs, batch_size=4)
    torch.testing.assert_close(vk.priors.encode_dataset(vae, loader, progress=False), expected)
    dicts = [{"image": x[:5]}, {"image": x[5:]}]
    torch.testing.assert_close(vk.priors.encode_dataset(vae, dicts, progress=False), expected)
    # the encoder alone works too
    torch.testing.assert_close(vk.priors.encode_dataset(vae.encoder, x, progress=False), expected)


def test_encode_dataset_samples_and_feeds_a_fit():
    vae = tiny_vae("spatial")
    x = torch.rand(12, 1, 8, 8)
    a = vk.priors.encode_dataset(vae, x, use="sample", generator=gen(1), progress=False)
    b = vk.priors.encode_dataset(vae, x, use="sample", generator=gen(1), progress=False)
    means = vk.priors.encode_dataset(vae, x, progress=False)
    assert torch.equal(a, b) and not torch.equal(a, means)
    assert a.shape == (12, *vae.latent_shape)
    # the latents train a prior (autograd works on them: no inference tensors)
    flow = vk.priors.Flow(layers=2, hidden=8).fit(means, iterations=2, progress=False)
    assert flow.latent_shape == vae.latent_shape


def test_encode_dataset_bad_input():
    vae = tiny_vae()
    with pytest.raises(TypeError, match=r"x.float\(\) / 255"):
        vk.priors.encode_dataset(vae, torch.zeros(2, 1, 8, 8, dtype=torch.uint8), progress=False)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        vk.priors.encode_dataset(vae, torch.zeros(2, 8, 8), progress=False)
    with pytest.raises(ValueError, match="use must be one of"):
        vk.priors.encode_dataset(vae, torch.zeros(2, 1, 8, 8), use="mode", progress=False)
    with pytest.raises(ValueError, match="no images"):
        vk.priors.encode_dataset(vae, [], progress=False)
    with pytest.raises(TypeError, match="encoder callable"):
        vk.priors.encode_dataset(object(), torch.zeros(2, 1, 8, 8), progress=False)


# -- progress ---------------------------------------------------------------------------------
def test_progress_falls_back_to_a_line_printer_and_can_be_silenced(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # as if tqdm were not installed
    x = known_mixture(200, gen(25))
    vk.priors.GaussianMixture(2).fit(x, generator=gen(), progress=True)
    err = capsys.readouterr().err
    assert "GaussianMixture EM: " in err and "loglik/latent=" in err
    vk.priors.GaussianMixture(2).fit(x, generator=gen(), progress=False)
    vk.priors.encode_dataset(tiny_vae(), torch.rand(4, 1, 8, 8), progress=False)
    assert capsys.readouterr().err == ""
    bar = progress_bar(None, "unknown total")
    bar.update(3)
    bar.close()
    assert "unknown total: 3" in capsys.readouterr().err
