"""A RealNVP normalising flow (Dinh et al. 2017) as an ex-post prior on flat latents.

The flow maps a latent z to base noise u ~ N(0, I) through a fixed standardisation (the
latents' mean and std, stored as buffers) and ``layers`` affine coupling layers with
alternating even/odd masks. Each coupling keeps the masked half and transforms the rest::

    y = m * x + (1 - m) * (x * exp(s(m * x)) + t(m * x)),   log|det J| = sum((1 - m) * s)

with ``s = scale * tanh(.)`` (bounded, as in RealNVP) and the last layer of each
conditioner zero-initialised, so a fresh flow is the identity. The density is exact by the
change of variables, ``log p(z) = log N(u; 0, I) + log|det du/dz|``, and the flow is
trained by maximum likelihood on the latents (Dai & Wipf 2019's "second stage" with a flow).

Spatial latents ``(C, h, w)`` are flattened to ``C*h*w`` dims (their spatial layout is not
used): fine for small latents such as 4×7×7; for large ones prefer
:class:`~vaekit.priors.GaussianMixture` or :class:`~vaekit.priors.LatentDiffusion`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from torch import nn

from .._validation import check_int
from ..distributions import _LOG_2PI, _standard_normal
from ._training import fit_loop, seeded_build
from .base import ExPostPrior, compute_dtype
from .registry import register

__all__ = ["AffineCoupling", "Flow"]


class AffineCoupling(nn.Module):
    """One RealNVP affine coupling layer on (B, D) vectors.

    Args:
        dim: D.
        hidden: width of the conditioner MLP (two hidden layers, SiLU).
        parity: which dims are kept (``arange(D) % 2 == parity``) and condition the others.

    Shape:
        x, y: (B, D); log_det: (B,).

    Example:
        >>> import torch
        >>> from vaekit.priors import AffineCoupling
        >>> layer = AffineCoupling(4, hidden=8, parity=0)
        >>> x = torch.randn(3, 4)
        >>> y, log_det = layer(x)   # a fresh layer is the identity
        >>> torch.equal(y, x), log_det
        (True, tensor([0., 0., 0.], grad_fn=<SumBackward1>))
    """

    def __init__(self, dim: int, hidden: int, parity: int) -> None:
        super().__init__()
        self.register_buffer("mask", (torch.arange(dim) % 2 == parity).float(), persistent=False)
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, 2 * dim),
        )  # fmt: skip
        nn.init.zeros_(self.net[-1].weight)  # start as the identity
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(dim))

    def _shift_log_scale(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(kept).chunk(2, dim=-1)
        free = 1.0 - self.mask
        return self.scale * torch.tanh(s) * free, t * free

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x -> (y, log|det dy/dx|) with shapes (B, D), (B,)."""
        s, t = self._shift_log_scale(x * self.mask)
        return x * torch.exp(s) + t, s.sum(-1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """y -> x, the exact inverse of :meth:`forward`."""
        s, t = self._shift_log_scale(y * self.mask)  # the kept half is unchanged: m*y = m*x
        return (y - t) * torch.exp(-s)


@register("flow", aliases=("realnvp",))
class Flow(ExPostPrior):
    """RealNVP flow prior trained by maximum likelihood on latents.

    Temperature: scales the base noise, ``z = f^{-1}(temperature * eps)`` (as in Glow,
    Kingma & Dhariwal 2018); temperature 0 gives ``f^{-1}(0)``, the flow's centre.

    Args:
        layers: number of affine coupling layers (alternating masks).
        hidden: width of each coupling's conditioner MLP.
        latent_shape: ``(D,)`` or ``(C, h, w)`` (flattened); ``None``: taken from ``fit``.

    Example:
        >>> import torch, vaekit as vk
        >>> g = torch.Generator().manual_seed(0)
        >>> latents = torch.randn(512, 4, generator=g) * torch.tensor([1.0, 2.0, 0.5, 1.0])
        >>> flow = vk.priors.Flow(layers=4, hidden=32).fit(latents, iterations=50,
        ...                                                generator=g, progress=False)
        >>> flow.log_prob(latents[:3]).shape, flow.sample(5, generator=g).shape
        (torch.Size([3]), torch.Size([5, 4]))
        >>> u, log_det = flow.to_base(latents[:3])
        >>> torch.allclose(flow.from_base(u), latents[:3], atol=1e-5)
        True
    """

    def __init__(
        self, layers: int = 8, hidden: int = 256, *, latent_shape: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        self.layers = check_int(layers, "layers")
        self.hidden = check_int(hidden, "hidden")
        self.history: list[float] = []
        if latent_shape is not None:
            self.setup(latent_shape)

    def _make_couplings(self, dim: int) -> nn.ModuleList:
        return nn.ModuleList(AffineCoupling(dim, self.hidden, i % 2) for i in range(self.layers))

    def _build(self, latent_shape: tuple[int, ...]) -> None:
        d, kw = math.prod(latent_shape), {"device": self.device, "dtype": self.dtype}
        self.register_buffer("shift", torch.zeros(d, **kw))  # the latents' mean ...
        self.register_buffer("log_scale", torch.zeros(d, **kw))  # ... and log std
        self.couplings = self._make_couplings(d).to(**kw)

    # -- the bijection ----------------------------------------------------------------------
    def to_base(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents -> base noise: ``(u, log|det du/dz|)``.

        Shape:
            z: (B, *latent_shape); u: (B, D); log_det: (B,).
        """
        z = self.check_latents(z)
        x = (z.flatten(1) - self.shift) * torch.exp(-self.log_scale)
        log_det = (-self.log_scale.sum()).expand(x.shape[0])
        for layer in self.couplings:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def from_base(self, u: torch.Tensor) -> torch.Tensor:
        """Base noise (B, D) -> latents (B, *latent_shape): the inverse of :meth:`to_base`."""
        shape = self._require_shape()
        d = math.prod(shape)
        if u.ndim != 2 or u.shape[1] != d:
            raise ValueError(f"u must have shape (B, {d}), got {tuple(u.shape)}")
        for layer in reversed(self.couplings):
            u = layer.inverse(u)
        return (u * torch.exp(self.log_scale) + self.shift).view(-1, *shape)

    def _log_prob(self, z: torch.Tensor) -> torch.Tensor:
        u, log_det = self.to_base(z.to(self.dtype))  # in the flow's own dtype
        dtype = compute_dtype(u)
        return -0.5 * (u.shape[1] * _LOG_2PI + u.to(dtype).square().sum(1)) + log_det.to(dtype)

    def _sample(
        self, n: int, temperature: float, generator: torch.Generator | None
    ) -> torch.Tensor:
        d = self.num_latent_dims
        u = _standard_normal((n, d), self.device, self.dtype, generator) * temperature
        return self.from_base(u)

    # -- fitting ----------------------------------------------------------------------------
    def fit(
        self,
        latents: torch.Tensor,
        *,
        iterations: int = 3000,
        lr: float = 1e-3,
        batch_size: int = 256,
        val_fraction: float = 0.1,
        generator: torch.Generator | None = None,
        progress: bool = True,
    ) -> Flow:
        """Train by maximum likelihood on latents ``(N, *latent_shape)``; returns ``self``.

        Every call starts from fresh weights (seeded from ``generator`` when given), with
        the standardisation set from the latents. ``history`` gets the loss per iteration
        (negative log-likelihood in nats per latent dim).

        Args:
            latents: e.g. posterior means from :func:`vaekit.priors.encode_dataset`.
            iterations: Adam steps (cosine learning-rate decay).
            lr: peak learning rate.
            batch_size: latents per step.
            val_fraction: the seeded share of the latents held out of the fit; ``fit_report``
                gives the mean log-likelihood per dimension on the fit latents and on those
                (a ``RuntimeWarning`` when the flow memorised its latents; 0: fit on all).
            generator: seeds the split, the initial weights and the minibatch order (any
                device).
            progress: show a progress bar.
        """
        t0 = time.perf_counter()
        x = self._check_fit_latents(latents).flatten(1).to(self.dtype)
        x, val = self._split_for_fit(x, val_fraction, generator, minimum=batch_size)
        d = x.shape[1]
        self.fitted.fill_(False)
        kw = {"device": self.device, "dtype": self.dtype}
        self.couplings = seeded_build(lambda: self._make_couplings(d), generator).to(**kw)
        with torch.no_grad():
            self.shift.copy_(x.mean(0))
            self.log_scale.copy_(x.std(0).clamp_min(1e-6).log())

        def loss_fn(batch: torch.Tensor) -> torch.Tensor:
            return -self._log_prob(batch.view(-1, *self.latent_shape)).mean() / d

        self.history = fit_loop(
            self.couplings, loss_fn, x, iterations=iterations, lr=lr, batch_size=batch_size,
            generator=generator, progress=progress, desc="Flow fit",
        )  # fmt: skip
        self._set_fitted()
        self._report_fit(x, val, time.perf_counter() - t0)
        return self

    def _overfit_fix(self) -> str:
        return (
            f"use fewer iterations (now {len(self.history)}), fewer layers or a smaller hidden "
            "width, more latents, or vk.priors.select"
        )

    def config(self) -> dict:
        return {**super().config(), "layers": self.layers, "hidden": self.hidden}
