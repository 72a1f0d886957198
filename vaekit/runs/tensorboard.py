"""The TensorBoard tags of a run, the same for every trainer that logs them.

Both example trainers (``examples/train.py --tensorboard`` and ``examples/lightning/``) log
these tags, so ``tensorboard --logdir`` shows their runs on the same charts:

- ``train/<term>`` and ``val/<term>``: every loss term (``total``, ``recon``, ``kl`` after free
  bits, ``kl_raw`` the true KL in nats per image, each reconstruction part by name), plus
  ``train/beta`` and ``train/lr``;
- ``val/psnr``, ``val/ssim`` (dB, and SSIM in [0, 1], of the reconstructions of a fixed set of
  validation images), ``latent/active_units`` (Burda et al. 2016: posterior means that vary
  more than 0.01 over those images) and ``latent/kl_mean`` (nats per latent dimension);
- the histogram ``latent/kl_per_dim``: the KL to N(0, 1) of every latent dimension, whose
  mass at 0 is the collapsed dimensions;
- the images ``images/reconstructions`` (inputs over their reconstructions),
  ``images/samples`` (the model's prior at temperatures 0.5, 0.8 and 1.0, the same noise per
  column) and ``images/traversal`` (one image's most informative dimensions swept over ±3
  prior standard deviations), drawn by :mod:`vaekit.viz`.

Nothing here imports TensorBoard: :meth:`Snapshot.write` takes any writer with
``add_scalar``, ``add_histogram`` and ``add_image`` (``torch.utils.tensorboard.SummaryWriter``,
which Lightning's ``TensorBoardLogger.experiment`` is).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from .. import metrics, viz
from .._inference import evaluating
from .._validation import check_image, check_int

__all__ = ["IMAGE_TAGS", "Snapshot", "scalar_tags", "snapshot"]

IMAGE_TAGS = ("images/reconstructions", "images/samples", "images/traversal")
SAMPLE_TEMPERATURES = (0.5, 0.8, 1.0)


def scalar_tags(split: str, values: Mapping[str, object]) -> dict[str, float]:
    """``{"<split>/<name>": float}`` for every number (or one-element tensor) in ``values``,
    e.g. a :class:`~vaekit.LossOutput`'s ``{"total": res.total, **res.terms}``.

    Example:
        >>> import torch, vaekit as vk
        >>> vk.runs.scalar_tags("train", {"total": torch.tensor(0.25), "beta": 0.5, "note": "x"})
        {'train/total': 0.25, 'train/beta': 0.5}
    """
    if not isinstance(split, str) or not split or "/" in split:
        raise ValueError(f"split must be a name without '/', such as 'train', got {split!r}")
    out = {}
    for name, value in values.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{split}/{name}"] = float(value)
    return out


@dataclass
class Snapshot:
    """Scalars, histograms and image grids of one model at one step (see the module
    docstring for the tags).

    Attributes:
        scalars: tag -> float. histograms: tag -> 1-D tensor of values. images: tag ->
            (C, H, W) float in [0, 1].
    """

    scalars: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, torch.Tensor] = field(default_factory=dict)
    images: dict[str, torch.Tensor] = field(default_factory=dict)

    def write(self, writer: object, step: int) -> None:
        """Log everything at ``step`` to a TensorBoard ``SummaryWriter`` (or anything with
        its ``add_scalar``/``add_histogram``/``add_image``)."""
        for method in ("add_scalar", "add_histogram", "add_image"):
            if not callable(getattr(writer, method, None)):
                raise TypeError(
                    f"writer must be a TensorBoard SummaryWriter (with add_scalar, "
                    f"add_histogram and add_image), got {type(writer).__name__} without {method}"
                )
        step = check_int(step, "step", minimum=0)
        for tag, value in self.scalars.items():
            writer.add_scalar(tag, value, step)
        for tag, values in self.histograms.items():
            writer.add_histogram(tag, values.detach().double().cpu(), step)
        for tag, image in self.images.items():
            writer.add_image(tag, image.detach().float().cpu(), step, dataformats="CHW")


def _window(size: int) -> int:
    """SSIM's 11-px Gaussian window, or the largest odd one that fits smaller images."""
    return min(11, size if size % 2 else size - 1)


def snapshot(
    vae: torch.nn.Module,
    images: torch.Tensor,
    *,
    seed: int = 0,
    samples: int = 8,
    traversal_steps: int = 7,
) -> Snapshot:
    """Measure and draw ``vae`` on a fixed batch of validation images.

    The model runs in eval mode without gradients (every submodule's mode is restored), on
    its own device; the samples come from a generator seeded with ``seed``, so the same
    weights give the same pictures.

    Args:
        vae: a :class:`~vaekit.VAE` (unwrapped: not DDP or compiled).
        images: (N, C, H, W) in [0, 1], N >= 2 (the active-unit count is a variance over
            images); the first 8 appear in the reconstruction grid, the first is traversed.
        seed: seed of the samples. samples: samples per temperature row.
        traversal_steps: images per traversal row.

    Example:
        >>> import torch, vaekit as vk
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=16, widths=(4, 8),
        ...                           latent_dim=4, attention_at=()))
        >>> snap = vk.runs.snapshot(vae, torch.rand(6, 1, 16, 16))
        >>> sorted(snap.scalars)
        ['latent/active_units', 'latent/kl_mean', 'val/psnr', 'val/ssim']
        >>> snap.histograms["latent/kl_per_dim"].shape, sorted(snap.images)
        (torch.Size([4]), ['images/reconstructions', 'images/samples', 'images/traversal'])
    """
    check_image(images, "images")
    if images.shape[0] < 2:
        raise ValueError(
            f"images must hold at least 2 images (active units are a variance over images), "
            f"got {images.shape[0]}"
        )
    samples = check_int(samples, "samples")
    traversal_steps = check_int(traversal_steps, "traversal_steps", minimum=2)
    device = next(vae.parameters()).device
    x = images.detach().to(device=device, dtype=torch.float32)
    snap = Snapshot()
    with evaluating(vae):
        recon = vae.reconstruct(x).float().clamp(0, 1)
        snap.scalars["val/psnr"] = float(metrics.psnr(x, recon).clamp(max=100.0))
        size = min(x.shape[-2:])
        snap.scalars["val/ssim"] = float(metrics.ssim(x, recon, window_size=_window(size)))
        kl = metrics.kl_per_dim(vae, x).flatten()
        snap.histograms["latent/kl_per_dim"] = kl.cpu()
        snap.scalars["latent/kl_mean"] = float(kl.mean())
        snap.scalars["latent/active_units"] = float(metrics.active_units(vae, x))
        upscale = "auto"
        snap.images["images/reconstructions"] = viz.reconstruction_grid(
            x[:8], recon[:8], nrow=8, upscale=upscale
        )
        gen = torch.Generator(device=device).manual_seed(seed)
        snap.images["images/samples"] = viz.sample_grid(
            vae, samples, SAMPLE_TEMPERATURES, generator=gen, upscale=upscale
        )
        snap.images["images/traversal"] = viz.traversal_grid(
            vae, x[:1], steps=traversal_steps, upscale=upscale
        )
    return snap
