"""The VampPrior (Tomczak & Welling 2018, "VAE with a VampPrior").

p(z) = 1/K sum_k q(z | u_k): the mixture of the encoder's own posteriors at K learned
pseudo-inputs u_k (images, trained with the VAE by back-propagating the KL into them). The
prior follows the aggregate posterior as the encoder changes, which is the optimal prior
for a given encoder when K equals the dataset size.

The prior does not own the encoder: the VAE hands it over with
``prior.setup(latent_shape, encoder=vae.encode, data_shape=(C, H, W))``, and it is kept as a
plain reference (not a submodule), so its weights are neither duplicated in the state dict
nor moved twice by ``.to()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .._validation import check_float_tensor, check_int
from ..distributions import DiagonalGaussian, as_diagonal_gaussian
from ._mixture import diagonal_mixture_log_prob, diagonal_mixture_sample
from .base import Prior, compute_dtype
from .registry import register

__all__ = ["VampPrior"]


def _check_data_shape(shape: object) -> tuple[int, ...]:
    if not isinstance(shape, (Sequence, torch.Size)) or isinstance(shape, str):
        raise TypeError(f"data_shape must be a tuple (C, H, W), got {shape!r}")
    if len(shape) != 3 or any(
        isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape
    ):
        raise ValueError(f"data_shape must be (C, H, W) with positive ints, got {tuple(shape)!r}")
    return tuple(int(s) for s in shape)


@register("vamp", aliases=("vampprior",))
class VampPrior(Prior):
    """Mixture of the encoder's posteriors at K learned pseudo-inputs (equal weights).

    Pseudo-inputs start as N(``init_mean``, ``init_std``) noise clipped to ``input_range``
    (or as K data images with :meth:`init_pseudo_inputs`); the encoder sees them clamped to
    ``input_range`` (the hard-tanh of the paper), so they stay valid images.

    Temperature: scales each component's spread, ``z = mu(u_k) + temperature * sigma(u_k) *
    eps`` with ``k`` uniform (temperature 0 gives the pseudo-inputs' posterior means).

    Every call of :meth:`log_prob`/:meth:`sample` runs the encoder on the K pseudo-inputs
    (in the encoder's current train/eval mode).

    Args:
        pseudo_inputs: number of pseudo-inputs K.
        latent_shape: ``(D,)`` or ``(C, h, w)``; ``None`` to let :meth:`setup` bind it.
        data_shape: shape of one image ``(C, H, W)``; ``None`` to let :meth:`setup` bind it.
        input_range: ``(low, high)`` the pseudo-inputs are clamped to, ``None`` for no clamp.
        init_mean, init_std: the initial noise of the pseudo-inputs.

    Example:
        >>> import torch, vaekit as vk
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=8, widths=(4,), latent_dim=2,
        ...                           attention_at=(), block="conv"))
        >>> prior = vk.priors.VampPrior(pseudo_inputs=5)
        >>> _ = prior.setup(vae.latent_shape, encoder=vae.encode, data_shape=(1, 8, 8))
        >>> prior.pseudo_inputs.shape
        torch.Size([5, 1, 8, 8])
        >>> prior.log_prob(torch.zeros(3, 2)).shape, prior.sample(4).shape
        (torch.Size([3]), torch.Size([4, 2]))
    """

    learned_with_vae = True

    def __init__(
        self,
        pseudo_inputs: int = 64,
        latent_shape: Sequence[int] | None = None,
        data_shape: Sequence[int] | None = None,
        *,
        input_range: Sequence[float] | None = (0.0, 1.0),
        init_mean: float = 0.5,
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        self.num_pseudo_inputs = check_int(pseudo_inputs, "pseudo_inputs")
        if input_range is not None:
            low, high = (float(v) for v in input_range)
            if not low < high:
                raise ValueError(
                    f"input_range must be (low, high) with low < high, got {input_range}"
                )
            input_range = (low, high)
        self.input_range: tuple[float, float] | None = input_range
        self.init_mean, self.init_std = float(init_mean), float(init_std)
        self.data_shape: tuple[int, ...] | None = None
        self.register_parameter("pseudo_inputs", None)  # created once the image shape is known
        # a plain reference, not a submodule: the VAE owns the encoder's weights
        object.__setattr__(self, "_encoder", None)
        if data_shape is not None:
            self._create_pseudo_inputs(_check_data_shape(data_shape))
        if latent_shape is not None:
            self.setup(latent_shape)

    # -- binding ----------------------------------------------------------------------------
    def setup(
        self,
        latent_shape: Sequence[int],
        *,
        encoder: Callable[[torch.Tensor], Any] | None = None,
        data_shape: Sequence[int] | None = None,
    ) -> VampPrior:
        """Bind the latent shape, the encoder (``x -> DiagonalGaussian``) and the image shape.

        The pseudo-inputs are created when the image shape is first known.
        """
        super().setup(latent_shape)
        if data_shape is not None:
            shape = _check_data_shape(data_shape)
            if self.data_shape is None:
                self._create_pseudo_inputs(shape)
            elif shape != self.data_shape:
                raise ValueError(
                    f"VampPrior has pseudo-inputs of shape {self.data_shape} but the model's "
                    f"images are {shape}"
                )
        if encoder is not None:
            if not callable(encoder):
                raise TypeError(
                    "encoder must be callable (x -> DiagonalGaussian), got "
                    f"{type(encoder).__name__}"
                )
            object.__setattr__(self, "_encoder", encoder)
        return self

    @property
    def encoder(self) -> Callable[[torch.Tensor], Any] | None:
        """The encoder callable given to :meth:`setup` (not a submodule)."""
        return self._encoder

    def _create_pseudo_inputs(self, data_shape: tuple[int, ...]) -> None:
        x = torch.randn(self.num_pseudo_inputs, *data_shape, device=self.device, dtype=self.dtype)
        x = self.init_mean + self.init_std * x
        if self.input_range is not None:
            x = x.clamp(*self.input_range)
        self.data_shape = data_shape
        self.pseudo_inputs = nn.Parameter(x)

    def init_pseudo_inputs(
        self, data: torch.Tensor, generator: torch.Generator | None = None
    ) -> VampPrior:
        """Set the pseudo-inputs to K images drawn without replacement from ``data``.

        Args:
            data: images ``(N, C, H, W)`` with N >= K.
            generator: for a reproducible choice (on any device).

        Example:
            >>> import torch, vaekit as vk
            >>> prior = vk.priors.VampPrior(pseudo_inputs=2, data_shape=(1, 4, 4))
            >>> data = torch.rand(10, 1, 4, 4)
            >>> _ = prior.init_pseudo_inputs(data, generator=torch.Generator().manual_seed(0))
            >>> any(torch.equal(prior.pseudo_inputs[0], x) for x in data)
            True
        """
        data = check_float_tensor(data, "data")
        if data.ndim != 4:
            raise ValueError(f"data must be images (N, C, H, W), got shape {tuple(data.shape)}")
        k = self.num_pseudo_inputs
        if data.shape[0] < k:
            raise ValueError(
                f"data must hold at least pseudo_inputs={k} images, got {data.shape[0]}"
            )
        shape = tuple(data.shape[1:])
        if self.data_shape is None:
            self._create_pseudo_inputs(shape)
        elif shape != self.data_shape:
            raise ValueError(f"data must be images of shape {self.data_shape}, got {shape}")
        device = generator.device if generator is not None else torch.device("cpu")
        idx = torch.randperm(data.shape[0], generator=generator, device=device)[:k]
        with torch.no_grad():
            self.pseudo_inputs.copy_(data[idx.to(data.device)])
        return self

    # -- the mixture ------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return self._encoder is not None and self.pseudo_inputs is not None

    def _require_ready(self) -> tuple[int, ...]:
        shape = self._require_shape()
        if not self.is_fitted:
            missing = [
                what
                for what, ok in (
                    ("encoder=", self._encoder is not None),
                    ("data_shape=(C, H, W)", self.pseudo_inputs is not None),
                )
                if not ok
            ]
            raise ValueError(
                f"VampPrior needs the encoder and the image shape, missing {missing}: call "
                "prior.setup(latent_shape, encoder=vae.encode, data_shape=(C, H, W)) (a VAE "
                "does this for the prior it owns)"
            )
        return shape

    def components(self) -> DiagonalGaussian:
        """q(z | u_k) for the K pseudo-inputs: a DiagonalGaussian of shape (K, *latent_shape).

        Example:
            >>> import torch, vaekit as vk
            >>> encoder = lambda x: vk.DiagonalGaussian(x.flatten(1)[:, :2], torch.zeros(len(x), 2))
            >>> prior = vk.priors.VampPrior(3).setup((2,), encoder=encoder, data_shape=(1, 2, 2))
            >>> prior.components().mean.shape
            torch.Size([3, 2])
        """
        shape = self._require_ready()
        u = self.pseudo_inputs
        if self.input_range is not None:
            u = u.clamp(*self.input_range)
        q = as_diagonal_gaussian(self._encoder(u))
        if tuple(q.mean.shape[1:]) != shape:
            raise ValueError(
                f"the encoder gives latents of shape {tuple(q.mean.shape[1:])} but the prior's "
                f"latent_shape is {shape}"
            )
        return q

    def _log_prob(self, z: torch.Tensor) -> torch.Tensor:
        q = self.components()
        k = self.num_pseudo_inputs
        log_weights = torch.full((k,), -math.log(k), dtype=compute_dtype(q.mean), device=z.device)
        return diagonal_mixture_log_prob(z, q.mean, q.logvar, log_weights)

    def _sample(
        self, n: int, temperature: float, generator: torch.Generator | None
    ) -> torch.Tensor:
        q = self.components()
        weights = torch.ones(self.num_pseudo_inputs, device=q.mean.device)
        return diagonal_mixture_sample(n, q.mean, q.std, weights, temperature, generator)

    def config(self) -> dict:
        return {
            **super().config(),
            "pseudo_inputs": self.num_pseudo_inputs,
            "data_shape": None if self.data_shape is None else list(self.data_shape),
            "input_range": None if self.input_range is None else list(self.input_range),
            "init_mean": self.init_mean,
            "init_std": self.init_std,
        }
