"""Likelihood metrics: importance-weighted NLL, the ELBO, bits per dimension.

- :func:`iwae_nll`: the importance-weighted bound of Burda et al. 2016 ("Importance Weighted
  Autoencoders"), ``-log (1/K) sum_k p(x, z_k) / q(z_k | x)`` with ``z_k ~ q(z|x)``. It is an
  upper bound on ``-log p(x)`` that tightens as K grows; K = 1 is the (negative) ELBO.
- :func:`elbo_nll`: ``E_q[-log p(x|z)] + KL(q(z|x) || p(z))``, the KL in closed form where the
  prior has one (N(0, I)), else estimated on the same posterior samples.

p(z) is the model's prior, ``vae.prior`` (a module without one is taken to have N(0, I));
a prior without a density (``LatentDiffusion``) or an ex-post prior that is not fitted is a
``ValueError`` that names the priors with one.
- :func:`bits_per_dim` and :func:`discretized_bits_per_dim`: nats -> bits per dimension, the
  latter with the discretisation correction for continuous densities on 8-bit data (Theis
  et al. 2016, "A note on the evaluation of generative models").

The observation models are written here as log-densities summed per image (not as losses):

    bernoulli  log p(x|z) = sum x log p + (1 - x) log(1 - p)      (p = decoder output, or
                                                                   sigmoid(logits) for
                                                                   output="identity")
    gaussian   log p(x|z) = sum -0.5 (log 2 pi + log s^2 + (x - mu)^2 / s^2)
    laplace    log p(x|z) = sum -log(2 b) - |x - mu| / b

where the decoder's own log-variance (``variance="pixel"|"global"`` configs) sets
``s^2 = exp(logvar)`` for the Gaussian and ``2 b^2 = exp(logvar)`` for the Laplace (the same
convention as :mod:`vaekit.losses`), or you pass a fixed ``sigma`` (Gaussian std) or
``scale`` (Laplace b) for decoders without a variance head. Everything that is summed or log-sum-exp'ed runs in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import nn

from .._inference import acc_dtype, evaluating
from .._maths import (
    LOG_2PI,
    bernoulli_log_prob,
    gaussian_log_prob,
    laplace_log_prob,
    logvar_of_scale,
)
from .._maths import upcast_half as _f32
from .._validation import (
    check_broadcasts,
    check_choice,
    check_finite,
    check_image,
    check_int,
    check_number,
    check_range,
    check_same_shape,
)
from ..distributions import DiagonalGaussian

__all__ = [
    "LIKELIHOODS",
    "bits_per_dim",
    "discretized_bits_per_dim",
    "elbo_nll",
    "iwae_nll",
    "log_likelihood",
]

LIKELIHOODS = ("bernoulli", "gaussian", "laplace")
Likelihood = str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# -- bits per dimension -----------------------------------------------------------------------
def _num_dims(num_dims: object) -> int:
    if isinstance(num_dims, (tuple, list, torch.Size)):
        dims = [check_int(d, f"num_dims[{i}]") for i, d in enumerate(num_dims)]
        return check_int(math.prod(dims), "num_dims")  # () has no dimensions
    return check_int(num_dims, "num_dims")


def bits_per_dim(nll_nats: torch.Tensor | float, num_dims: int | tuple[int, ...]):
    """``nll_nats / (num_dims * ln 2)``: negative log-likelihood in bits per dimension.

    Args:
        nll_nats: NLL of one image in nats (tensor of any shape, or a float).
        num_dims: data dimensions per image, ``C * H * W`` (or the shape ``(C, H, W)``).

    Example:
        >>> import math, vaekit as vk
        >>> vk.metrics.bits_per_dim(1024 * math.log(2), (1, 32, 32))
        1.0
    """
    return nll_nats / (_num_dims(num_dims) * math.log(2))


def discretized_bits_per_dim(
    nll_nats: torch.Tensor | float,
    num_dims: int | tuple[int, ...],
    *,
    num_bins: int = 256,
    data_range: float = 1.0,
    bin_width: float | None = None,
):
    """Bits per dimension of *discrete* data from a continuous density's NLL.

    A continuous density p gives each pixel level a bin of width ``delta`` and
    ``P(bin) ~= p(x) * delta`` per dimension (exactly a bound when the data were dequantised
    with uniform noise, Theis et al. 2016). So

        bpd = (nll_nats - D * ln(delta)) / (D * ln 2)

    The default ``delta = data_range / num_bins = 1/256`` is the convention of published
    results (e.g. PixelCNN, Glow): 8-bit data scaled as ``(k + u) / 256``, giving
    ``bits_per_dim(nll) + 8``. Data scaled as ``k / 255`` (torchvision's ``ToTensor``,
    ``vk.data.load_fashion_mnist``: 0 and 1 are both levels) are ``1/255`` apart: pass
    ``bin_width=1/255`` (``bits_per_dim(nll) + log2(255)``). Data left on the 0..255 scale
    (``data_range=256``) needs no correction. Do not apply it to a Bernoulli NLL, which is
    already a probability of discrete values.

    Args:
        nll_nats: NLL of one image in nats (tensor or float).
        num_dims: ``C * H * W`` or the shape ``(C, H, W)``.
        num_bins: pixel levels (default 256, 8-bit data).
        data_range: the data's range (default 1.0).
        bin_width: the spacing of the levels; default ``data_range / num_bins``.

    Example:
        >>> import math, vaekit as vk
        >>> vk.metrics.discretized_bits_per_dim(0.0, 1024)
        8.0
        >>> vk.metrics.discretized_bits_per_dim(0.0, 1024, bin_width=1 / 255) == math.log2(255)
        True
    """
    d = _num_dims(num_dims)
    check_number(data_range, "data_range", above=0)
    check_int(num_bins, "num_bins", minimum=2)
    if bin_width is None:
        bin_width = data_range / num_bins
    check_number(bin_width, "bin_width", above=0)
    return (nll_nats - d * math.log(bin_width)) / (d * math.log(2))


# -- observation models -----------------------------------------------------------------------
def log_likelihood(
    recon: torch.Tensor,
    x: torch.Tensor,
    likelihood: str = "bernoulli",
    *,
    logvar: torch.Tensor | None = None,
    sigma: float | None = None,
    scale: float | None = None,
    logits: bool = False,
) -> torch.Tensor:
    """``log p(x | z)`` per image in nats, summed over pixels (float64).

    Args:
        recon: decoder output: Bernoulli probabilities (or logits with ``logits=True``), or
            the mean of a Gaussian/Laplace.
        x: data, same shape.
        likelihood: ``"bernoulli"``, ``"gaussian"`` or ``"laplace"``.
        logvar: the decoder's log-variance (broadcastable to ``x``), or ``None`` to use
            ``sigma``/``scale``.
        sigma: fixed Gaussian standard deviation when ``logvar`` is ``None``.
        scale: fixed Laplace scale b when ``logvar`` is ``None``.
        logits: ``recon`` holds Bernoulli logits rather than probabilities.

    Shape:
        recon, x: (N, C, H, W); output: (N,).

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.zeros(1, 1, 2, 2)
        >>> vk.metrics.log_likelihood(torch.full_like(x, 0.5), x)   # 4 * log(1/2)
        tensor([-2.7726], dtype=torch.float64)
    """
    check_choice(likelihood, LIKELIHOODS, "likelihood")
    check_image(recon, "recon")
    check_image(x, "x")
    check_same_shape(recon, x, ("recon", "x"))
    recon, x = _f32(recon), _f32(x)  # half -> float32; float64 models stay float64
    if likelihood == "bernoulli":
        if sigma is not None or scale is not None or logvar is not None:
            raise ValueError(
                "a Bernoulli likelihood has no variance: leave sigma, scale and logvar as None"
            )
        hint = "a Bernoulli likelihood needs data in [0, 1]"
        check_range(x, 0.0, 1.0, "x", hint)
        if logits:
            check_finite(recon, "recon")
        else:
            check_range(recon, 0.0, 1.0, "recon", "probabilities, or pass logits=True")
        log_px = bernoulli_log_prob(x, recon, logits=logits)
        return log_px.flatten(1).sum(1, dtype=torch.float64)
    fixed, other = ("sigma", "scale") if likelihood == "gaussian" else ("scale", "sigma")
    given = {"sigma": sigma, "scale": scale}
    if given[other] is not None:
        raise ValueError(
            f"{other}= does not apply to likelihood={likelihood!r}; pass {fixed}= instead "
            "(sigma: Gaussian std, scale: Laplace b)"
        )
    if logvar is not None and given[fixed] is not None:
        raise ValueError(
            f"got both {fixed}={given[fixed]!r} and a decoder logvar: the decoder predicts its "
            f"own variance (config.variance != 'none'), so leave {fixed}=None"
        )
    check_finite(recon, "recon")
    check_finite(x, "x")
    if logvar is None:
        if given[fixed] is None:
            raise ValueError(
                f"likelihood={likelihood!r} needs a variance: the decoder has none "
                f"(variance='none'), so pass a fixed {fixed}=..., e.g. {fixed}=0.1"
            )
        check_number(given[fixed], fixed, above=0)
        lv = recon.new_full((), logvar_of_scale(likelihood, given[fixed]))
    else:
        lv = _f32(check_broadcasts(logvar, x.shape, "logvar", "x's"))
    # the losses' densities (one implementation, vaekit._maths); no clamp of the variance
    # here: a metric reports the model as it is
    log_prob = gaussian_log_prob if likelihood == "gaussian" else laplace_log_prob
    return log_prob(x, recon, lv).expand_as(x).flatten(1).sum(1, dtype=torch.float64)


def _decode(vae: nn.Module, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    if hasattr(vae, "decode_with_logvar"):
        return vae.decode_with_logvar(z)
    return vae.decode(z), None


def _encode(vae: nn.Module, x: torch.Tensor) -> DiagonalGaussian:
    q = vae.encode(x)
    if isinstance(q, tuple):
        q = DiagonalGaussian(*q)
    return q


def _prior_of(vae: nn.Module, purpose: str):
    """``vae.prior`` checked to have a usable density, or ``None`` for N(0, I).

    Duck-typed (metrics do not import the priors): any module with ``log_prob``.
    """
    prior = getattr(vae, "prior", None)
    if prior is None:
        return None
    if not (isinstance(prior, nn.Module) and callable(getattr(prior, "log_prob", None))):
        raise TypeError(
            f"vae.prior must be a vaekit.priors.Prior (with log_prob), got {type(prior).__name__}"
        )
    require = getattr(prior, "require_density", None)
    if require is not None:
        require(purpose)
    return prior


def _log_prior_ratio(prior, z: torch.Tensor, q: DiagonalGaussian, dtype) -> torch.Tensor:
    """``log p(z) - log q(z|x)`` for posterior draws ``z`` (kc, nb, *latent): (kc, nb) in ``dtype``.

    For N(0, I) (and priors that factorise, with ``log_prob_elementwise``) the difference is
    taken per element in float32 and summed in ``dtype``, as before priors were swappable.
    """
    zf = _f32(z)
    elementwise = None if prior is None else getattr(prior, "log_prob_elementwise", None)
    if prior is None or elementwise is not None:
        log_pz = -0.5 * (LOG_2PI + zf.square()) if prior is None else elementwise(zf)
        return (log_pz - gaussian_log_prob(zf, q.mean, q.logvar)).flatten(2).sum(2, dtype=dtype)
    log_qz = gaussian_log_prob(zf, q.mean, q.logvar).flatten(2).sum(2, dtype=dtype)
    log_pz = prior.log_prob(zf.flatten(0, 1)).view(zf.shape[:2]).to(dtype)
    return log_pz - log_qz


def _check_inputs(vae: nn.Module, x: torch.Tensor, likelihood: Likelihood) -> bool:
    """Validate; return whether Bernoulli outputs are logits."""
    if not isinstance(vae, nn.Module) or not hasattr(vae, "encode"):
        raise TypeError(f"vae must be a VAE-like nn.Module with encode/decode, got {type(vae)}")
    config = getattr(vae, "config", None)
    check_image(
        x,
        "x",
        channels=getattr(config, "in_channels", None),
        size=getattr(config, "image_size", None),
    )
    if callable(likelihood):
        return False
    check_choice(likelihood, LIKELIHOODS, "likelihood")
    logits = getattr(config, "output", "sigmoid") == "identity"
    if likelihood == "bernoulli":
        check_range(x, 0.0, 1.0, "x", "a Bernoulli likelihood needs data in [0, 1]")
    return logits


def _batch_size(batch_size: int | None, x: torch.Tensor) -> int:
    if batch_size is None:
        return 16 if x.device.type == "cpu" else 2048
    return check_int(batch_size, "batch_size")


def _log_px(
    likelihood: Likelihood,
    recon: torch.Tensor,
    logvar: torch.Tensor | None,
    x: torch.Tensor,
    sigma: float | None,
    scale: float | None,
    logits: bool,
) -> torch.Tensor:
    if callable(likelihood):
        out = likelihood(recon, x)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape[:1]:
            raise ValueError(
                f"a likelihood callable must return log p(x|z) of shape ({x.shape[0]},), got "
                f"{getattr(out, 'shape', type(out).__name__)}"
            )
        return out.double()
    return log_likelihood(
        recon, x, likelihood, logvar=logvar, sigma=sigma, scale=scale, logits=logits
    )


def _posterior_draws(
    vae: nn.Module,
    x: torch.Tensor,
    k: int,
    batch_size: int,
    generator: torch.Generator | None,
    likelihood: Likelihood,
    sigma: float | None,
    scale: float | None,
    logits: bool,
) -> Iterator[tuple[DiagonalGaussian, Iterator[tuple[torch.Tensor, torch.Tensor]]]]:
    """K posterior draws per image and their ``log p(x|z)``, batched for the decoder.

    Yields ``(q, chunks)`` per block of images, ``q`` their posterior; ``chunks`` yields
    ``(z, log_px)`` for the K samples in chunks of ``kc``: ``z`` (kc, nb, *latent) and
    ``log_px`` (kc, nb) in the accumulation dtype. Each chunk's kc·nb latents (at most about
    ``batch_size``) are decoded in one call; K is split only when ``k > batch_size``.
    """
    per_block = max(1, batch_size // k)  # images per block
    k_chunk = max(1, min(k, batch_size // per_block))

    def chunks(xb: torch.Tensor, q: DiagonalGaussian):
        dtype = acc_dtype(q.mean.device)
        for k0 in range(0, k, k_chunk):
            kc = min(k_chunk, k - k0)
            z = q.sample_n(kc, generator=generator)  # (kc, nb, *latent)
            recon, logvar = _decode(vae, z.flatten(0, 1))
            x_rep = xb.expand(kc, *xb.shape).flatten(0, 1)
            log_px = _log_px(likelihood, recon, logvar, x_rep, sigma, scale, logits)
            yield z, log_px.to(dtype).view(kc, -1)

    for xb in x.split(per_block):
        q = _encode(vae, xb)
        yield q, chunks(xb, q)


def iwae_nll(
    vae: nn.Module,
    x: torch.Tensor,
    k: int = 64,
    *,
    likelihood: Likelihood = "bernoulli",
    sigma: float | None = None,
    scale: float | None = None,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Importance-weighted NLL bound with K samples (Burda et al. 2016), in nats per image.

    ``-log (1/K) sum_k exp(log p(x|z_k) + log p(z_k) - log q(z_k|x))``, ``z_k ~ q(z|x)``,
    with ``log p(z)`` from the model's prior ``vae.prior`` (N(0, I) for a module without
    one; a prior without a density is a ``ValueError``), all K samples of many images decoded in one batched call (no Python loop per
    sample) and the log-sum-exp in float64. It is >= the true NLL in expectation, <= the
    ELBO-based :func:`elbo_nll`, and decreases towards the true NLL as K grows.

    The model runs in eval mode under ``torch.no_grad()``; its train/eval modes are restored.

    Args:
        vae: a :class:`~vaekit.VAE` (or any module with ``encode`` returning a
            :class:`~vaekit.DiagonalGaussian` and ``decode``/``decode_with_logvar``).
        x: images on the model's device.
        k: importance samples per image.
        likelihood: ``"bernoulli"`` (decoder outputs are probabilities, or logits for
            ``output="identity"`` configs), ``"gaussian"``, ``"laplace"``, or a callable
            ``(recon, x) -> (N,) log p(x|z)`` in nats.
        sigma: fixed Gaussian std when the decoder has no variance head.
        scale: fixed Laplace scale b when the decoder has no variance head.
        batch_size: most images decoded per decoder call (images x samples). Default: 16 on
            CPU, where convolutions are compute-bound and small batches stay in cache (the
            fmnist32 decoder runs 1.4-2.8x slower per image at 64-256), and 2048 on
            accelerators. Lower it if memory runs out; only the random draws depend on it.
        generator: for reproducible samples (on the model's device).
        reduction: ``"mean"`` over images (default) or ``"none"`` for ``(N,)``.

    Shape:
        x: (N, C, H, W); output: scalar or (N,), float64.

    Example:
        >>> import torch, vaekit as vk
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=8, widths=(4,),
        ...                           latent_dim=2, attention_at=(), block="conv"))
        >>> x = torch.rand(3, 1, 8, 8)
        >>> vk.metrics.iwae_nll(vae, x, k=16, reduction="none").shape
        torch.Size([3])
    """
    logits = _check_inputs(vae, x, likelihood)
    k = check_int(k, "k")
    batch_size = _batch_size(batch_size, x)
    check_choice(reduction, ("mean", "none"), "reduction")
    prior = _prior_of(vae, "likelihoods (iwae_nll)")
    n = x.shape[0]
    out = []
    with evaluating(vae):
        draws = _posterior_draws(vae, x, k, batch_size, generator, likelihood, sigma, scale, logits)
        for q, chunks in draws:
            log_w = []
            for z, log_px in chunks:
                log_w.append(log_px + _log_prior_ratio(prior, z, q, log_px.dtype))
            log_w = torch.cat(log_w)  # (k, nb)
            out.append(math.log(k) - torch.logsumexp(log_w, dim=0))
    nll = torch.cat(out)
    if nll.shape[0] != n:  # pragma: no cover - guards the block arithmetic
        raise RuntimeError("internal error: lost images while batching")
    return nll.mean() if reduction == "mean" else nll


