"""A latent diffusion prior: DDPM training (Ho et al. 2020), DDIM sampling (Song et al. 2021).

Fitted after training on a VAE's latents, like the second stage of latent diffusion models
(Rombach et al. 2022), but small: the latents are standardised (mean/std buffers: per
dimension for flat latents, per channel for spatial ones), a denoiser eps_theta(x_t, t) is
trained with the DDPM objective

    E_{x_0, t, eps} || eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t) ||^2

over ``steps`` timesteps with a cosine (Nichol & Dhariwal 2021) or linear beta schedule, and
samples come from the deterministic DDIM sampler (eta = 0) on ``sample_steps`` evenly spaced
timesteps, with the predicted x_0 clipped to the range of the training latents.

Denoisers: a residual MLP with a sinusoidal time embedding for flat latents, and a narrow
conv net of :class:`vaekit.blocks.PreActResBlock` s with the time embedding added before
each block for spatial ones (``denoiser="auto"`` picks by the latent shape).

The prior has no tractable density: :meth:`~vaekit.priors.Prior.log_prob` raises an error
naming the priors that have one. Use it for sampling, not as the KL's prior.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_choice, check_int
from ..blocks import PreActResBlock, get_norm_layer
from ._training import fit_denoiser, randn_like_on
from .base import ExPostPrior, check_temperature
from .registry import register

__all__ = ["LatentDiffusion", "beta_schedule"]

SCHEDULES = ("cosine", "linear")
DENOISERS = ("auto", "mlp", "conv")
_SAMPLE_CHUNK = 4096  # latents denoised at once when sampling (memory, not results)


def beta_schedule(name: str, steps: int) -> torch.Tensor:
    """abar_t = prod_{s<=t} (1 - beta_s) for t = 0..steps-1, float64.

    ``"cosine"``: Nichol & Dhariwal 2021, ``abar(t) = cos^2((t/T + 0.008)/1.008 * pi/2)``
    with betas clipped at 0.999; ``"linear"``: Ho et al. 2020's betas 1e-4 .. 0.02 (for
    T = 1000; scaled by 1000/T otherwise).

    Example:
        >>> from vaekit.priors.diffusion import beta_schedule
        >>> abar = beta_schedule("cosine", 1000)
        >>> bool(abar[0] > 0.9999), bool(abar[-1] < 1e-4)
        (True, True)
    """
    check_choice(name, SCHEDULES, "schedule")
    check_int(steps, "steps", 2)
    if name == "linear":
        scale = 1000.0 / steps
        betas = torch.linspace(1e-4 * scale, 0.02 * scale, steps, dtype=torch.float64)
    else:
        s = 0.008
        t = torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((t + s) / (1 + s) * math.pi / 2).square()
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas.clamp(max=0.999), 0)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (Vaswani et al. 2017): (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class _TimeMLP(nn.Sequential):
    def __init__(self, emb_dim: int, out: int) -> None:
        super().__init__(nn.Linear(emb_dim, out), nn.SiLU(), nn.Linear(out, out))


class _ResMLPBlock(nn.Module):
    """h + W2 silu(W1 silu(LN h) + E e): a pre-norm residual MLP block with a time input."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.emb = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(F.silu(self.fc1(F.silu(self.norm(h))) + self.emb(e)))


class MLPDenoiser(nn.Module):
    """eps_theta(x_t, t) for flat latents (B, D): a residual MLP with a time embedding."""

    def __init__(self, dim: int, hidden: int = 256, depth: int = 3, emb_dim: int = 128) -> None:
        super().__init__()
        self.emb_dim = emb_dim
        self.time = _TimeMLP(emb_dim, hidden)
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(_ResMLPBlock(hidden) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.out[-1].weight)  # predicts eps = 0 at first
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = F.silu(self.time(timestep_embedding(t, self.emb_dim).to(x.dtype)))
        h = self.inp(x.flatten(1))
        for block in self.blocks:
            h = block(h, e)
        return self.out(h).view_as(x)


class ConvDenoiser(nn.Module):
    """eps_theta(x_t, t) for spatial latents (B, C, h, w): vaekit PreActResBlocks at one
    resolution, the time embedding added (per channel) before each block."""

    def __init__(self, in_ch: int, channels: int = 32, depth: int = 3, emb_dim: int = 128) -> None:
        super().__init__()
        self.emb_dim = emb_dim
        self.time = _TimeMLP(emb_dim, channels)
        self.inp = nn.Conv2d(in_ch, channels, 3, padding=1)
        self.emb = nn.ModuleList(nn.Linear(channels, channels) for _ in range(depth))
        self.blocks = nn.ModuleList(
            PreActResBlock(channels, channels, norm="group", act="silu") for _ in range(depth)
        )
        self.out = nn.Sequential(
            get_norm_layer("group")(channels), nn.SiLU(), nn.Conv2d(channels, in_ch, 3, padding=1)
        )
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = F.silu(self.time(timestep_embedding(t, self.emb_dim).to(x.dtype)))
        h = self.inp(x)
        for emb, block in zip(self.emb, self.blocks):
            h = block(h + emb(e)[:, :, None, None])
        return self.out(h)


