"""The VAE wrapper (Kingma & Welling 2014): encoder q(z|x), prior p(z), decoder p(x|z).

The prior is a part the model owns (``vae.prior``, a :class:`vaekit.priors.Prior`; N(0, I)
by default): sampling draws from it, the loss's KL and the likelihood metrics reach it through
the model, and save/load carries its name, config and weights in the same file.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn

from .._io import read_checkpoint
from .._validation import check_choice, check_float_tensor, check_int, check_number
from ..config import VAEConfig
from ..distributions import DiagonalGaussian, as_diagonal_gaussian
from ..outputs import VAEOutput
from ..priors import ExPostPrior, Prior, StandardNormal
from ..priors import available as available_priors
from ..priors import from_config as prior_from_config
from ..priors import get as get_prior
from ..priors import to_config as prior_to_config
from .decoder import Decoder
from .encoder import Encoder

__all__ = ["VAE", "slerp"]

_FORMAT = "vaekit.VAE/1"


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` (flattened per sample).

    Falls back to linear interpolation where the two vectors are (nearly) parallel, where
    slerp's ``sin(omega)`` denominator vanishes.

    Shape:
        a, b: (B, ...); t: (S,) -> (S, B, ...).
    """
    shape = a.shape
    a2, b2 = a.reshape(shape[0], -1).float(), b.reshape(shape[0], -1).float()
    cos = (a2 * b2).sum(-1) / (a2.norm(dim=-1) * b2.norm(dim=-1)).clamp_min(1e-12)
    omega = torch.acos(cos.clamp(-1.0, 1.0))  # (B,)
    so = torch.sin(omega)
    t = t.float().view(-1, 1, 1)  # (S, 1, 1)
    linear = (1.0 - t) * a2 + t * b2
    safe_so = torch.where(so.abs() < 1e-4, torch.ones_like(so), so)
    wa = torch.sin((1.0 - t) * omega.view(1, -1, 1)) / safe_so.view(1, -1, 1)
    wb = torch.sin(t * omega.view(1, -1, 1)) / safe_so.view(1, -1, 1)
    spherical = wa * a2 + wb * b2
    out = torch.where((so.abs() < 1e-4).view(1, -1, 1), linear, spherical)
    return out.view(t.shape[0], *shape).to(a.dtype)