def elbo_nll(
    vae: nn.Module,
    x: torch.Tensor,
    k: int = 1,
    *,
    likelihood: Likelihood = "bernoulli",
    sigma: float | None = None,
    scale: float | None = None,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Negative ELBO in nats per image: ``E_q[-log p(x|z)] + KL(q(z|x) || p(z))``.

    The reconstruction expectation is averaged over ``k`` posterior samples. The KL to the
    model's prior ``vae.prior`` is in closed form where the prior has one (N(0, I), also for
    a module without a prior), else the Monte Carlo estimate ``log q(z|x) - log p(z)`` on the
    same ``k`` samples (so ``elbo_nll >= iwae_nll`` for the same draws, by Jensen). An upper
    bound on the NLL, never below :func:`iwae_nll` in expectation. Arguments as in
    :func:`iwae_nll`.

    Shape:
        x: (N, C, H, W); output: scalar or (N,), float64.

    Example:
        >>> import torch, vaekit as vk
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=8, widths=(4,),
        ...                           latent_dim=2, attention_at=(), block="conv"))
        >>> x = torch.rand(3, 1, 8, 8)
        >>> bool(vk.metrics.elbo_nll(vae, x) > 0)
        True
    """
    logits = _check_inputs(vae, x, likelihood)
    k = check_int(k, "k")
    batch_size = _batch_size(batch_size, x)
    check_choice(reduction, ("mean", "none"), "reduction")
    prior = _prior_of(vae, "likelihoods (elbo_nll)")
    closed_form = prior is None or getattr(prior, "has_closed_form_kl", False)
    out = []
    with evaluating(vae):
        draws = _posterior_draws(vae, x, k, batch_size, generator, likelihood, sigma, scale, logits)
        for q, chunks in draws:
            dtype = acc_dtype(q.mean.device)
            rec = torch.zeros(q.mean.shape[0], dtype=dtype, device=q.mean.device)
            kl = torch.zeros_like(rec)
            for z, log_px in chunks:
                rec = rec - log_px.sum(0)
                if not closed_form:  # log q(z|x) - log p(z), summed over the k draws
                    kl = kl - _log_prior_ratio(prior, z, q, dtype).sum(0)
            if closed_form:
                elementwise = q.kl_elementwise() if prior is None else prior.kl_elementwise(q)
                kl = elementwise.flatten(1).sum(1, dtype=dtype)
            else:
                kl = kl / k
            out.append(rec / k + kl)
    nll = torch.cat(out)
    return nll.mean() if reduction == "mean" else nll
