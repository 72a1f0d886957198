"""The :class:`Prior` interface: p(z) as a small ``nn.Module`` the VAE owns.

A prior answers four questions, whatever it is inside:

- ``latent_shape``: the shape of one latent, ``(D,)`` or ``(C, h, w)``; a prior built without
  one learns it from :meth:`Prior.setup`, which the VAE calls with its own shape (and, for
  priors that need them, its encoder and the image shape).
- ``log_prob(z) -> (B,)``: log p(z) in nats, summed over latent dims (float32, or float64
  for float64 input).
- ``sample(n, *, temperature=1.0, generator=None) -> (n, *latent_shape)``: draws on the
  prior's device and in its dtype. ``temperature`` scales the *noise* the prior turns into a
  sample (each prior documents what that is); 1 is the prior itself, 0 its noise-free point.
- ``kl(posterior) -> (B,)``: the closed-form KL from a :class:`~vaekit.DiagonalGaussian`
  posterior, for priors whose class flag ``has_closed_form_kl`` is true; the others use the
  Monte Carlo estimate :func:`~vaekit.priors.mc_kl` on a sampled z.

Two ways to get a prior's parameters, told apart by class flags: ``learned_with_vae`` priors
(:class:`~vaekit.priors.MixtureOfGaussians`, :class:`~vaekit.priors.VampPrior`) are trained
by the VAE's optimiser through the KL term; ``needs_fit`` priors (:class:`ExPostPrior`:
Gaussian mixture, flow, diffusion) are fitted afterwards on a trained VAE's latents
(Ghosh et al. 2020, Dai & Wipf 2019) and are frozen (``requires_grad=False``) once fitted.

Everything a prior needs to be rebuilt is in :meth:`Prior.config` (JSON-able keyword
arguments of its constructor) and its ``state_dict`` (weights); see
:func:`vaekit.priors.to_config` / :func:`vaekit.priors.from_config`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from .._validation import check_finite, check_float_tensor, check_int, check_number
from ..distributions import DiagonalGaussian

__all__ = ["OVERFIT_NATS_PER_DIM", "ExPostPrior", "NotFittedError", "Prior", "PriorCapabilityError"]

#: held-out log-likelihood this far below the fit latents' (nats per latent dimension) means
#: the prior memorised its latents: a fit warns (a well-fitted prior's gap is a few hundredths)
OVERFIT_NATS_PER_DIM = 0.25


class PriorCapabilityError(NotImplementedError, ValueError):
    """The prior cannot do this (no tractable density, no closed-form KL).

    A ``NotImplementedError`` that is also a ``ValueError``, so ``except ValueError`` around
    a vaekit call catches it like every other bad-input error.
    """


class NotFittedError(ValueError):
    """An ex-post prior was used before :meth:`ExPostPrior.fit` (or loading its weights)."""


def check_latent_shape(shape: object, name: str = "latent_shape") -> tuple[int, ...]:
    """A latent shape as a tuple of positive ints: ``(D,)`` or ``(C, h, w)``."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (Sequence, torch.Size)) or isinstance(shape, str):
        raise TypeError(f"{name} must be a tuple of ints like (32,) or (4, 8, 8), got {shape!r}")
    out = []
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"{name} must contain positive ints, got {tuple(shape)!r}")
        out.append(int(s))
    if len(out) not in (1, 3):
        raise ValueError(
            f"{name} must be (D,) for flat latents or (C, h, w) for spatial ones, got {tuple(out)}"
        )
    return tuple(out)


def check_temperature(temperature: object) -> float:
    """Require a finite number >= 0 (the check and message of ``VAE.sample_prior``)."""
    return check_number(temperature, "temperature", at_least=0)


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (fp16/bf16 are upcast: a float32 island)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


