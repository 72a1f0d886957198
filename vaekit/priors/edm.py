"""An EDM diffusion prior for latents (Karras et al. 2022): preconditioned denoiser, Heun sampler.

"Elucidating the design space of diffusion-based generative models" (EDM) trains a denoiser
``D(x; sigma)`` that predicts the clean latent from ``x = y + sigma * n`` at any noise level,
through a preconditioning that keeps the network's inputs and targets at unit variance:

    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma))
    c_skip = s_d^2 / (sigma^2 + s_d^2),    c_out = sigma s_d / sqrt(sigma^2 + s_d^2),
    c_in = 1 / sqrt(sigma^2 + s_d^2),      c_noise = ln(sigma) / 4,

with ``s_d`` (``sigma_data``) the data's standard deviation (1: the latents are standardised
per dimension first). Training draws ``ln sigma ~ N(P_mean, P_std^2)`` and minimises
``lambda(sigma) ||D(y + sigma n; sigma) - y||^2`` with ``lambda = 1 / c_out^2``. Sampling
integrates the probability-flow ODE from ``sigma_max`` to 0 with Heun's second-order method
on Karras's noise levels ``(sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) -
sigma_max^(1/rho)))^rho``: ``2N - 1`` network evaluations, good samples at N of 10 to 20.

The network ``F``: for spatial latents ``(C, h, w)`` a small U-Net (two resolutions, residual
blocks whose group norms take a scale and shift from the noise embedding, self-attention at
the coarser one); for flat latents a residual MLP with the same embedding. Like
:class:`~vaekit.priors.LatentDiffusion` it has no tractable density.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_int, check_number
from ..blocks import SelfAttention
from ..blocks.factory import group_count
from ._training import fit_denoiser, randn_like_on
from .base import ExPostPrior, check_temperature
from .registry import register

__all__ = ["EDMDiffusion", "karras_sigmas"]

_SAMPLE_CHUNK = 2048  # latents denoised at once when sampling (memory, not results)


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al.'s ``n`` noise levels from ``sigma_max`` down to ``sigma_min``, then 0.

    Example:
        >>> from vaekit.priors.edm import karras_sigmas
        >>> s = karras_sigmas(4, 0.002, 80.0)
        >>> [round(v, 3) for v in s.tolist()]
        [80.0, 9.723, 0.47, 0.002, 0.0]
    """
    check_int(n, "n", 1)
    ramp = torch.linspace(0, 1, n, dtype=torch.float64) if n > 1 else torch.zeros(1).double()
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def _noise_embedding(c_noise: torch.Tensor, dim: int) -> torch.Tensor:
    """Fourier features of the (continuous) noise level: (B,) -> (B, dim)."""
    half = dim // 2
    # c_noise = ln(sigma)/4 spans about [-1.6, 1.1]: periods from ~6 down to ~0.06
    freqs = torch.exp(torch.linspace(0.0, math.log(100.0), half, device=c_noise.device))
    args = c_noise.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class _AdaGroupNorm(nn.Module):
    """GroupNorm whose scale and shift come from the noise embedding (FiLM)."""

    def __init__(self, channels: int, emb: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(group_count(channels), channels, affine=False)
        self.film = nn.Linear(emb, 2 * channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(e)[:, :, None, None].chunk(2, dim=1)
        return self.norm(x) * (1 + scale) + shift


class _ResBlock(nn.Module):
    """x + conv(silu(adanorm(conv(silu(adanorm(x)))))), a 1x1 skip when widths differ."""

    def __init__(self, cin: int, cout: int, emb: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = _AdaGroupNorm(cin, emb), _AdaGroupNorm(cout, emb)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x, e)))
        h = self.conv2(F.silu(self.norm2(h, e)))
        return self.skip(x) + h