class VAE(nn.Module):
    """A variational autoencoder: ``VAE(config)`` or ``VAE(encoder=..., decoder=...)``.

    Args:
        config: a :class:`~vaekit.VAEConfig`; builds :class:`~vaekit.Encoder` and
            :class:`~vaekit.Decoder` from it.
        encoder, decoder: your own modules instead of ``config``. The encoder must return a
            :class:`~vaekit.DiagonalGaussian` (or a ``(mean, logvar)`` tuple), the decoder an
            image tensor; give ``latent_shape`` if neither module has a ``latent_shape``.
        prior: p(z), a :class:`vaekit.priors.Prior` (default
            :class:`~vaekit.priors.StandardNormal`, N(0, I)). The model binds it with
            ``prior.setup(latent_shape, encoder=self.encode, data_shape=(C, H, W))`` and
            owns it as ``self.prior``; assigning ``vae.prior = other`` later does the same
            checks (a non-prior is a ``TypeError``, another latent shape a ``ValueError``)
            and moves the prior to the model's device and dtype.
        sample_posterior_in_eval: in ``eval()`` mode, decode a posterior sample instead of
            the posterior mean (default ``False``: eval is deterministic).

    Example:
        >>> import torch, vaekit as vk
        >>> cfg = vk.VAEConfig(in_channels=1, image_size=28, widths=(8, 16), latent_dim=4,
        ...                    attention_at=(), block="resblock")
        >>> vae = vk.VAE(cfg)
        >>> out = vae(torch.rand(2, 1, 28, 28))
        >>> out.recon.shape, out.z.shape, vae.latent_shape
        (torch.Size([2, 1, 28, 28]), torch.Size([2, 4]), (4,))
        >>> vae.sample(3, temperature=0.8, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([3, 1, 28, 28])
        >>> vae.prior
        StandardNormal(latent_shape=[4])
        >>> vk.VAE(cfg, prior=vk.priors.MixtureOfGaussians(components=16)).prior.means.shape
        torch.Size([16, 4])
    """

    def __init__(
        self,
        config: VAEConfig | None = None,
        *,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        latent_shape: tuple[int, ...] | None = None,
        prior: Prior | None = None,
        sample_posterior_in_eval: bool = False,
    ) -> None:
        super().__init__()
        if config is not None:
            if encoder is not None or decoder is not None:
                raise ValueError("give either config or encoder= and decoder=, not both")
            if not isinstance(config, VAEConfig):
                raise TypeError(f"config must be a vaekit.VAEConfig, got {type(config).__name__}")
            encoder, decoder = Encoder(config), Decoder(config)
        elif encoder is None or decoder is None:
            raise ValueError("VAE needs a VAEConfig, or both encoder= and decoder= modules")
        for name, mod in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(mod, nn.Module):
                raise TypeError(f"{name} must be an nn.Module, got {type(mod).__name__}")
        self.config: VAEConfig | None = config
        if config is None and isinstance(encoder, Encoder) and isinstance(decoder, Decoder):
            if encoder.config != decoder.config:
                raise ValueError("encoder and decoder were built from different VAEConfigs")
            self.config = encoder.config
        self.encoder = encoder
        self.decoder = decoder
        shape = latent_shape or getattr(decoder, "latent_shape", None)
        shape = shape or getattr(encoder, "latent_shape", None)
        if shape is None:
            raise ValueError(
                "cannot tell the latent shape: give latent_shape=(...) or a decoder with a "
                "latent_shape attribute"
            )
        self._latent_shape = tuple(int(s) for s in shape)
        self.sample_posterior_in_eval = bool(sample_posterior_in_eval)
        self.prior = StandardNormal() if prior is None else prior  # bound by __setattr__

    def __setattr__(self, name: str, value: Any) -> None:
        # nn.Module.__setattr__ files modules away before any property setter could run, so
        # the prior is checked and bound here, before it replaces the old one
        if name == "prior":
            value = self._bind_prior(value)
        super().__setattr__(name, value)

    def _bind_prior(self, prior: object) -> Prior:
        """Check ``prior``, bind it to this model (setup) and move it to the model's device."""
        if not isinstance(prior, Prior):
            raise TypeError(
                "prior must be a vaekit.priors.Prior (e.g. vk.priors.StandardNormal(), "
                f"vk.priors.MixtureOfGaussians(16)), got {type(prior).__name__}"
            )
        data_shape = self.config.data_shape if self.config is not None else None
        data_shape = data_shape or getattr(self.encoder, "data_shape", None)
        # setup names both shapes when the prior was built or fitted for another latent shape
        prior.setup(self.latent_shape, encoder=self.encode, data_shape=data_shape)
        device, dtype = self._device_dtype()
        return prior.to(device=device, dtype=dtype)

    # -- core -----------------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one latent: ``(latent_dim,)`` or ``(channels, h, w)``."""
        return self._latent_shape

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """q(z|x) for a batch of images."""
        q = as_diagonal_gaussian(self.encoder(x))
        return q

    def decode_with_logvar(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decode to ``(image, decoder log-variance or None)``."""
        if hasattr(self.decoder, "decode_with_logvar"):
            return self.decoder.decode_with_logvar(z)
        return self.decoder(z), None

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decode latents (N, *latent_shape) to images (N, C, H, W)."""
        return self.decode_with_logvar(z)[0]

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> VAEOutput:
        """Encode, take z (a reparameterised sample in training, the mean in eval unless
        ``sample_posterior_in_eval``), decode."""
        posterior = self.encode(x)
        if self.training or self.sample_posterior_in_eval:
            z = posterior.sample(generator=generator)
        else:
            z = posterior.mode()
        recon, logvar = self.decode_with_logvar(z)
        return VAEOutput(
            recon=recon, posterior=posterior, z=z, recon_logvar=logvar, prior=self.prior
        )

    # -- generation -----------------------------------------------------------------------
    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        # the encoder's and decoder's parameters come first (the prior is registered last)
        p = next(self.parameters(), None)
        if p is None:
            return torch.device("cpu"), torch.get_default_dtype()
        return p.device, p.dtype

    def sample_prior(
        self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Latents drawn from ``self.prior``: (n, *latent_shape).

        ``temperature`` scales the prior's noise (for the default N(0, I): z ~ N(0, t^2 I));
        each prior documents what it scales. An ex-post prior that is not fitted yet raises
        its ``ValueError``.

        Example:
            >>> import torch, vaekit as vk
            >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=8, widths=(4,),
            ...                           latent_dim=2, attention_at=(), block="conv"))
            >>> vae.sample_prior(2, temperature=0.0)
            tensor([[0., 0.],
                    [0., 0.]])
            >>> vae.prior = vk.priors.GaussianMixture(components=2)   # ex-post: fit it first
            >>> vae.sample_prior(2)
            Traceback (most recent call last):
            ...
            vaekit.priors.base.NotFittedError: GaussianMixture is not fitted: call .fit(...) ...
        """
        n = check_int(n, "n")
        check_number(temperature, "temperature", at_least=0)
        device, _ = self._device_dtype()
        if generator is not None and generator.device != device:
            raise ValueError(
                f"generator is on {generator.device} but the model is on {device}; create it "
                f"with torch.Generator(device={str(device)!r})"
            )
        return self.prior.sample(n, temperature=temperature, generator=generator)

    def sample(
        self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Decode ``n`` latents drawn from ``self.prior`` at ``temperature`` (see
        :meth:`sample_prior`)."""
        return self.decode(self.sample_prior(n, temperature, generator))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """decode(posterior mean): the deterministic reconstruction."""
        return self.decode(self.encode(x).mode())

    def interpolate(
        self, x1: torch.Tensor, x2: torch.Tensor, steps: int = 8, method: str = "slerp"
    ) -> torch.Tensor:
        """Decode a path between the posterior means of ``x1`` and ``x2``.

        Args:
            x1, x2: one image (C, H, W) or a batch (B, C, H, W) each, same shape.
            steps: number of points including both ends (>= 2).
            method: ``"slerp"`` (spherical, the default: Gaussian latents concentrate on a
                shell, White 2016) or ``"linear"``.

        Returns:
            (steps, C, H, W) for single images, (steps, B, C, H, W) for batches.
        """
        check_choice(method, ("slerp", "linear"), "method")
        steps = check_int(steps, "steps", minimum=2)
        check_float_tensor(x1, "x1")
        check_float_tensor(x2, "x2")
        if x1.shape != x2.shape:
            raise ValueError(
                f"x1 and x2 must have the same shape, got {tuple(x1.shape)} and {tuple(x2.shape)}"
            )
        single = x1.ndim == 3
        if single:
            x1, x2 = x1[None], x2[None]
        z1, z2 = self.encode(x1).mode(), self.encode(x2).mode()
        t = torch.linspace(0.0, 1.0, steps, device=z1.device)
        if method == "linear":
            path = torch.lerp(z1[None], z2[None], t.view(-1, *([1] * z1.ndim)).to(z1.dtype))
        else:
            path = slerp(z1, z2, t)
        images = self.decode(path.reshape(-1, *self.latent_shape))
        images = images.view(steps, x1.shape[0], *images.shape[1:])
        return images[:, 0] if single else images

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write config, prior and weights to one safetensors file (no pickled code).

        The prior travels by name: ``vk.priors.to_config(self.prior)`` (registry name and
        constructor arguments) as JSON under the metadata key ``"prior"``, its weights as the
        ``prior.*`` entries of the state dict. A prior whose class is not registered cannot be
        saved by name (``ValueError``: register it with ``@vk.priors.register``).

        Example:
            >>> import os, tempfile, torch, vaekit as vk
            >>> cfg = vk.VAEConfig(in_channels=1, image_size=16, widths=(8,), latent_dim=2,
            ...                    attention_at=(), block="conv")
            >>> vae = vk.VAE(cfg).eval()
            >>> path = os.path.join(tempfile.mkdtemp(), "vae.safetensors")
            >>> vae.save(path)
            >>> x = torch.rand(1, 1, 16, 16)
            >>> torch.equal(vk.VAE.load(path).eval()(x).recon, vae(x).recon)
            True
        """
        from safetensors.torch import save_file

        if self.config is None:
            raise ValueError(
                "save() stores the VAEConfig next to the weights, so it needs a VAE built from "
                "a config; for custom encoder/decoder modules save state_dict() yourself"
            )
        prior = json.dumps(prior_to_config(self.prior))  # before writing anything
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        from .. import __version__

        meta = {
            "format": _FORMAT,
            "vaekit_version": __version__,
            "config": json.dumps(self.config.to_dict()),
            "sample_posterior_in_eval": json.dumps(self.sample_posterior_in_eval),
            "prior": prior,
        }
        save_file(state, os.fspath(path), metadata=meta)

    @staticmethod
    def _read(path: str | os.PathLike) -> tuple[VAEConfig, dict[str, torch.Tensor], dict]:
        state, meta = read_checkpoint(path, _FORMAT, "vaekit VAE checkpoint")
        try:
            config = VAEConfig.from_dict(json.loads(meta["config"]))
        except (json.JSONDecodeError, TypeError, ValueError) as err:
            raise ValueError(f"the config stored in {path!r} is invalid: {err}") from err
        return config, state, meta

    def _load_checked(self, state: dict[str, torch.Tensor], path: str) -> None:
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(
            f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
            for k in set(own) & set(state)
            if state[k].shape != own[k].shape
        )
        if missing or unexpected or wrong:
            parts = []
            if missing:
                parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
            if unexpected:
                parts.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
            if wrong:
                parts.append(f"shape mismatch {wrong[:5]}")
            raise ValueError(
                f"the weights in {path!r} do not match the model's config: " + "; ".join(parts)
            )
        self.load_state_dict(state)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        map_location: str | torch.device = "cpu",
        expected_config: VAEConfig | None = None,
    ) -> VAE:
        """Build a VAE from a file written by :meth:`save`, its prior included.

        The prior is rebuilt with ``vk.priors.from_config`` from the file's ``"prior"``
        metadata, bound to the model and given its stored weights; a file written before
        priors were part of the model (no ``"prior"`` entry) loads with N(0, I).

        Raises ``ValueError`` for a truncated/corrupted file, a file that is not a vaekit
        checkpoint, weights that do not fit the stored config, a prior whose name is not
        registered (import the code that registers it first), or (with ``expected_config``)
        a stored config that differs from the one you expected (the differing fields are
        named).
        """
        config, state, meta = cls._read(path)
        if expected_config is not None:
            _check_same_config(expected_config, config, os.fspath(path))
        vae = cls(
            config,
            prior=_read_prior(meta, os.fspath(path)),
            sample_posterior_in_eval=json.loads(meta.get("sample_posterior_in_eval", "false")),
        )
        vae._load_checked(state, os.fspath(path))
        return vae.to(map_location)

    def load_weights(self, path: str | os.PathLike) -> VAE:
        """Load weights into this model; the file's config must equal ``self.config``.

        The prior's weights load in place when the file's prior has the same name and
        config as ``self.prior``; otherwise ``self.prior`` is replaced by the file's prior
        (N(0, I) for a file written before priors were saved).
        """
        path = os.fspath(path)
        config, state, meta = self._read(path)
        if self.config is not None:
            _check_same_config(self.config, config, path)
        stored = _read_prior(meta, path)
        old = self.prior
        replace = _prior_spec(old) != _prior_spec(stored)
        if replace:
            self.prior = stored
        try:
            self._load_checked(state, path)
        except ValueError:
            if replace:
                self.prior = old
            raise
        if not replace and isinstance(stored, ExPostPrior):
            self.prior.load_fit_state(stored.fit_state())  # the file's fit record, too
        return self


def _prior_spec(prior: Prior) -> dict[str, Any] | None:
    """The name and config of ``to_config(prior)`` (not its fit record), or ``None`` for a
    prior whose class is not registered."""
    try:
        spec = prior_to_config(prior)
    except ValueError:
        return None
    return {"name": spec["name"], "config": spec["config"]}


def _read_prior(meta: dict[str, str], path: str) -> Prior:
    """The prior stored in a checkpoint's metadata, built but without its weights."""
    text = meta.get("prior")
    if text is None:  # written before the prior was part of the model: it was N(0, I)
        return StandardNormal()
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"the prior stored in {path!r} is not valid JSON: {err}") from err
    name = spec.get("name") if isinstance(spec, dict) else None
    if isinstance(name, str):
        try:
            get_prior(name)
        except ValueError:
            raise ValueError(
                f"{path!r} holds a prior named {name!r}, which is not registered (registered: "
                f"{available_priors()}): import the code that registers it with "
                f"@vk.priors.register({name!r}) before loading"
            ) from None
    try:
        return prior_from_config(spec)
    except (TypeError, ValueError) as err:
        raise ValueError(f"the prior stored in {path!r} is invalid: {err}") from err


def _check_same_config(expected: VAEConfig, found: VAEConfig, path: str) -> None:
    a: dict[str, Any] = expected.to_dict()
    b: dict[str, Any] = found.to_dict()
    diff = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    if diff:
        lines = ", ".join(f"{k}: expected {v[0]!r}, file has {v[1]!r}" for k, v in diff.items())
        raise ValueError(f"the config stored in {path!r} does not match: {lines}")