class Prior(nn.Module):
    """Base class of every prior p(z); see the module docstring for the protocol.

    Subclasses implement ``_log_prob(z)`` (``z`` already checked to be ``(B,
    *latent_shape)``) and ``_sample(n, temperature, generator)``; they may implement
    ``_build(latent_shape)`` to allocate shape-dependent parameters once the shape is
    known, ``kl_elementwise`` (with ``has_closed_form_kl = True``) and ``config``.

    Class flags:
        has_closed_form_kl: :meth:`kl` and :meth:`kl_elementwise` are exact; otherwise use
            :func:`~vaekit.priors.mc_kl`.
        has_log_prob: :meth:`log_prob` is available (false for diffusion).
        learned_with_vae: its parameters are trained with the VAE through the KL term.
        needs_fit: it must be fitted on latents (:class:`ExPostPrior`) before use.
    """

    has_closed_form_kl: ClassVar[bool] = False
    has_log_prob: ClassVar[bool] = True
    learned_with_vae: ClassVar[bool] = False
    needs_fit: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        # follows .to(device/dtype) so samples land where the owning model lives
        self.register_buffer("_anchor", torch.empty(0), persistent=False)
        self._latent_shape: tuple[int, ...] | None = None

    # -- shape ------------------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, ...] | None:
        """Shape of one latent, or ``None`` until :meth:`setup` (or a fit) binds it."""
        return self._latent_shape

    @property
    def num_latent_dims(self) -> int:
        """Number of latent dimensions D (``prod(latent_shape)``)."""
        return math.prod(self._require_shape())

    @property
    def device(self) -> torch.device:
        """Where samples are drawn (follows ``.to()``)."""
        return self._anchor.device

    @property
    def dtype(self) -> torch.dtype:
        """Floating-point dtype of samples (follows ``.to()``, ``.double()``, ...)."""
        return self._anchor.dtype

    def setup(
        self,
        latent_shape: Sequence[int],
        *,
        encoder: Any = None,
        data_shape: Sequence[int] | None = None,
    ) -> Prior:
        """Bind the prior to a model: called by the VAE at construction (and on assignment).

        Args:
            latent_shape: the model's latent shape, ``(D,)`` or ``(C, h, w)``. A prior
                already bound to another shape raises a ``ValueError`` naming both.
            encoder: a callable ``x -> DiagonalGaussian`` (e.g. ``vae.encode``); only priors
                defined through the encoder (:class:`~vaekit.priors.VampPrior`) keep it.
            data_shape: the shape of one image ``(C, H, W)``; used by priors that live in
                image space (VampPrior's pseudo-inputs).

        Returns:
            ``self``, so ``prior = Prior().setup(shape)`` works.

        Example:
            >>> import vaekit as vk
            >>> vk.priors.StandardNormal().setup((4,)).latent_shape
            (4,)
        """
        shape = check_latent_shape(latent_shape)
        if self._latent_shape is None:
            self._latent_shape = shape
            self._build(shape)
        elif shape != self._latent_shape:
            raise ValueError(
                f"{type(self).__name__} has latent_shape {self._latent_shape} but the model's "
                f"latent shape is {shape}; build the prior for {shape} (or without a shape)"
            )
        return self

    def _build(self, latent_shape: tuple[int, ...]) -> None:
        """Allocate parameters/buffers that depend on the latent shape (default: none)."""

    def _require_shape(self) -> tuple[int, ...]:
        if self._latent_shape is None:
            raise ValueError(
                f"{type(self).__name__} has no latent_shape yet: build it with "
                "latent_shape=(...), call prior.setup(latent_shape) or give it to a VAE"
                + (", or fit it on latents" if self.needs_fit else "")
            )
        return self._latent_shape

    @property
    def is_fitted(self) -> bool:
        """True when the prior can be used (always, except for unfitted ex-post priors)."""
        return True

    def _require_ready(self) -> tuple[int, ...]:
        shape = self._require_shape()
        if not self.is_fitted:
            raise NotFittedError(
                f"{type(self).__name__} is not fitted: call .fit(latents) with latents of shape "
                f"(N, {', '.join(map(str, shape))}) first (or load a fitted one)"
            )
        return shape

    def require_density(self, purpose: str = "training") -> None:
        """Raise a ``ValueError`` naming the usable priors unless :meth:`log_prob` works now.

        The check the KL term of a loss and the likelihood metrics make before using the
        prior: a prior without a density (diffusion) raises ``PriorCapabilityError``, an
        ex-post prior that is not fitted ``NotFittedError`` (both ``ValueError``).

        Args:
            purpose: what the density is needed for, in the message (e.g. ``"training"``).

        Example:
            >>> import vaekit as vk
            >>> vk.priors.GaussianMixture(2, latent_shape=(3,)).require_density("training")
            Traceback (most recent call last):
            ...
            vaekit.priors.base.NotFittedError: GaussianMixture is not fitted, so it cannot be ...
        """
        if self.has_log_prob and self.is_fitted:
            return  # the usual case: nothing to build (and nothing for torch.compile to trace)
        from .registry import density_names

        usable = (
            f"Priors with a density, usable for {purpose}: {density_names()} (the ex-post "
            "ones once fitted)"
        )
        if not self.has_log_prob:
            raise PriorCapabilityError(
                f"{type(self).__name__} has no tractable density (log_prob), so it cannot be "
                f"used for {purpose}; use it to sample only. {usable}"
            )
        if not self.needs_fit:
            self._require_ready()  # its own message (a VampPrior without its encoder)
        raise NotFittedError(
            f"{type(self).__name__} is not fitted, so it cannot be used for {purpose}: "
            "fit it first on a trained VAE's latents "
            f"(prior.fit(vk.priors.encode_dataset(vae, data))). {usable}"
        )

    def check_latents(self, z: object, name: str = "z") -> torch.Tensor:
        """Require a float tensor ``(B, *latent_shape)``; return it.

        Only static checks (dtype, shape), so it is free inside a training step and under
        ``torch.compile``; :meth:`ExPostPrior.fit` also requires finite values.

        Example:
            >>> import torch, vaekit as vk
            >>> vk.priors.StandardNormal((3,)).check_latents(torch.zeros(2, 4))
            Traceback (most recent call last):
            ...
            ValueError: z must have shape (B, 3) = (batch, *latent_shape) for ..., got (2, 4)
        """
        shape = self._require_shape()
        z = check_float_tensor(z, name)
        if z.ndim != len(shape) + 1 or tuple(z.shape[1:]) != shape:
            raise ValueError(
                f"{name} must have shape (B, {', '.join(map(str, shape))}) = (batch, "
                f"*latent_shape) for {type(self).__name__}, got {tuple(z.shape)}"
            )
        return z

    # -- the interface ----------------------------------------------------------------------
    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) in nats, summed over latent dims.

        Shape:
            z: ``(B, *latent_shape)``; output: ``(B,)`` (float32; float64 for float64 input).

        Example:
            >>> import torch, vaekit as vk
            >>> prior = vk.priors.MixtureOfGaussians(components=4, latent_shape=(2, 3, 3))
            >>> prior.log_prob(torch.zeros(5, 2, 3, 3)).shape
            torch.Size([5])
        """
        if not self.has_log_prob:
            from .registry import density_names

            raise PriorCapabilityError(
                f"{type(self).__name__} has no tractable density (log_prob): use it to sample "
                f"only. Priors with a density, usable for training and likelihoods: "
                f"{density_names()}"
            )
        z = self.check_latents(z)
        self._require_ready()
        return self._log_prob(z)

    def _log_prob(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(
        self, n: int, *, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw ``n`` latents ``(n, *latent_shape)`` on the prior's device, in its dtype.

        Args:
            n: number of samples (positive int).
            temperature: scale of the prior's noise (>= 0); see the class docstring.
            generator: a ``torch.Generator`` on the prior's device for reproducible draws.

        Example:
            >>> import torch, vaekit as vk
            >>> prior = vk.priors.StandardNormal((2, 4, 4))
            >>> prior.sample(3, temperature=0.5, generator=torch.Generator().manual_seed(0)).shape
            torch.Size([3, 2, 4, 4])
        """
        self._check_sample_args(n, temperature, generator)
        return self._sample(n, temperature, generator)

    def _check_sample_args(
        self, n: object, temperature: object, generator: torch.Generator | None
    ) -> None:
        check_int(n, "n")
        check_temperature(temperature)
        self._require_ready()
        device = self.device
        if generator is not None and generator.device != device:
            raise ValueError(
                f"generator is on {generator.device} but the prior is on {device}; create it "
                f"with torch.Generator(device={str(device)!r})"
            )

    def _sample(
        self, n: int, temperature: float, generator: torch.Generator | None
    ) -> torch.Tensor:
        raise NotImplementedError

    def kl_elementwise(self, posterior: DiagonalGaussian) -> torch.Tensor:
        """Closed-form KL(q || p) per latent element, ``(B, *latent_shape)`` nats.

        Only for priors that factorise over latent dims with a closed form
        (``has_closed_form_kl``); free bits per dimension need it.

        Example:
            >>> import torch, vaekit as vk
            >>> q = vk.DiagonalGaussian(torch.ones(1, 2), torch.zeros(1, 2))
            >>> vk.priors.StandardNormal((2,)).kl_elementwise(q)
            tensor([[0.5000, 0.5000]])
        """
        raise PriorCapabilityError(
            f"{type(self).__name__} has no closed-form KL (has_closed_form_kl is False): use "
            "vk.priors.mc_kl(posterior, z, prior) on a sampled z"
        )

    def kl(self, posterior: DiagonalGaussian) -> torch.Tensor:
        """Closed-form KL(q(z|x) || p(z)) per sample, ``(B,)`` nats.

        ``PriorCapabilityError`` (a ``ValueError``) when ``has_closed_form_kl`` is false.

        Example:
            >>> import torch, vaekit as vk
            >>> q = vk.DiagonalGaussian(torch.zeros(2, 3), torch.zeros(2, 3))
            >>> vk.priors.StandardNormal((3,)).kl(q)
            tensor([0., 0.])
            >>> vk.priors.MixtureOfGaussians(2, latent_shape=(3,)).kl(q)
            Traceback (most recent call last):
            ...
            vaekit.priors.base.PriorCapabilityError: MixtureOfGaussians has no closed-form KL ...
        """
        self.check_posterior(posterior)
        return self.kl_elementwise(posterior).flatten(1).sum(1)

    def check_posterior(self, posterior: object) -> DiagonalGaussian:
        """Require a :class:`~vaekit.DiagonalGaussian` of shape ``(B, *latent_shape)``."""
        if not isinstance(posterior, DiagonalGaussian):
            raise TypeError(
                f"posterior must be a vaekit.DiagonalGaussian, got {type(posterior).__name__}"
            )
        self.check_latents(posterior.mean, "posterior.mean")
        return posterior

    # -- persistence ------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-able constructor keyword arguments that rebuild this prior (weights apart).

        Example:
            >>> import vaekit as vk
            >>> vk.priors.MixtureOfGaussians(components=4, latent_shape=(2,)).config()
            {'latent_shape': [2], 'components': 4}
        """
        return {"latent_shape": None if self._latent_shape is None else list(self._latent_shape)}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())


def heldout_split(
    x: torch.Tensor, n_heldout: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rest, heldout)``: ``n_heldout`` rows of ``x`` by a seeded permutation of
    ``generator`` (any device), and the others."""
    device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(x.shape[0], generator=generator, device=device).to(x.device)
    return x[perm[n_heldout:]], x[perm[:n_heldout]]


