"""Priors p(z): N(0, I), priors learned with the VAE, and ex-post priors fitted on latents.

Every prior is a :class:`Prior` (an ``nn.Module``): ``log_prob(z) -> (B,)`` nats,
``sample(n, *, temperature=1.0, generator=None)``, ``latent_shape``, and ``kl(posterior)``
where a closed form exists (``has_closed_form_kl``; else :func:`mc_kl`).

- :class:`StandardNormal` — N(0, I), the default; bit-identical to vaekit before priors.
- Learned with the VAE (through the KL): :class:`MixtureOfGaussians`, :class:`VampPrior`
  (Tomczak & Welling 2018).
- Fitted after training on :func:`encode_dataset`'s latents (Ghosh et al. 2020; Dai & Wipf
  2019): :class:`GaussianMixture` (EM), :class:`Flow` (RealNVP, Dinh et al. 2017),
  :class:`LatentDiffusion` (DDPM training, DDIM sampling; no density), :class:`EDMDiffusion`
  (Karras et al. 2022's preconditioning and Heun sampler, a small U-Net on spatial latents).

A VAE owns its prior: ``vk.VAE(cfg, prior=...)`` or ``vae.prior = ...`` (bound to the model's
latent shape and encoder); ``vae.sample``, ``vk.losses.VAELoss``, the likelihood metrics and
``vae.save``/``vk.VAE.load`` go through it.

Choosing one: :func:`select` fits candidates and keeps the best by held-out log-likelihood.

Registry: :func:`available`, :func:`build`, :func:`register`; save/load:
:func:`to_config` / :func:`from_config` with the prior's ``state_dict``.
"""

from .base import (
    OVERFIT_NATS_PER_DIM,
    ExPostPrior,
    NotFittedError,
    Prior,
    PriorCapabilityError,
    mean_log_prob_per_dim,
)
from .diffusion import LatentDiffusion
from .edm import EDMDiffusion
from .encode import encode_dataset
from .flow import AffineCoupling, Flow
from .gmm import GaussianMixture, kmeans_plus_plus
from .kl import kl_to_prior, mc_kl
from .mog import MixtureOfGaussians
from .registry import (
    available,
    build,
    density_names,
    from_config,
    get,
    name_of,
    register,
    to_config,
    unregister,
)
from .select import Selection, default_candidates, select
from .standard_normal import StandardNormal
from .vamp import VampPrior

__all__ = [
    "OVERFIT_NATS_PER_DIM",
    "AffineCoupling",
    "EDMDiffusion",
    "ExPostPrior",
    "Flow",
    "GaussianMixture",
    "LatentDiffusion",
    "MixtureOfGaussians",
    "NotFittedError",
    "Prior",
    "PriorCapabilityError",
    "Selection",
    "StandardNormal",
    "VampPrior",
    "available",
    "build",
    "default_candidates",
    "density_names",
    "encode_dataset",
    "from_config",
    "get",
    "kl_to_prior",
    "kmeans_plus_plus",
    "mc_kl",
    "mean_log_prob_per_dim",
    "name_of",
    "register",
    "select",
    "to_config",
    "unregister",
]
