"""The VAE owns its prior: construction, assignment, sampling and save/load through vae.prior."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import vaekit as vk
from tests.conftest import tiny_config
from vaekit.distributions import _standard_normal

ALL_PRIORS = ("standard_normal", "mog", "vamp", "gmm", "flow", "diffusion")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def small_config(**overrides) -> vk.VAEConfig:
    base = dict(
        in_channels=1, image_size=8, widths=(4,), latent_dim=3, attention_at=(), block="conv"
    )
    return vk.VAEConfig(**{**base, **overrides})


def old_sample_prior(vae: vk.VAE, n: int, temperature: float, generator=None) -> torch.Tensor:
    """VAE.sample_prior as it was before the prior was a part of the model."""
    p = next(vae.parameters())
    return _standard_normal((n, *vae.latent_shape), p.device, p.dtype, generator) * temperature


def fitted_prior(name: str, vae: vk.VAE) -> vk.priors.Prior:
    """A small, ready prior of each kind for ``vae`` (ex-post ones fitted on its latents)."""
    if name == "standard_normal":
        return vk.priors.StandardNormal()
    if name == "mog":
        return vk.priors.MixtureOfGaussians(components=3)
    if name == "vamp":
        return vk.priors.VampPrior(pseudo_inputs=4)
    latents = torch.randn(64, *vae.latent_shape, generator=gen(1)) * 0.7 + 0.3
    if name == "gmm":
        return vk.priors.GaussianMixture(components=2).fit(latents, generator=gen(), progress=False)
    if name == "flow":
        prior = vk.priors.Flow(layers=2, hidden=8)
        return prior.fit(latents, iterations=5, batch_size=32, generator=gen(), progress=False)
    if name == "diffusion":
        prior = vk.priors.LatentDiffusion(steps=20, sample_steps=4, hidden=16, depth=1)
        return prior.fit(latents, iterations=3, generator=gen(), progress=False)
    raise ValueError(name)


# -- construction and assignment -----------------------------------------------------------
def test_default_prior_is_a_bound_standard_normal():
    cfg = small_config()
    vae = vk.VAE(cfg)
    assert type(vae.prior) is vk.priors.StandardNormal
    assert vae.prior.latent_shape == vae.latent_shape == (3,)
    # with your own modules too
    custom = vk.VAE(encoder=vk.Encoder(cfg), decoder=vk.Decoder(cfg))
    assert type(custom.prior) is vk.priors.StandardNormal and custom.prior.latent_shape == (3,)
    # N(0, I) has no weights: the state dict (and old checkpoints) are unchanged
    assert not any(k.startswith("prior.") for k in vae.state_dict())


def test_a_learned_prior_is_part_of_the_model():
    vae = vk.VAE(small_config(), prior=vk.priors.MixtureOfGaussians(components=5))
    assert vae.prior.means.shape == (5, 3)
    names = {n for n, _ in vae.named_parameters()}
    assert {"prior.means", "prior.log_scales", "prior.logits"} <= names
    out = vae(torch.rand(2, 1, 8, 8))
    assert out.prior is vae.prior
    # VAEOutput stays backward compatible: positional order unchanged, prior defaults to None
    q = out.posterior
    assert vk.VAEOutput(out.recon, q, out.z, None).prior is None


def test_vamp_prior_is_bound_to_the_models_encoder():
    cfg = small_config()
    vae = vk.VAE(cfg, prior=vk.priors.VampPrior(pseudo_inputs=4))
    assert vae.prior.encoder == vae.encode and vae.prior.data_shape == cfg.data_shape
    # the encoder's weights live once, in the model (not again under prior.)
    assert set(vae.prior.state_dict()) == {"pseudo_inputs"}
    z = vae(torch.rand(2, 1, 8, 8)).z
    vae.prior.log_prob(z).sum().backward()
    assert vae.prior.pseudo_inputs.grad is not None
    assert all(p.grad is not None for p in vae.encoder.parameters())  # through q(z|u_k) and z
    # a copy (an EMA model) gets a prior bound to the copy's encoder
    twin = copy.deepcopy(vae)
    assert twin.prior.encoder.__self__ is twin and twin.prior.encoder.__self__ is not vae


def test_assigning_a_prior_checks_binds_and_moves_it():
    vae = vk.VAE(small_config())
    with pytest.raises(TypeError, match=r"prior must be a vaekit\.priors\.Prior.*got str"):
        vae.prior = "mog"
    with pytest.raises(TypeError, match=r"prior must be a vaekit\.priors\.Prior.*got Identity"):
        vk.VAE(small_config(), prior=torch.nn.Identity())
    with pytest.raises(ValueError, match=r"latent_shape \(4, 2, 2\).*latent shape is \(3,\)"):
        vae.prior = vk.priors.MixtureOfGaussians(2, latent_shape=(4, 2, 2))
    assert type(vae.prior) is vk.priors.StandardNormal  # a refused prior leaves the old one
    mog = vk.priors.MixtureOfGaussians(2)
    vae.prior = mog  # setup: the shape comes from the model
    assert vae.prior is mog and mog.latent_shape == (3,)
    vae.double()
    vae.prior = vk.priors.MixtureOfGaussians(2)
    assert vae.prior.means.dtype == torch.float64
    assert vae.sample(2).dtype == torch.float64
    vae.to("meta")
    vae.prior = vk.priors.StandardNormal()
    assert vae.prior.device.type == "meta"


def test_an_unfitted_ex_post_prior_refuses_to_sample():
    vae = vk.VAE(small_config())
    vae.prior = vk.priors.GaussianMixture(components=2)
    with pytest.raises(vk.priors.NotFittedError, match=r"not fitted: call \.fit"):
        vae.sample(2)
    vae.prior.fit(torch.randn(20, 3), progress=False)
    assert vae.sample(2).shape == (2, 1, 8, 8)
    vae.prior = vk.priors.LatentDiffusion(steps=10, sample_steps=2, hidden=8, depth=1)
    with pytest.raises(ValueError, match="not fitted"):
        vae.sample_prior(2)


# -- sampling: N(0, I) is what it was -------------------------------------------------------
@pytest.mark.parametrize("latent", ["flat", "spatial"])
def test_standard_normal_samples_are_bit_identical_to_the_old_formula(latent):
    vae = vk.VAE(tiny_config(latent=latent)).eval()
    for temperature in (0.0, 0.7, 1, 1.3):
        for seed in (0, 5):
            expected = old_sample_prior(vae, 4, temperature, gen(seed))
            assert torch.equal(vae.sample_prior(4, temperature, gen(seed)), expected)
            assert torch.equal(vae.sample(4, temperature, gen(seed)), vae.decode(expected))
    torch.manual_seed(11)  # the global RNG is drawn the same way too
    expected = old_sample_prior(vae, 3, 0.9)
    torch.manual_seed(11)
    assert torch.equal(vae.sample_prior(3, 0.9), expected)


def test_sample_argument_errors():
    vae = vk.VAE(small_config())
    with pytest.raises(TypeError, match="n must be an int, got float"):
        vae.sample_prior(2.0)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        vae.sample_prior(0)
    with pytest.raises(TypeError, match="temperature must be a number, got str"):
        vae.sample_prior(2, "1")
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        vae.sample_prior(2, -0.5)
    with pytest.raises(TypeError, match="steps must be an int"):
        vae.interpolate(torch.rand(1, 8, 8), torch.rand(1, 8, 8), steps=3.0)
    with pytest.raises(ValueError, match="steps must be >= 2"):
        vae.interpolate(torch.rand(1, 8, 8), torch.rand(1, 8, 8), steps=1)


@pytest.mark.parametrize("name", ["mog", "vamp", "gmm"])
def test_samples_come_from_the_prior(name):
    vae = vk.VAE(small_config())
    vae.prior = fitted_prior(name, vae)
    vae.eval()
    with torch.no_grad():
        expected = vae.prior.sample(5, temperature=0.5, generator=gen(2))
        assert torch.equal(vae.sample_prior(5, 0.5, gen(2)), expected)
        assert torch.equal(vae.sample(5, 0.5, gen(2)), vae.decode(expected))


# -- save / load ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL_PRIORS)
def test_save_load_gives_bit_identical_samples(name, tmp_path):
    torch.manual_seed(0)
    vae = vk.VAE(small_config())
    vae.prior = fitted_prior(name, vae)
    if name in ("mog", "vamp"):  # move the learned parameters off their initial values
        with torch.no_grad():
            for p in vae.prior.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=gen(3)))
    vae.eval()
    path = tmp_path / "vae.safetensors"
    vae.save(path)
    meta_prior = json.loads(_metadata(path)["prior"])
    assert meta_prior == vk.priors.to_config(vae.prior)
    loaded = vk.VAE.load(path).eval()
    assert type(loaded.prior) is type(vae.prior)
    assert loaded.prior.is_fitted
    with torch.no_grad():
        a = vae.sample(6, temperature=0.8, generator=gen(4))
        b = loaded.sample(6, temperature=0.8, generator=gen(4))
    assert torch.equal(a, b)
    if name == "vamp":
        assert loaded.prior.encoder.__self__ is loaded
    if vae.prior.needs_fit:  # fitted weights stay frozen after loading
        assert not any(p.requires_grad for p in loaded.prior.parameters())


def _metadata(path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def test_a_checkpoint_without_prior_metadata_loads_with_standard_normal(tmp_path):
    torch.manual_seed(0)
    vae = vk.VAE(small_config()).eval()
    path = tmp_path / "old.safetensors"
    vae.save(path)
    meta = _metadata(path)
    del meta["prior"]  # what a file written before this change holds
    save_file(load_file(str(path)), str(path), metadata=meta)
    loaded = vk.VAE.load(path).eval()
    assert type(loaded.prior) is vk.priors.StandardNormal
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(loaded(x).recon, vae(x).recon)
    assert torch.equal(loaded.sample(3, generator=gen()), vae.sample(3, generator=gen()))


def test_prior_errors_when_saving_and_loading(tmp_path):
    @vk.priors.register("shifted_normal_test")
    class ShiftedNormal(vk.priors.StandardNormal):
        pass

    class Unregistered(vk.priors.StandardNormal):
        pass

    path = tmp_path / "vae.safetensors"
    try:
        vk.VAE(small_config(), prior=ShiftedNormal()).save(path)
        assert type(vk.VAE.load(path).prior) is ShiftedNormal
    finally:
        vk.priors.unregister("shifted_normal_test")
    with pytest.raises(
        ValueError, match=r"prior named 'shifted_normal_test'.*not registered.*import"
    ):
        vk.VAE.load(path)
    with pytest.raises(ValueError, match=r"not a registered prior.*@vk\.priors\.register"):
        vk.VAE(small_config(), prior=Unregistered()).save(tmp_path / "other.safetensors")
    assert not (tmp_path / "other.safetensors").exists()
    meta = _metadata(path)
    meta["prior"] = "{not json"
    save_file(load_file(str(path)), str(path), metadata=meta)
    with pytest.raises(ValueError, match=r"prior stored in .* is not valid JSON"):
        vk.VAE.load(path)


def test_load_weights_brings_the_files_prior(tmp_path):
    torch.manual_seed(0)
    cfg = small_config()
    source = vk.VAE(cfg, prior=vk.priors.MixtureOfGaussians(components=3)).eval()
    path = tmp_path / "mog.safetensors"
    source.save(path)
    # same prior config: loaded in place (an optimiser holding its parameters keeps them)
    same = vk.VAE(cfg, prior=vk.priors.MixtureOfGaussians(components=3))
    means = same.prior.means
    same.load_weights(path)
    assert same.prior.means is means and torch.equal(means, source.prior.means)
    # another prior: replaced by the file's
    other = vk.VAE(cfg).load_weights(path).eval()
    assert type(other.prior) is vk.priors.MixtureOfGaussians
    assert torch.equal(other.sample(3, generator=gen()), source.sample(3, generator=gen()))
    # a failed load leaves the prior as it was
    with pytest.raises(ValueError, match="does not match"):
        vk.VAE(cfg.replace(latent_dim=4)).load_weights(path)
    bad = vk.VAE(cfg)
    state = load_file(str(path))
    state["prior.means"] = torch.zeros(3, 5)
    save_file(state, str(path), metadata=_metadata(path))
    with pytest.raises(ValueError, match=r"shape mismatch.*prior\.means"):
        bad.load_weights(path)
    assert type(bad.prior) is vk.priors.StandardNormal
