"""Judge a prior the way the benchmarks do: sample FD next to reconstruction FD and the floor.

A sample FD alone says little: it depends on the feature extractor, the number of images and
the model's reconstructions. :func:`sample_report` puts three numbers in one feature space:

- the **floor**: FD between held-out real images and training images (what two samples of the
  data itself score: no model gets below it);
- the FD of the model's **reconstructions** of the held-out images (what the decoder can do
  when it is given good latents);
- the FD of **samples** from each prior (decoded prior draws).

A prior is as good as the model allows when its samples score about its reconstructions
(``ratio`` ≈ 1). Judge against held-out images, never the training images: a prior that
memorised its latents would otherwise look better than it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from .._inference import evaluating, model_device
from .._validation import check_float_tensor, check_int
from .fid import FeatureExtractor, extract_features, fid

__all__ = ["SampleReport", "sample_report"]


@dataclass
class SampleReport:
    """What :func:`sample_report` measured (FDs in the extractor's feature space).

    Attributes:
        recon: FD of the reconstructions of the held-out images against them.
        samples: prior name -> FD of as many decoded samples as held-out images.
        floor: FD of as many training images against the held-out ones (``nan`` without
            ``train_images``).
        num_images: held-out images (and samples per prior).
    """

    recon: float
    samples: dict[str, float] = field(default_factory=dict)
    floor: float = math.nan
    num_images: int = 0

    @property
    def ratios(self) -> dict[str, float]:
        """Prior name -> its sample FD over the reconstruction FD (1: as good as the model)."""
        return {k: v / self.recon if self.recon > 0 else math.inf for k, v in self.samples.items()}

    def to_markdown(self) -> str:
        """One row per number: floor, reconstructions, each prior with its ratio."""
        rows = ["| images | FD | × recon |", "|---|---:|---:|"]
        if not math.isnan(self.floor):
            rows.append(f"| training images (floor) | {self.floor:.3f} | — |")
        rows.append(f"| reconstructions | {self.recon:.3f} | 1.00 |")
        rows += [
            f"| samples: {k} | {v:.3f} | {self.ratios[k]:.2f} |" for k, v in self.samples.items()
        ]
        return "\n".join(rows)


def _decode(vae: nn.Module, z: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([vae.decode(b).float().clamp(0, 1) for b in z.split(batch_size)])


@torch.no_grad()
def sample_report(
    vae: nn.Module,
    features: FeatureExtractor,
    images: torch.Tensor,
    *,
    priors: Mapping[str, nn.Module] | None = None,
    train_images: torch.Tensor | None = None,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
) -> SampleReport:
    """FD of a VAE's samples from each prior next to its reconstructions' and the floor.

    Args:
        vae: a VAE (``vae(x).recon``, ``vae.decode(z)``; eval mode, no grad, modes restored).
        features: the feature extractor of the FD, e.g. a
            :class:`~vaekit.metrics.ClassifierFeatures` trained on the domain.
        images: held-out images ``(N, C, H, W)`` in [0, 1] (test images, not training ones).
        priors: name -> prior to sample from (anything with ``sample(n, generator=)``);
            default ``{"prior": vae.prior}``.
        train_images: training images for the floor (the first ``N`` are used).
        batch_size: images per forward pass.
        generator: seeds the prior samples (the prior's device).

    Returns:
        :class:`SampleReport` (``recon``, ``samples``, ``floor``, ``ratios``,
        ``to_markdown()``).

    Example:
        >>> import torch, vaekit as vk
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=8, widths=(4,),
        ...                           latent_dim=2, attention_at=(), block="conv"))
        >>> pool = lambda x: torch.nn.functional.avg_pool2d(x, 4).flatten(1)
        >>> x = torch.rand(64, 1, 8, 8)
        >>> r = vk.metrics.sample_report(vae, pool, x, train_images=torch.rand(64, 1, 8, 8),
        ...                              generator=torch.Generator().manual_seed(0))
        >>> sorted(r.samples), r.num_images, r.floor < r.recon
        (['prior'], 64, True)
    """
    images = check_float_tensor(images, "images")
    if images.ndim != 4 or images.shape[0] < 2:
        raise ValueError(
            f"images must be a batch (N, C, H, W) of at least 2 held-out images, got shape "
            f"{tuple(images.shape)}"
        )
    check_int(batch_size, "batch_size")
    if priors is None:
        prior = getattr(vae, "prior", None)
        if prior is None:
            raise ValueError("the model has no .prior: pass priors={'name': prior}")
        priors = {"prior": prior}
    if not isinstance(priors, Mapping) or not priors:
        raise TypeError(f"priors must be a non-empty dict name -> prior, got {priors!r}")
    for name, prior in priors.items():
        if not callable(getattr(prior, "sample", None)):
            raise TypeError(f"priors[{name!r}] cannot sample: got {type(prior).__name__}")
    n, device = images.shape[0], model_device(vae)

    def fd_of(x: torch.Tensor) -> float:
        return fid(real, extract_features(features, x, batch_size=batch_size))

    real = extract_features(features, images, batch_size=batch_size)
    with evaluating(vae):
        recon = torch.cat([
            vae(b.to(device)).recon.float().clamp(0, 1) for b in images.split(batch_size)
        ])  # fmt: skip
        report = SampleReport(recon=fd_of(recon), num_images=n)
        for name, prior in priors.items():
            with evaluating(prior) if isinstance(prior, nn.Module) else torch.no_grad():
                z = prior.sample(n, generator=generator)
            report.samples[name] = fd_of(_decode(vae, z.to(device), batch_size))
    if train_images is not None:
        train_images = check_float_tensor(train_images, "train_images")
        if train_images.shape[1:] != images.shape[1:] or train_images.shape[0] < 2:
            raise ValueError(
                f"train_images must be (M, {', '.join(map(str, images.shape[1:]))}) with M >= 2, "
                f"got {tuple(train_images.shape)}"
            )
        report.floor = fd_of(train_images[:n])
    return report
