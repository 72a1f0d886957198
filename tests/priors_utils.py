"""Ready-to-use priors with random (non-trivial) parameters, for the prior tests."""

from __future__ import annotations

import math

import torch
from torch import nn

import vaekit as vk

DENSITY_NAMES = ("standard_normal", "mog", "vamp", "gmm", "gmm_diag", "flow")
ALL_NAMES = (*DENSITY_NAMES, "diffusion")


class TinyEncoder(nn.Module):
    """x (B, 1, 4, 4) -> DiagonalGaussian over ``latent_shape``: one linear layer."""

    data_shape = (1, 4, 4)

    def __init__(self, latent_shape: tuple[int, ...], seed: int = 0) -> None:
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        d = math.prod(self.latent_shape)
        self.fc = nn.Linear(math.prod(self.data_shape), 2 * d)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(self.fc.weight.shape, generator=g))
            self.fc.bias.copy_(torch.randn(self.fc.bias.shape, generator=g))
            self.fc.weight[d:] *= 0.1  # log-variances in about [-1, 1]

    def forward(self, x: torch.Tensor) -> vk.DiagonalGaussian:
        mean, logvar = self.fc(x.flatten(1)).chunk(2, dim=1)
        shape = (x.shape[0], *self.latent_shape)
        return vk.DiagonalGaussian(mean.reshape(shape), (0.5 * logvar).reshape(shape))


def _random_lower(k: int, d: int, g: torch.Generator) -> torch.Tensor:
    low = torch.randn(k, d, d, generator=g).tril(-1) * 0.4
    diag = torch.exp(torch.rand(k, d, generator=g) - 0.7)
    return low + torch.diag_embed(diag)


def make_prior(name: str, shape: tuple[int, ...], seed: int = 0) -> vk.priors.Prior:
    """A ready prior (set up or fitted) of ``shape`` with random parameters."""
    g = torch.Generator().manual_seed(seed)
    d = math.prod(shape)
    if name == "standard_normal":
        return vk.priors.StandardNormal(shape)
    if name == "mog":
        p = vk.priors.MixtureOfGaussians(components=3, latent_shape=shape)
        with torch.no_grad():
            p.means.copy_(2 * torch.randn(p.means.shape, generator=g))
            p.log_scales.copy_(torch.rand(p.log_scales.shape, generator=g) - 0.7)
            p.logits.copy_(torch.randn(3, generator=g))
        return p
    if name == "vamp":
        enc = TinyEncoder(shape, seed)
        p = vk.priors.VampPrior(pseudo_inputs=3, input_range=None)
        p.setup(shape, encoder=enc, data_shape=enc.data_shape)
        with torch.no_grad():
            p.pseudo_inputs.copy_(torch.randn(p.pseudo_inputs.shape, generator=g) * 0.5)
        return p
    if name in ("gmm", "gmm_diag"):
        cov = "full" if name == "gmm" else "diag"
        p = vk.priors.GaussianMixture(components=3, covariance=cov, latent_shape=shape)
        with torch.no_grad():
            p.means.copy_(2 * torch.randn(3, d, generator=g))
            p.log_weights.copy_(torch.log_softmax(torch.randn(3, generator=g), 0))
            if cov == "full":
                p.scale_tril.copy_(_random_lower(3, d, g))
            else:
                p.scales.copy_(torch.exp(torch.rand(3, d, generator=g) - 0.7))
        p._set_fitted()
        return p
    if name == "flow":
        p = vk.priors.Flow(layers=4, hidden=8, latent_shape=shape)
        with torch.no_grad():
            for param in p.couplings.parameters():
                param.copy_(0.5 * torch.randn(param.shape, generator=g))
            for layer in p.couplings:
                layer.scale.fill_(0.25)  # bounded stretch: the density stays inside the grid
            p.shift.copy_(torch.randn(d, generator=g))
            p.log_scale.copy_(0.5 * torch.rand(d, generator=g) - 0.25)
        p._set_fitted()
        return p
    if name == "diffusion":
        p = vk.priors.LatentDiffusion(
            steps=50, sample_steps=5, hidden=16, depth=1, channels=8, blocks=1
        )
        latents = torch.randn(64, *shape, generator=g) * 2 + 1
        return p.fit(latents, iterations=3, generator=g, progress=False)
    raise ValueError(name)


def registry_name(name: str) -> str:
    return "gmm" if name == "gmm_diag" else name


def double(prior: vk.priors.Prior) -> vk.priors.Prior:
    """The prior in float64 (with the VampPrior's encoder, which it does not own)."""
    prior.double()
    if isinstance(prior, vk.priors.VampPrior):
        prior.encoder.double()
    return prior