class UNetDenoiser(nn.Module):
    """``F(x, c_noise)`` for spatial latents ``(B, C, h, w)``: a two-resolution U-Net.

    ``blocks`` residual blocks at ``h×w`` (width ``channels``) and at ``ceil(h/2)×ceil(w/2)``
    (width ``2·channels``, self-attention after each), a middle block with attention, and one
    block on the way back up at each resolution with the skip from the way down concatenated.
    """

    def __init__(self, in_ch: int, channels: int = 64, blocks: int = 2, emb: int = 128) -> None:
        super().__init__()
        c1, c2 = channels, 2 * channels
        self.emb_dim = emb
        self.time = nn.Sequential(nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.inp = nn.Conv2d(in_ch, c1, 3, padding=1)
        self.down1 = nn.ModuleList(_ResBlock(c1, c1, emb) for _ in range(blocks))
        self.pool = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.down2 = nn.ModuleList(_ResBlock(c2, c2, emb) for _ in range(blocks))
        self.attn = nn.ModuleList(SelfAttention(c2, heads=max(1, c2 // 32)) for _ in range(blocks))
        self.mid = _ResBlock(c2, c2, emb)
        self.mid_attn = SelfAttention(c2, heads=max(1, c2 // 32))
        self.up2 = _ResBlock(2 * c2, c2, emb)
        self.unpool = nn.Conv2d(c2, c1, 3, padding=1)
        self.up1 = _ResBlock(2 * c1, c1, emb)
        self.out_norm = nn.GroupNorm(group_count(c1), c1)
        self.out = nn.Conv2d(c1, in_ch, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        e = F.silu(self.time(_noise_embedding(c_noise, self.emb_dim).to(x.dtype)))
        h1 = self.inp(x)
        for block in self.down1:
            h1 = block(h1, e)
        h2 = self.pool(h1)
        for block, attn in zip(self.down2, self.attn):
            h2 = attn(block(h2, e))
        h = self.mid_attn(self.mid(h2, e))
        h = self.up2(torch.cat([h, h2], dim=1), e)
        h = self.unpool(F.interpolate(h, size=h1.shape[-2:], mode="nearest"))
        h = self.up1(torch.cat([h, h1], dim=1), e)
        return self.out(F.silu(self.out_norm(h)))


class _MLPBlock(nn.Module):
    def __init__(self, hidden: int, emb: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.film = nn.Linear(emb, 2 * hidden)
        self.fc1, self.fc2 = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(e).chunk(2, dim=-1)
        return h + self.fc2(F.silu(self.fc1(F.silu(self.norm(h) * (1 + scale) + shift))))


class MLPDenoiserEDM(nn.Module):
    """``F(x, c_noise)`` for flat latents ``(B, D)``: residual MLP blocks with FiLM."""

    def __init__(self, dim: int, hidden: int = 256, depth: int = 3, emb: int = 128) -> None:
        super().__init__()
        self.emb_dim = emb
        self.time = nn.Sequential(nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(_MLPBlock(hidden, emb) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        e = F.silu(self.time(_noise_embedding(c_noise, self.emb_dim).to(x.dtype)))
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, e)
        return self.out(h)


@register("edm", aliases=("edm_diffusion",))
class EDMDiffusion(ExPostPrior):
    """A diffusion prior in Karras et al.'s EDM formulation (see the module docstring).

    Temperature: scales the initial noise ``sigma_max * eps`` of the (deterministic) Heun
    sampler; temperature 0 sends every sample down the same path.

    The defaults fit a budget of 10 minutes and draw 10,000 samples in under a minute on
    two CPU cores for 60,000 latents of 4×8×8 (benchmarks/priors.py: 3,000 steps at about
    0.16 s each; 12 Heun steps, 23 evaluations): width 64 and 18 steps sample at 4×
    the cost.

    Args:
        sample_steps: Heun steps N (``2N - 1`` network evaluations per sample).
        channels, blocks: U-Net width (the coarser level has twice it) and residual blocks
            per level (spatial latents).
        hidden, depth: MLP width and blocks (flat latents).
        sigma_min, sigma_max, rho: the sampler's noise levels.
        p_mean, p_std: the training noise distribution, ``ln sigma ~ N(p_mean, p_std^2)``.
        latent_shape: ``(D,)`` or ``(C, h, w)``; ``None``: taken from ``fit``.

    Example:
        >>> import torch, vaekit as vk
        >>> g = torch.Generator().manual_seed(0)
        >>> latents = torch.randn(256, 2, 4, 4, generator=g)
        >>> prior = vk.priors.EDMDiffusion(sample_steps=4, channels=8, blocks=1)
        >>> prior = prior.fit(latents, iterations=10, generator=g, progress=False)
        >>> prior.sample(3, generator=g).shape
        torch.Size([3, 2, 4, 4])
    """

    has_log_prob = False

    def __init__(
        self,
        sample_steps: int = 12,
        *,
        channels: int = 32,
        blocks: int = 2,
        hidden: int = 256,
        depth: int = 3,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        rho: float = 7.0,
        p_mean: float = -1.2,
        p_std: float = 1.2,
        latent_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.sample_steps = check_int(sample_steps, "sample_steps")
        self.channels, self.blocks = check_int(channels, "channels"), check_int(blocks, "blocks")
        self.hidden, self.depth = check_int(hidden, "hidden"), check_int(depth, "depth")
        self.sigma_min = check_number(sigma_min, "sigma_min", above=0)
        self.sigma_max = check_number(sigma_max, "sigma_max", above=0)
        if not self.sigma_min < self.sigma_max:
            raise ValueError(
                f"sigma_min must be below sigma_max, got {self.sigma_min} and {self.sigma_max}"
            )
        self.rho = check_number(rho, "rho", above=0)
        self.p_mean = check_number(p_mean, "p_mean")
        self.p_std = check_number(p_std, "p_std", above=0)
        self.sigma_data = 1.0  # the latents are standardised per dimension
        if latent_shape is not None:
            self.setup(latent_shape)

    def _make_denoiser(self, latent_shape: tuple[int, ...]) -> nn.Module:
        if len(latent_shape) == 3:
            return UNetDenoiser(latent_shape[0], self.channels, self.blocks)
        return MLPDenoiserEDM(math.prod(latent_shape), self.hidden, self.depth)

    def _build(self, latent_shape: tuple[int, ...]) -> None:
        kw = {"device": self.device, "dtype": self.dtype}
        self.register_buffer("shift", torch.zeros(latent_shape, **kw))
        self.register_buffer("scale", torch.ones(latent_shape, **kw))
        self.denoiser = self._make_denoiser(latent_shape).to(**kw)

    # -- the preconditioned denoiser --------------------------------------------------------
    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """``D(x; sigma)``: the clean (standardised) latent predicted from ``x`` at noise
        level ``sigma`` (shape ``(B,)``)."""
        sd = self.sigma_data
        s = sigma.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
        c_skip = sd**2 / (s**2 + sd**2)
        c_out = s * sd / (s**2 + sd**2).sqrt()
        c_in = 1 / (s**2 + sd**2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip * x + c_out * self.denoiser(c_in * x, c_noise)

    # -- fitting ----------------------------------------------------------------------------
    def fit(
        self,
        latents: torch.Tensor,
        *,
        iterations: int = 3000,
        lr: float = 2e-3,
        batch_size: int = 256,
        ema: float | None = 0.999,
        generator: torch.Generator | None = None,
        progress: bool = True,
    ) -> EDMDiffusion:
        """Train the denoiser with EDM's loss on latents ``(N, *latent_shape)``.

        Every call starts from fresh weights (seeded from ``generator`` when given) and sets
        the per-dimension standardisation from the latents. ``history`` gets the loss per
        iteration.

        Args:
            latents: e.g. posterior means from :func:`vaekit.priors.encode_dataset`.
            iterations: Adam steps (cosine learning-rate decay).
            lr: peak learning rate.
            batch_size: latents per step.
            ema: decay of the weights' moving average used for sampling (``None``: off).
            generator: seeds the weights, minibatches and noise (any device).
            progress: show a progress bar.
        """

        def standardise(y: torch.Tensor) -> torch.Tensor:
            self.shift.copy_(y.mean(0))
            self.scale.copy_(y.std(0).clamp_min(1e-6))
            return (y - self.shift) / self.scale

        def loss_fn(batch: torch.Tensor) -> torch.Tensor:
            b = batch.shape[0]
            z = randn_like_on((b,), batch, generator)
            sigma = (self.p_mean + self.p_std * z).exp()
            noise = randn_like_on(tuple(batch.shape), batch, generator)
            s = sigma.view(-1, *([1] * (batch.ndim - 1)))
            weight = (s**2 + self.sigma_data**2) / (s * self.sigma_data) ** 2
            return (weight * (self.denoise(batch + s * noise, sigma) - batch).square()).mean()

        return fit_denoiser(
            self, latents, standardise, loss_fn, iterations=iterations, lr=lr,
            batch_size=batch_size, generator=generator, progress=progress,
            desc="EDMDiffusion fit", ema=ema,
        )  # fmt: skip

    # -- sampling ---------------------------------------------------------------------------
    def sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        sample_steps: int | None = None,
    ) -> torch.Tensor:
        """``n`` latents by Heun's method from noise ``temperature * sigma_max * eps``.

        Args:
            sample_steps: Heun steps for this call (default: ``self.sample_steps``).
        """
        self._check_sample_args(n, temperature, generator)
        steps = (
            self.sample_steps if sample_steps is None else check_int(sample_steps, "sample_steps")
        )
        return self._heun(n, temperature, generator, steps)

    def _sample(
        self, n: int, temperature: float, generator: torch.Generator | None
    ) -> torch.Tensor:
        return self._heun(n, temperature, generator, self.sample_steps)

    @torch.no_grad()
    def _heun(
        self, n: int, temperature: float, generator: torch.Generator | None, steps: int
    ) -> torch.Tensor:
        check_temperature(temperature)
        shape = self._require_shape()
        sigmas = karras_sigmas(steps, self.sigma_min, self.sigma_max, self.rho).tolist()
        x = torch.randn((n, *shape), generator=generator, device=self.device, dtype=self.dtype)
        x = x * (temperature * sigmas[0])
        out = []
        for chunk in x.split(_SAMPLE_CHUNK):
            for s_cur, s_next in itertools.pairwise(sigmas):
                slope = self._slope(chunk, s_cur)
                step = chunk + (s_next - s_cur) * slope
                if s_next > 0:  # Heun's correction, except on the last step to sigma = 0
                    step = chunk + (s_next - s_cur) * 0.5 * (slope + self._slope(step, s_next))
                chunk = step
            out.append(chunk)
        return torch.cat(out) * self.scale + self.shift

    def _slope(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """``dx/dsigma = (x - D(x; sigma)) / sigma`` of the probability-flow ODE."""
        sig = torch.full((x.shape[0],), sigma, device=x.device, dtype=x.dtype)
        return (x - self.denoise(x, sig)) / sigma

    def config(self) -> dict:
        return {
            **super().config(),
            "sample_steps": self.sample_steps,
            "channels": self.channels,
            "blocks": self.blocks,
            "hidden": self.hidden,
            "depth": self.depth,
            "sigma_min": self.sigma_min,
            "sigma_max": self.sigma_max,
            "rho": self.rho,
            "p_mean": self.p_mean,
            "p_std": self.p_std,
        }