@torch.no_grad()
def mean_log_prob_per_dim(prior: Prior, z: torch.Tensor) -> float:
    """The mean of ``prior.log_prob`` over latents ``z`` (any leading shape that flattens to
    the prior's), per latent dimension, in nats (float64 sums, in blocks of 4096)."""
    shape = prior._require_shape()
    d = math.prod(shape)
    total = sum(float(prior.log_prob(b.reshape(-1, *shape)).double().sum()) for b in z.split(4096))
    return total / (z.shape[0] * d)


def _freeze_if_fitted(module: ExPostPrior, incompatible_keys: object) -> None:
    """Loaded fitted weights are frozen, as after ``fit`` (a module-level hook: picklable)."""
    if module.is_fitted:
        module.requires_grad_(False)


class ExPostPrior(Prior):
    """A prior fitted on a trained VAE's latents with :meth:`fit` (Ghosh et al. 2020).

    It is unusable (``NotFittedError``, a ``ValueError``) until fitted or loaded with fitted
    weights; ``is_fitted`` travels in the state dict. After ``fit`` its parameters are frozen
    (``requires_grad=False``), so training the VAE further does not move them.
    """

    needs_fit: ClassVar[bool] = True

    #: the attributes :meth:`fit` sets besides the weights (JSON-able), saved with the model
    fit_attributes: ClassVar[tuple[str, ...]] = ("history", "fit_report")

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("fitted", torch.tensor(False))
        self.register_load_state_dict_post_hook(_freeze_if_fitted)
        self.history: list[float] = []
        self.fit_report: dict[str, Any] = {}

    # -- the fit's record -------------------------------------------------------------------
    def fit_state(self) -> dict[str, Any]:
        """What the last :meth:`fit` recorded besides the weights (``history``, ``fit_report``
        and the class's other :attr:`fit_attributes`), JSON-able: ``vae.save`` stores it next
        to the prior's config, so a loaded prior reports its fit like the fitted one.

        Example:
            >>> import torch, vaekit as vk
            >>> gmm = vk.priors.GaussianMixture(2).fit(torch.randn(100, 3), progress=False)
            >>> again = vk.priors.GaussianMixture(2)
            >>> again.load_fit_state(gmm.fit_state())
            >>> again.n_iter == gmm.n_iter and again.history == gmm.history
            True
        """
        return {name: getattr(self, name) for name in self.fit_attributes}

    def load_fit_state(self, state: Any) -> None:
        """Restore :meth:`fit_state`'s dict (unknown keys are an error, missing ones kept)."""
        if not isinstance(state, dict):
            raise TypeError(f"a fit state must be a dict, got {type(state).__name__}")
        unknown = sorted(set(state) - set(self.fit_attributes))
        if unknown:
            raise ValueError(
                f"{type(self).__name__} records {list(self.fit_attributes)} from a fit, got "
                f"unknown keys {unknown}"
            )
        for name, value in state.items():
            setattr(self, name, value)

    def _split_for_fit(
        self,
        x: torch.Tensor,
        val_fraction: float,
        generator: torch.Generator | None,
        *,
        minimum: int = 2,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` split into fit and held-out rows (a seeded permutation of ``generator``).

        ``val_fraction = 0`` (or too few rows to leave ``minimum`` for the fit and 2 held
        out) keeps everything for the fit and returns ``None`` for the held-out part.
        """
        check_number(val_fraction, "val_fraction", at_least=0)
        if not val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        n_val = round(val_fraction * x.shape[0])
        if n_val < 2 or x.shape[0] - n_val < minimum:
            return x, None
        return heldout_split(x, n_val, generator)

    def _report_fit(
        self, train: torch.Tensor, val: torch.Tensor | None, seconds: float
    ) -> dict[str, Any]:
        """Set and return ``fit_report``: the latents used, the fit's seconds and, for a
        prior with a density, the mean log-likelihood per latent dimension (nats) on the fit
        latents and on the held-out ones. Warns (``RuntimeWarning``, naming the fixes) when the
        held-out figure (of 10 latents or more) is more than :data:`OVERFIT_NATS_PER_DIM` below
        the fit one."""
        d = math.prod(train.shape[1:])
        report: dict[str, Any] = {
            "n_fit": int(train.shape[0]),
            "n_heldout": 0 if val is None else int(val.shape[0]),
            "dims": int(d),
            "seconds": round(float(seconds), 3),
        }
        if getattr(self, "has_log_prob", False):
            report["fit_log_prob"] = mean_log_prob_per_dim(self, train)
            if val is not None:
                report["heldout_log_prob"] = mean_log_prob_per_dim(self, val)
                gap = report["fit_log_prob"] - report["heldout_log_prob"]
                # a handful of held-out latents says too little to warn on
                if len(val) >= 10 and not gap <= OVERFIT_NATS_PER_DIM:  # NaN warns too
                    warnings.warn(
                        f"{type(self).__name__} overfits its {report['n_fit']} latents: "
                        f"log-likelihood {report['fit_log_prob']:.3f} nats/dim on them, "
                        f"{report['heldout_log_prob']:.3f} on {report['n_heldout']} held-out "
                        f"ones; {self._overfit_fix()}",
                        RuntimeWarning,
                        stacklevel=3,
                    )
        self.fit_report = report
        return report

    def _overfit_fix(self) -> str:
        """The advice of the overfitting warning (classes name their own knobs)."""
        return "fit on more latents, or let vk.priors.select choose among simpler priors"

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted)

    def fit(self, latents: torch.Tensor, **kwargs: Any) -> ExPostPrior:
        """Fit on latents ``(N, *latent_shape)``; returns ``self``.

        Example:
            >>> import torch, vaekit as vk
            >>> gmm = vk.priors.GaussianMixture(components=2)
            >>> gmm.is_fitted, gmm.fit(torch.randn(50, 3), progress=False).is_fitted
            (False, True)
        """
        raise NotImplementedError

    def _check_fit_latents(self, latents: object, minimum: int = 2) -> torch.Tensor:
        """Validate fit latents, bind the latent shape, move them to the prior's device."""
        latents = check_float_tensor(latents, "latents")
        if latents.ndim not in (2, 4):
            raise ValueError(
                "latents must be (N, D) flat or (N, C, h, w) spatial, as returned by "
                f"vk.priors.encode_dataset, got shape {tuple(latents.shape)}"
            )
        if self._latent_shape is not None:
            self.check_latents(latents, "latents")
        if latents.shape[0] < minimum:
            raise ValueError(
                f"{type(self).__name__}.fit needs at least {minimum} latents, got "
                f"{latents.shape[0]}"
            )
        check_finite(latents, "latents")
        self.setup(tuple(latents.shape[1:]))
        return latents.detach().to(self.device)

    def _set_fitted(self) -> None:
        self.fitted.fill_(True)
        self.requires_grad_(False)
