"""Latent-space health: KL per dimension, active units, and the aggregate-posterior gap.

- :func:`kl_per_dim`: ``E_x KL(q(z_i|x) || N(0, 1))`` per latent element. Dimensions near 0
  nats carry no information (collapsed); a healthy model has a set of clearly non-zero ones.
- :func:`latent_activity` / :func:`active_units`: Burda et al. 2016 call unit ``i`` active
  when ``A_i = Cov_x(E_{q(z|x)}[z_i]) > 0.01``.
- :func:`aggregate_posterior_gap`: how far the aggregate posterior
  ``q(z) = E_x q(z|x)`` is from the prior N(0, I) (Hoffman & Johnson 2016 "ELBO surgery";
  Rosca et al. 2018 "Distribution matching in variational inference"). Samples are drawn
  from the prior but the decoder only learned the regions q(z) covers, so a large gap is the
  number behind *ghosting*: good reconstructions, bad samples. ``prior=`` measures the gap
  to another prior (``vae.prior``, a fitted mixture) instead.

Which ones use the model's prior: none by default. ``kl_per_dim`` is the KL to N(0, 1) per
element by design: a KL per latent dimension needs a prior that factorises over dims, and
N(0, 1) is the reference under which "about 0 nats" means "this dimension carries nothing";
with a learned or fitted prior, read collapse from :func:`active_units` instead (it does not
involve any prior). ``aggregate_posterior_gap`` compares with N(0, I) unless given
``prior=``, because its first question is whether N(0, I) samples would land on the data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from .._inference import acc_dtype, evaluating, iter_images, model_device
from .._validation import check_choice, check_int, check_number
from .likelihood import _encode

__all__ = [
    "PosteriorGap",
    "active_units",
    "aggregate_posterior_gap",
    "kl_per_dim",
    "latent_activity",
]

Loader = Iterable | torch.Tensor


def _posteriors(vae: nn.Module, loader: Loader, max_batches: int | None):
    device = model_device(vae)
    for x in iter_images(loader, device, max_batches=max_batches):
        yield _encode(vae, x)


def kl_per_dim(vae: nn.Module, loader: Loader, *, max_batches: int | None = None) -> torch.Tensor:
    """Mean KL(q(z|x) || N(0, I)) of each latent element over the data, in nats (float64).

    Always to N(0, 1) per element, whatever ``vae.prior`` is (see the module docstring):
    a per-dimension KL needs a prior that factorises over dims.

    Args:
        vae: a VAE (eval mode and ``no_grad`` inside; modes restored after).
        loader: a DataLoader (batches of images, ``(images, labels)`` or dicts with
            ``"image"``) or one image tensor.
        max_batches: stop after this many batches.

    Shape:
        output: ``vae.latent_shape``, e.g. (D,) or (C, h, w). Its sum is the average KL
        per image.

    Example:
        >>> import torch, vaekit as vk
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=8, widths=(4,),
        ...                           latent_dim=3, attention_at=(), block="conv"))
        >>> vk.metrics.kl_per_dim(vae, torch.rand(10, 1, 8, 8)).shape
        torch.Size([3])
    """
    total, n = None, 0
    with evaluating(vae):
        for q in _posteriors(vae, loader, max_batches):
            kl = q.kl_elementwise().to(acc_dtype(q.mean.device)).sum(0)
            total = kl if total is None else total + kl
            n += q.mean.shape[0]
    return total / n


def latent_activity(
    vae: nn.Module, loader: Loader, *, max_batches: int | None = None
) -> torch.Tensor:
    """``A_i = Var_x(E_q[z_i | x])``: how much each posterior mean moves across the data.

    Shape:
        output: ``vae.latent_shape`` (float64).

    Example:
        >>> import torch, vaekit as vk
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=8, widths=(4,),
        ...                           latent_dim=3, attention_at=(), block="conv"))
        >>> vk.metrics.latent_activity(vae, torch.rand(10, 1, 8, 8)).shape
        torch.Size([3])
    """
    s1 = s2 = None
    n = 0
    with evaluating(vae):
        for q in _posteriors(vae, loader, max_batches):
            mu = q.mean.to(acc_dtype(q.mean.device))
            # shifted sums (shift = first batch mean) avoid catastrophic cancellation
            if s1 is None:
                shift = mu.mean(0)
                s1, s2 = torch.zeros_like(shift), torch.zeros_like(shift)
            d = mu - shift
            s1, s2 = s1 + d.sum(0), s2 + d.square().sum(0)
            n += mu.shape[0]
    if n < 2:
        raise ValueError(f"latent activity is a variance over images: need >= 2 images, got {n}")
    return ((s2 - s1.square() / n) / (n - 1)).clamp_min(0.0)


def active_units(
    vae: nn.Module, loader: Loader, threshold: float = 0.01, *, max_batches: int | None = None
) -> int:
    """Number of active latent units, ``A_i > threshold`` (Burda et al. 2016: 0.01).

    Example:
        >>> import torch, vaekit as vk
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=8, widths=(4,),
        ...                           latent_dim=3, attention_at=(), block="conv"))
        >>> 0 <= vk.metrics.active_units(vae, torch.rand(10, 1, 8, 8)) <= 3
        True
    """
    check_number(threshold, "threshold", at_least=0)
    return int((latent_activity(vae, loader, max_batches=max_batches) > threshold).sum())


@dataclass
class PosteriorGap:
    """Distance between the aggregate posterior q(z) and the prior (N(0, I) by default).

    Attributes:
        kl: KL(N(m, S) || N(0, I)) in nats, where m and S are the mean and covariance of
            q(z) (moment matching: ``S = Cov_x(mu) + E_x diag(sigma^2)``). 0 when q(z) has the
            prior's first two moments. With ``prior=``: KL(N(m, S) || N(m_p, S_p)), m_p and
            S_p the moments of samples of that prior.
        kl_per_dim: ``kl / D``, comparable across latent sizes.
        mmd: unbiased MMD^2 between posterior samples and prior samples (multi-scale inverse
            multiquadric kernel, as in WAE, Tolstikhin et al. 2018).
        mmd_noise: the same estimator between two independent prior sample sets of the same
            size: the level of ``mmd`` that means "indistinguishable".
        eig_min, eig_max: extreme eigenvalues of S (with ``prior=``: of S relative to S_p,
            i.e. of ``S_p^(-1/2) S S_p^(-1/2)``). ``eig_min`` far below 1 means q(z) is thin
            in some direction, so prior samples fall off the data (holes).
        num_samples: posterior samples used for the MMD.
        target: ``"samples"`` (the aggregate posterior, as above) or ``"means"`` (the
            posterior means, ``S = Cov_x(mu)``, and the means in place of posterior samples
            in the MMD): what the prior was compared with (see ``aggregate_posterior_gap``).
    """

    kl: float
    kl_per_dim: float
    mmd: float
    mmd_noise: float
    eig_min: float
    eig_max: float
    num_samples: int
    target: str = "samples"


def _mmd2_unbiased(a: torch.Tensor, b: torch.Tensor) -> float:
    d = a.shape[1]
    n, m = a.shape[0], b.shape[0]

    def kernel(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        dist = torch.cdist(u, v).square()
        base = 2.0 * d  # C = 2 d sigma^2 with sigma^2 = 1, summed over scales
        return sum(c * base / (c * base + dist) for c in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0))

    kaa, kbb, kab = kernel(a, a), kernel(b, b), kernel(a, b)
    xx = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
    yy = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return float(xx + yy - 2 * kab.mean())


def aggregate_posterior_gap(
    vae: nn.Module,
    loader: Loader,
    *,
    num_samples: int = 1000,
    max_batches: int | None = None,
    generator: torch.Generator | None = None,
    prior: nn.Module | None = None,
    target: str = "auto",
) -> PosteriorGap:
    """How far the aggregate posterior is from N(0, I) — the number that explains ghosting.

    How to read it: with ``kl_per_dim`` below ~0.05 nats and ``mmd`` within a few times
    ``mmd_noise``, prior samples land where the decoder was trained, and samples look as good
    as reconstructions. A large ``kl`` with small ``eig_min`` means the posterior means
    occupy a thinner region than the prior (holes): samples from N(0, I) decode to ghosts.
    Fixes: a higher β or a KL schedule that ends higher, sampling at temperature < 1, or
    fitting a density (GMM, second-stage VAE, Dai & Wipf 2019) to the posterior means
    (Ghosh et al. 2020). Collapsed dimensions (``kl_per_dim`` of :func:`kl_per_dim` ~ 0)
    match the prior trivially and pull ``kl`` *down*: read the two together.

    Args:
        vae: a VAE (eval mode, ``no_grad``; modes restored after).
        loader: DataLoader or image tensor.
        num_samples: posterior samples (one per image, the first images) for the MMD.
        max_batches: stop after this many batches.
        generator: for reproducible posterior/prior samples (model's device).
        prior: ``None`` (default) for N(0, I), or a prior to compare with instead (any
            :class:`vaekit.priors.Prior` that can sample, e.g. ``vae.prior`` or a fitted
            ``GaussianMixture``): the MMD is then to its samples and ``kl``/``eig_*`` to the
            mean and covariance of ``max(2 * num_samples, 4 * D)`` of its samples.
        target: what the prior is compared with. ``"samples"``: the aggregate posterior,
            one posterior sample per image (moments ``Cov(mu) + E diag(sigma^2)``);
            ``"means"``: the distribution of the posterior means (moments ``Cov(mu)``), which
            is what an ex-post prior fitted on ``encode_dataset(use="mean")`` latents models
            and what its samples should match; ``"auto"`` (default): ``"means"`` for a prior
            fitted ex post (``prior.needs_fit``), ``"samples"`` otherwise. Against the
            samples, a prior fitted on means looks far off in every collapsed dimension
            (posterior variance ~1 there, spread of the means ~0) although the decoder
            ignores those dimensions: it would rank the best prior worst.

    Example:
        >>> import torch, vaekit as vk
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=8, widths=(4,),
        ...                           latent_dim=3, attention_at=(), block="conv"))
        >>> gap = vk.metrics.aggregate_posterior_gap(vae, torch.rand(50, 1, 8, 8))
        >>> gap.kl >= 0 and gap.num_samples == 50
        True
        >>> mog = vk.priors.MixtureOfGaussians(components=4, latent_shape=(3,))
        >>> vk.metrics.aggregate_posterior_gap(vae, torch.rand(50, 1, 8, 8), prior=mog).kl >= 0
        True
    """
    check_int(num_samples, "num_samples", minimum=2)
    check_choice(target, ("auto", "samples", "means"), "target")
    if target == "auto":
        target = "means" if getattr(prior, "needs_fit", False) else "samples"
    if prior is not None and not (
        isinstance(prior, nn.Module) and callable(getattr(prior, "sample", None))
    ):
        raise TypeError(
            "prior must be None (N(0, I)) or a vaekit.priors.Prior to sample from, got "
            f"{type(prior).__name__}"
        )
    s_mu = s_mumu = s_var = None
    n = 0
    samples: list[torch.Tensor] = []
    kept = 0
    with evaluating(vae):
        for q in _posteriors(vae, loader, max_batches):
            dtype = acc_dtype(q.mean.device)
            mu, var = q.mean.flatten(1).to(dtype), q.var.flatten(1).to(dtype)
            if s_mu is None:
                s_mu, s_var = torch.zeros_like(mu[0]), torch.zeros_like(mu[0])
                s_mumu = torch.zeros(mu.shape[1], mu.shape[1], dtype=dtype, device=mu.device)
            s_mu, s_var = s_mu + mu.sum(0), s_var + var.sum(0)
            s_mumu = s_mumu + mu.T @ mu
            n += mu.shape[0]
            if kept < num_samples:
                z = q.mean if target == "means" else q.sample(generator=generator)
                z = z[: num_samples - kept]
                samples.append(z.flatten(1).to(dtype))
                kept += z.shape[0]
    if n < 2:
        raise ValueError(f"the aggregate posterior needs >= 2 images, got {n}")
    d = s_mu.shape[0]
    m = s_mu / n
    # total covariance of the mixture: Cov(mu) + E[diag(var)] (population moments); of the
    # means alone: Cov(mu)
    cov = s_mumu / n - torch.outer(m, m)
    if target == "samples":
        cov = cov + torch.diag(s_var / n)
    cov = 0.5 * (cov + cov.T)
    post = torch.cat(samples)
    if prior is None:
        eig = torch.linalg.eigvalsh(cov).clamp_min(1e-12)
        kl = 0.5 * float(eig.sum() + m.square().sum() - d - eig.log().sum())
        noise = torch.randn(
            (2 * post.shape[0], d), generator=generator, device=post.device, dtype=post.dtype
        )
    else:
        noise = _prior_samples(vae, prior, max(2 * post.shape[0], 4 * d), generator, q.mean)
        noise = noise.to(post.dtype)
        eig, kl = _gap_to_moments(m, cov, noise)
        noise = noise[: 2 * post.shape[0]]
    return PosteriorGap(
        kl=kl,
        kl_per_dim=kl / d,
        mmd=_mmd2_unbiased(post, noise[: post.shape[0]]),
        mmd_noise=abs(_mmd2_unbiased(noise[: post.shape[0]], noise[post.shape[0] :])),
        eig_min=float(eig.min()),
        eig_max=float(eig.max()),
        num_samples=post.shape[0],
        target=target,
    )


def _prior_samples(
    vae: nn.Module,
    prior: nn.Module,
    n: int,
    generator: torch.Generator | None,
    latent: torch.Tensor,
) -> torch.Tensor:
    """``n`` flat samples of ``prior`` (in eval mode, no grad), checked against the latents."""
    with evaluating(vae), evaluating(prior):  # a VampPrior runs the model's encoder
        z = prior.sample(n, generator=generator)
    if tuple(z.shape[1:]) != tuple(latent.shape[1:]):
        raise ValueError(
            f"prior samples latents of shape {tuple(z.shape[1:])} but the model's latents are "
            f"{tuple(latent.shape[1:])}"
        )
    return z.flatten(1)


def _gap_to_moments(
    m: torch.Tensor, cov: torch.Tensor, samples: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """Eigenvalues of S relative to the samples' covariance S_p, and KL(N(m, S) || N(m_p, S_p))."""
    d = m.shape[0]
    m_p = samples.mean(0)
    centred = samples - m_p
    cov_p = centred.T @ centred / samples.shape[0]
    cov_p = 0.5 * (cov_p + cov_p.T)
    # a tiny ridge keeps the Cholesky factor of a (nearly) degenerate prior finite
    ridge = 1e-9 * float(cov_p.diagonal().mean().clamp_min(1e-12))
    chol = torch.linalg.cholesky(cov_p + ridge * torch.eye(d, dtype=cov.dtype, device=cov.device))
    half = torch.linalg.solve_triangular(chol, cov, upper=False)  # L^-1 S
    rel = torch.linalg.solve_triangular(chol, half.T, upper=False)  # L^-1 S L^-T
    eig = torch.linalg.eigvalsh(0.5 * (rel + rel.T)).clamp_min(1e-12)
    delta = torch.linalg.solve_triangular(chol, (m - m_p)[:, None], upper=False)
    kl = 0.5 * float(eig.sum() + delta.square().sum() - d - eig.log().sum())
    return eig, kl
