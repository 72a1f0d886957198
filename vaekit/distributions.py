"""Diagonal Gaussian posterior q(z|x) = N(mean, diag(exp(logvar))) for flat and spatial latents.

All densities and divergences are computed in a float32 island (inputs in fp16/bf16 are
upcast), and every reduction runs over *all non-batch dimensions*, so a flat latent (B, D) and
a spatial latent (B, C, h, w) are handled by the same code.

Closed forms (Kingma & Welling 2014, appendix B):

    KL(N(m1, v1) || N(m2, v2)) = 0.5 * (log v2 - log v1 + (v1 + (m1 - m2)^2) / v2 - 1)
    log N(z; m, v)             = -0.5 * (log 2*pi + log v + (z - m)^2 / v)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._maths import LOG_2PI as _LOG_2PI
from ._maths import gaussian_log_prob
from ._maths import upcast_half as _f32
from ._validation import check_float_tensor, check_int, check_reduction, check_same_shape

__all__ = [
    "DEFAULT_LOGVAR_RANGE",
    "DiagonalGaussian",
    "as_diagonal_gaussian",
    "gaussian_log_prob",
    "kl_normal",
    "kl_normal_elementwise",
]

DEFAULT_LOGVAR_RANGE: tuple[float, float] = (-10.0, 10.0)


def _standard_normal(
    shape: tuple[int, ...] | torch.Size,
    device: torch.device,
    dtype: torch.dtype,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """N(0, 1) noise of ``shape``, from ``generator`` if one is given.

    Without a generator this calls ``torch.randn`` without the ``generator`` keyword: its
    ``generator=`` overload only takes concrete sizes, so passing ``generator=None`` breaks
    ``torch.compile`` as soon as the batch size becomes symbolic (a second batch size, or
    ``dynamic=True``). Both paths draw the same numbers from the same generator state.
    """
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def kl_normal_elementwise(
    mean: torch.Tensor,
    logvar: torch.Tensor,
    other_mean: torch.Tensor | None = None,
    other_logvar: torch.Tensor | None = None,
) -> torch.Tensor:
    """Elementwise KL(N(mean, exp(logvar)) || N(other_mean, exp(other_logvar))) in nats.

    With ``other_*`` left as ``None`` the second distribution is N(0, 1). Computed in float32
    (or float64 if the inputs are float64).

    Shape:
        mean, logvar: any shape (the same); output: that shape.
    """
    mean, logvar = _f32(mean), _f32(logvar)
    if other_mean is None and other_logvar is None:
        # 0.5 * (mu^2 + sigma^2 - 1 - log sigma^2); expm1 keeps precision near logvar = 0
        return 0.5 * (mean.square() + torch.expm1(logvar) - logvar)
    if other_mean is None or other_logvar is None:
        raise ValueError("give both other_mean and other_logvar, or neither (standard normal)")
    other_mean, other_logvar = _f32(other_mean), _f32(other_logvar)
    diff = logvar - other_logvar
    return 0.5 * (
        (mean - other_mean).square() * torch.exp(-other_logvar) + torch.expm1(diff) - diff
    )


def _reduce_per_sample(x: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return x
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    # batchmean: sum over every non-batch dim, mean over the batch
    return x.reshape(x.shape[0], -1).sum(1).mean() if x.ndim > 0 else x


def kl_normal(
    mean: torch.Tensor,
    logvar: torch.Tensor,
    other_mean: torch.Tensor | None = None,
    other_logvar: torch.Tensor | None = None,
    *,
    reduction: str = "batchmean",
) -> torch.Tensor:
    """KL divergence of a diagonal Gaussian to N(0, I) (or to another diagonal Gaussian).

    Args:
        mean: posterior mean, (B, D) for flat or (B, C, h, w) for spatial latents.
        logvar: posterior log-variance, same shape as ``mean``.
        other_mean, other_logvar: optional second Gaussian (same shape); default N(0, I).
        reduction: ``"batchmean"`` (default: nats per sample, summed over latent dims, averaged
            over the batch), ``"sum"``, ``"mean"`` (per latent element) or ``"none"``.

    Returns:
        float32 tensor: scalar, or the elementwise KL for ``reduction="none"``.

    Example:
        >>> import torch, vaekit as vk
        >>> mean, logvar = torch.ones(2, 4), torch.zeros(2, 4)
        >>> vk.functional.kl_normal(mean, logvar)   # 0.5 nats per dim, 4 dims
        tensor(2.)
    """
    check_float_tensor(mean, "mean")
    check_float_tensor(logvar, "logvar")
    check_same_shape(mean, logvar, ("mean", "logvar"))
    if mean.ndim < 1:
        raise ValueError(f"mean must have a batch dimension, got shape {tuple(mean.shape)}")
    if other_mean is not None:
        check_same_shape(mean, other_mean, ("mean", "other_mean"))
    if other_logvar is not None:
        check_same_shape(logvar, other_logvar, ("logvar", "other_logvar"))
    check_reduction(reduction)
    kl = kl_normal_elementwise(mean, logvar, other_mean, other_logvar)
    return _reduce_per_sample(kl, reduction)


@dataclass
class DiagonalGaussian:
    """A batch of diagonal Gaussians N(mean, diag(exp(logvar))).

    ``logvar`` is clamped to ``logvar_range`` on construction (default [-10, 10]): beyond it
    ``exp`` under- or overflows in fp16 and one bad step can turn into NaN.

    Args:
        mean: (B, D) flat or (B, C, h, w) spatial latent means.
        logvar: log-variances of the same shape.
        logvar_range: clamp bounds for ``logvar``; ``None`` disables the clamp.

    Example:
        >>> import torch, vaekit as vk
        >>> q = vk.DiagonalGaussian(torch.zeros(3, 8), torch.zeros(3, 8))
        >>> q.sample(generator=torch.Generator().manual_seed(0)).shape
        torch.Size([3, 8])
        >>> q.kl()
        tensor([0., 0., 0.])
    """

    mean: torch.Tensor
    logvar: torch.Tensor
    logvar_range: tuple[float, float] | None = DEFAULT_LOGVAR_RANGE

    def __post_init__(self) -> None:
        check_float_tensor(self.mean, "mean")
        check_float_tensor(self.logvar, "logvar")
        check_same_shape(self.mean, self.logvar, ("mean", "logvar"))
        if self.mean.ndim < 2:
            raise ValueError(
                "mean must be (B, D) or (B, C, h, w) with a batch dimension first, got shape "
                f"{tuple(self.mean.shape)}"
            )
        if self.logvar_range is not None:
            low, high = self.logvar_range
            if not low < high:
                raise ValueError(
                    f"logvar_range must be (low, high) with low < high, got {self.logvar_range}"
                )
            self.logvar = self.logvar.clamp(low, high)

    # -- basic properties -------------------------------------------------------------------
    @property
    def std(self) -> torch.Tensor:
        """Standard deviation exp(logvar / 2)."""
        return torch.exp(0.5 * self.logvar)

    @property
    def var(self) -> torch.Tensor:
        """Variance exp(logvar)."""
        return torch.exp(self.logvar)

    @property
    def shape(self) -> torch.Size:
        """Shape of the mean, batch first."""
        return self.mean.shape

    @property
    def event_shape(self) -> torch.Size:
        """Latent shape of one sample: (D,) or (C, h, w)."""
        return self.mean.shape[1:]

    @property
    def num_latent_dims(self) -> int:
        """Number of latent dimensions per sample (D or C*h*w)."""
        return self.mean[0].numel()

    # -- sampling ---------------------------------------------------------------------------
    def sample(
        self, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """Reparameterised sample mean + temperature * std * eps (differentiable)."""
        eps = _standard_normal(self.mean.shape, self.mean.device, self.mean.dtype, generator)
        return self.mean + (temperature * self.std) * eps

    rsample = sample

    def sample_n(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` reparameterised samples stacked in a new leading dim: (n, B, *event_shape)."""
        n = check_int(n, "n")
        m = self.mean
        eps = _standard_normal((n, *m.shape), m.device, m.dtype, generator)
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        """The most likely latent: the mean."""
        return self.mean

    # -- densities --------------------------------------------------------------------------
    def _sum_event(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(x.ndim - len(self.event_shape)).sum(-1)

    def kl_elementwise(self, other: DiagonalGaussian | None = None) -> torch.Tensor:
        """KL per latent element (same shape as ``mean``), float32, nats."""
        if other is None:
            return kl_normal_elementwise(self.mean, self.logvar)
        if not isinstance(other, DiagonalGaussian):
            raise TypeError(f"other must be a DiagonalGaussian or None, got {type(other).__name__}")
        check_same_shape(self.mean, other.mean, ("self.mean", "other.mean"))
        return kl_normal_elementwise(self.mean, self.logvar, other.mean, other.logvar)

    def kl(self, other: DiagonalGaussian | None = None) -> torch.Tensor:
        """KL(self || other) per sample, summed over latent dims: shape (B,), nats.

        ``other=None`` means the standard normal prior N(0, I).
        """
        return self._sum_event(self.kl_elementwise(other))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z) summed over latent dims. ``z`` is (B, *event) or (S, B, *event) -> (B,)/(S, B)."""
        check_float_tensor(z, "z")
        if z.shape[-self.mean.ndim :] != self.mean.shape:
            raise ValueError(
                f"z must have shape {tuple(self.mean.shape)} (optionally with leading sample "
                f"dims), got {tuple(z.shape)}"
            )
        return self._sum_event(gaussian_log_prob(z, self.mean, self.logvar))

    def entropy(self) -> torch.Tensor:
        """Differential entropy per sample, (B,), nats."""
        return self._sum_event(0.5 * (_LOG_2PI + 1.0 + _f32(self.logvar)))

    def detach(self) -> DiagonalGaussian:
        """A copy cut from the autograd graph."""
        return DiagonalGaussian(self.mean.detach(), self.logvar.detach(), None)

    def to(self, *args, **kwargs) -> DiagonalGaussian:
        """Move/cast mean and logvar like ``Tensor.to``."""
        return DiagonalGaussian(
            self.mean.to(*args, **kwargs), self.logvar.to(*args, **kwargs), None
        )


def as_diagonal_gaussian(q: object) -> DiagonalGaussian:
    """An encoder's output as a :class:`DiagonalGaussian`: one as is, ``(mean, logvar)`` wrapped.

    Every caller of an encoder (``VAE.encode``, ``VampPrior``, ``encode_dataset``) goes through
    this one check, so a user encoder gets the same ``TypeError`` wherever it is used.
    """
    if isinstance(q, tuple) and len(q) == 2:
        q = DiagonalGaussian(*q)
    if not isinstance(q, DiagonalGaussian):
        raise TypeError(
            f"the encoder must return a DiagonalGaussian or (mean, logvar), got {type(q).__name__}"
        )
    return q
