"""vk.priors.EDMDiffusion: the noise levels, the preconditioning against the Gaussian closed
form, shapes, seeded reproducibility, save/load, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vaekit as vk
from vaekit.priors.edm import karras_sigmas


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny(shape=(2, 4, 4), **kw) -> vk.priors.EDMDiffusion:
    kw = {"sample_steps": 3, "channels": 8, "blocks": 1, "hidden": 16, "depth": 1} | kw
    return vk.priors.EDMDiffusion(latent_shape=shape, **kw)


def fitted(shape=(2, 4, 4), n: int = 64, **kw) -> vk.priors.EDMDiffusion:
    latents = torch.randn(n, *shape, generator=gen(1)) * 2 + 1
    return tiny(shape, **kw).fit(latents, iterations=3, batch_size=16, generator=gen(2),
                                 progress=False)  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), lo=st.floats(1e-4, 0.5), hi=st.floats(1.0, 200.0),
       rho=st.floats(1.0, 10.0))  # fmt: skip
def test_karras_sigmas_run_from_max_to_min_then_zero(n, lo, hi, rho):
    s = karras_sigmas(n, lo, hi, rho)
    assert s.shape == (n + 1,) and s[-1] == 0
    assert s[0] == pytest.approx(hi) and (n == 1 or s[-2] == pytest.approx(lo))
    assert bool((s[:-1] > 0).all()) and bool((s[1:] < s[:-1]).all() if n > 1 else True)


def test_an_untrained_denoiser_is_the_exact_one_for_standard_normal_latents():
    """F = 0 at initialisation, so D(x; sigma) = x / (1 + sigma^2): the posterior mean of
    N(0, I) data. The Heun sampler must then map sigma_max noise to N(0, I) samples."""
    prior = tiny((3,), sample_steps=30)
    x, sigma = torch.randn(5, 3, generator=gen(0)), torch.tensor([0.01, 0.5, 1.0, 3.0, 80.0])
    torch.testing.assert_close(prior.denoise(x, sigma), x / (1 + sigma[:, None] ** 2))
    prior._set_fitted()  # shift 0, scale 1: the standardised space is the latent space
    z = prior.sample(4000, generator=gen(3))
    assert z.mean().abs() < 0.05 and (z.std(0) - 1).abs().max() < 0.05


def test_shapes_temperature_and_reproducibility():
    prior = fitted()
    a = prior.sample(5, generator=gen(4))
    assert a.shape == (5, 2, 4, 4) and torch.isfinite(a).all()
    torch.testing.assert_close(a, prior.sample(5, generator=gen(4)), rtol=0, atol=0)
    again = fitted()  # the same generator: the same weights, the same samples
    torch.testing.assert_close(again.sample(5, generator=gen(4)), a, rtol=0, atol=0)
    zero = prior.sample(3, temperature=0.0, generator=gen(4))
    torch.testing.assert_close(zero[0], zero[1])  # every sample down one path
    assert prior.sample(2, sample_steps=1, generator=gen(4)).shape == (2, 2, 4, 4)
    flat = fitted((6,))
    assert flat.sample(4, generator=gen(0)).shape == (4, 6)
    assert flat.fit_report["n_fit"] == 64 and "fit_log_prob" not in flat.fit_report
    assert len(flat.history) == 3 and all(math.isfinite(v) for v in flat.history)


def test_save_load_round_trip_gives_bit_identical_seeded_samples(tmp_path):
    cfg = vk.VAEConfig(in_channels=1, image_size=8, widths=(4,), latent="spatial",
                       latent_channels=2, attention_at=(), block="conv")  # fmt: skip
    vae = vk.VAE(cfg)
    latents = torch.randn(64, *vae.latent_shape, generator=gen(0))
    vae.prior = tiny(vae.latent_shape).fit(latents, iterations=2, batch_size=16,
                                           generator=gen(1), progress=False)  # fmt: skip
    vae.save(tmp_path / "m.safetensors")
    loaded = vk.VAE.load(tmp_path / "m.safetensors")
    assert isinstance(loaded.prior, vk.priors.EDMDiffusion) and loaded.prior.is_fitted
    with torch.no_grad():
        a = vae.eval().sample(4, generator=gen(5))
        b = loaded.eval().sample(4, generator=gen(5))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert loaded.prior.history == vae.prior.history


def test_no_density_and_bad_inputs():
    prior = fitted()
    with pytest.raises(vk.priors.PriorCapabilityError, match="EDMDiffusion has no tractable"):
        prior.log_prob(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"sigma_min must be below sigma_max, got 2.0 and 1.0"):
        vk.priors.EDMDiffusion(sigma_min=2.0, sigma_max=1.0)
    with pytest.raises(ValueError, match=r"sample_steps must be >= 1, got 0"):
        vk.priors.EDMDiffusion(sample_steps=0)
    with pytest.raises(ValueError, match=r"p_std must be > 0"):
        vk.priors.EDMDiffusion(p_std=0)
    with pytest.raises(TypeError, match=r"channels must be an int"):
        vk.priors.EDMDiffusion(channels=2.5)
    with pytest.raises(vk.priors.NotFittedError):
        tiny().sample(2)
    with pytest.raises(ValueError, match=r"sample_steps must be >= 1, got 0"):
        prior.sample(2, sample_steps=0)
    with pytest.raises(ValueError, match=r"temperature"):
        prior.sample(2, temperature=-1.0)
    with pytest.raises(ValueError, match=r"latents must be \(N, D\) flat or \(N, C, h, w\)"):
        tiny().fit(torch.zeros(4, 2, 4), progress=False)
    with pytest.raises(ValueError, match=r"NaN|finite"):
        tiny().fit(torch.full((8, 2, 4, 4), math.nan), progress=False)


def test_odd_spatial_sizes_round_trip_through_the_unet():
    prior = fitted((4, 7, 7), n=32)
    assert prior.sample(2, generator=gen(0)).shape == (2, 4, 7, 7)