@register("diffusion", aliases=("latent_diffusion",))
class LatentDiffusion(ExPostPrior):
    """A small denoising diffusion model on latents, sampled with DDIM.

    Temperature: scales the initial noise x_T of the (deterministic) DDIM sampler;
    temperature 0 sends every sample down the same path from x_T = 0.

    Args:
        steps: diffusion timesteps T of training.
        sample_steps: DDIM steps when sampling (<= steps; fewer is faster and coarser).
        schedule: ``"cosine"`` or ``"linear"`` beta schedule.
        denoiser: ``"auto"`` (conv for spatial latents, MLP for flat), ``"mlp"`` (flattens
            spatial latents) or ``"conv"`` (spatial latents only).
        hidden, depth: MLP denoiser width and number of residual blocks.
        channels, blocks: conv denoiser width and number of PreActResBlocks.
        latent_shape: ``(D,)`` or ``(C, h, w)``; ``None``: taken from ``fit``.

    Example:
        >>> import torch, vaekit as vk
        >>> g = torch.Generator().manual_seed(0)
        >>> latents = torch.randn(256, 2, generator=g)
        >>> prior = vk.priors.LatentDiffusion(steps=100, sample_steps=10, hidden=32, depth=1)
        >>> prior = prior.fit(latents, iterations=20, generator=g, progress=False)
        >>> prior.sample(4, generator=g).shape
        torch.Size([4, 2])
        >>> prior.log_prob(latents)
        Traceback (most recent call last):
        ...
        vaekit.priors.base.PriorCapabilityError: LatentDiffusion has no tractable density ...
    """

    has_log_prob = False

    def __init__(
        self,
        steps: int = 1000,
        sample_steps: int = 50,
        *,
        schedule: str = "cosine",
        denoiser: str = "auto",
        hidden: int = 256,
        depth: int = 3,
        channels: int = 32,
        blocks: int = 3,
        latent_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.steps = check_int(steps, "steps", 2)
        self.sample_steps = self._check_sample_steps(sample_steps)
        check_choice(schedule, SCHEDULES, "schedule")
        check_choice(denoiser, DENOISERS, "denoiser")
        self.schedule, self.denoiser_kind = schedule, denoiser
        self.hidden, self.depth = check_int(hidden, "hidden"), check_int(depth, "depth")
        self.channels, self.blocks = check_int(channels, "channels"), check_int(blocks, "blocks")
        self.history: list[float] = []
        # derived from the config, so not saved
        abar = beta_schedule(schedule, self.steps).to(torch.get_default_dtype())
        self.register_buffer("alphas_cumprod", abar, persistent=False)
        if latent_shape is not None:
            self.setup(latent_shape)

    def _check_sample_steps(self, sample_steps: object) -> int:
        check_int(sample_steps, "sample_steps")
        if sample_steps > self.steps:
            raise ValueError(f"sample_steps must be <= steps={self.steps}, got {sample_steps}")
        return sample_steps

    def _resolved_denoiser(self, latent_shape: tuple[int, ...]) -> str:
        if self.denoiser_kind == "auto":
            return "conv" if len(latent_shape) == 3 else "mlp"
        if self.denoiser_kind == "conv" and len(latent_shape) != 3:
            raise ValueError(
                "denoiser='conv' needs spatial latents (C, h, w), got latent_shape "
                f"{latent_shape}; "
                "use denoiser='mlp' or 'auto'"
            )
        return self.denoiser_kind

    def _make_denoiser(self, latent_shape: tuple[int, ...]) -> nn.Module:
        if self._resolved_denoiser(latent_shape) == "conv":
            return ConvDenoiser(latent_shape[0], self.channels, self.blocks)
        return MLPDenoiser(math.prod(latent_shape), self.hidden, self.depth)

    def _build(self, latent_shape: tuple[int, ...]) -> None:
        kw = {"device": self.device, "dtype": self.dtype}
        self._resolved_denoiser(latent_shape)  # refuse a conv denoiser on flat latents early
        stat_shape = (latent_shape[0], 1, 1) if len(latent_shape) == 3 else latent_shape
        self.register_buffer("shift", torch.zeros(stat_shape, **kw))
        self.register_buffer("scale", torch.ones(stat_shape, **kw))
        self.register_buffer("clip", torch.tensor(5.0, **kw))  # |x_0| bound, normalised units
        self.denoiser = self._make_denoiser(latent_shape).to(**kw)

    # -- fitting ----------------------------------------------------------------------------
    def fit(
        self,
        latents: torch.Tensor,
        *,
        iterations: int = 8000,
        lr: float = 1e-3,
        batch_size: int = 256,
        ema: float | None = 0.999,
        generator: torch.Generator | None = None,
        progress: bool = True,
    ) -> LatentDiffusion:
        """Train the denoiser with the DDPM loss on latents ``(N, *latent_shape)``.

        Every call starts from fresh weights (seeded from ``generator`` when given) and sets
        the standardisation from the latents. ``history`` gets the loss per iteration.

        Args:
            latents: e.g. posterior means from :func:`vaekit.priors.encode_dataset`.
            iterations: Adam steps (cosine learning-rate decay).
            lr: peak learning rate.
            batch_size: latents per step.
            ema: decay of the weights' moving average used for sampling (``None``: off).
            generator: seeds the weights, minibatches, timesteps and noise (any device).
            progress: show a progress bar.
        """
        abar = self.alphas_cumprod

        def standardise(x0: torch.Tensor) -> torch.Tensor:
            dims = (0, 2, 3) if x0.ndim == 4 else (0,)
            keep = x0.ndim == 4
            self.shift.copy_(x0.mean(dims, keepdim=keep).view_as(self.shift))
            self.scale.copy_(x0.std(dims, keepdim=keep).clamp_min(1e-6).view_as(self.scale))
            x0 = (x0 - self.shift) / self.scale
            self.clip.fill_(float(x0.abs().max()))
            return x0

        def loss_fn(batch: torch.Tensor) -> torch.Tensor:
            b = batch.shape[0]
            device = generator.device if generator is not None else batch.device
            t = torch.randint(0, self.steps, (b,), generator=generator, device=device)
            t = t.to(batch.device)
            eps = randn_like_on(tuple(batch.shape), batch, generator)
            a = abar[t].view(b, *([1] * (batch.ndim - 1))).to(batch.dtype)
            x_t = a.sqrt() * batch + (1 - a).sqrt() * eps
            return F.mse_loss(self.denoiser(x_t, t), eps)

        return fit_denoiser(
            self, latents, standardise, loss_fn, iterations=iterations, lr=lr,
            batch_size=batch_size, generator=generator, progress=progress,
            desc="LatentDiffusion fit", ema=ema,
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
        """``n`` latents by DDIM from noise ``temperature * eps`` (see the class docstring).

        Args:
            sample_steps: DDIM steps for this call (default: ``self.sample_steps``).
        """
        self._check_sample_args(n, temperature, generator)
        steps = (
            self.sample_steps if sample_steps is None else self._check_sample_steps(sample_steps)
        )
        return self._ddim(n, temperature, generator, steps)

    def _sample(
        self, n: int, temperature: float, generator: torch.Generator | None
    ) -> torch.Tensor:
        return self._ddim(n, temperature, generator, self.sample_steps)

    @torch.no_grad()
    def _ddim(
        self, n: int, temperature: float, generator: torch.Generator | None, sample_steps: int
    ) -> torch.Tensor:
        check_temperature(temperature)
        shape = self._require_shape()
        x = torch.randn((n, *shape), generator=generator, device=self.device, dtype=self.dtype)
        x = x * temperature
        # evenly spaced timesteps from T-1 down to 0
        ts = torch.linspace(self.steps - 1, 0, sample_steps, dtype=torch.float64).round().long()
        abar = self.alphas_cumprod.double()
        clip = float(self.clip)
        out = []
        for chunk in x.split(_SAMPLE_CHUNK):
            for i, t in enumerate(ts.tolist()):
                a_t = abar[t]
                a_prev = abar[ts[i + 1]] if i + 1 < len(ts) else torch.ones((), dtype=abar.dtype)
                t_batch = torch.full((chunk.shape[0],), t, device=self.device, dtype=torch.long)
                eps = self.denoiser(chunk, t_batch)
                x0 = ((chunk - (1 - a_t).sqrt().item() * eps) / a_t.sqrt().item()).clamp(
                    -clip, clip
                )
                eps = (chunk - a_t.sqrt().item() * x0) / (1 - a_t).sqrt().item()  # matches x0
                chunk = a_prev.sqrt().item() * x0 + (1 - a_prev).sqrt().item() * eps
            out.append(chunk)
        return torch.cat(out) * self.scale + self.shift

    def config(self) -> dict:
        return {
            **super().config(),
            "steps": self.steps,
            "sample_steps": self.sample_steps,
            "schedule": self.schedule,
            "denoiser": self.denoiser_kind,
            "hidden": self.hidden,
            "depth": self.depth,
            "channels": self.channels,
            "blocks": self.blocks,
        }
