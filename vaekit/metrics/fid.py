"""Fréchet Inception Distance (Heusel et al. 2017) and pluggable feature extractors.

``FID = ||m_r - m_f||^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2))`` between Gaussians fitted to
features of real and generated images. The matrix square root is computed without scipy:
``tr (S_r S_f)^(1/2) = tr (A S_f A)^(1/2)`` with ``A = S_r^(1/2)``, and ``A S_f A`` is
symmetric PSD, so two ``eigh`` calls in float64 suffice.

Any callable ``images (N, C, H, W) in [0, 1] -> features (N, F)`` is a
:class:`FeatureExtractor`: a domain classifier (e.g. for chest X-rays) is usually a better
judge than ImageNet Inception. :class:`InceptionFeatures` gives the usual 2048-d pool
features from torchvision's Inception v3. Its ImageNet weights are *torchvision's*
(``inception_v3_google-0cc3c7bd.pth``), not the TF-FID graph, so values are comparable
between your own runs but not to published FID tables.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from .._inference import evaluating, iter_images, model_device
from .._validation import check_float_tensor
from .._weights import load_weights

__all__ = [
    "INCEPTION_WEIGHTS_FILE",
    "FeatureExtractor",
    "InceptionFeatures",
    "extract_features",
    "feature_stats",
    "fid",
    "frechet_distance",
]

INCEPTION_WEIGHTS_FILE = "inception_v3_google-0cc3c7bd.pth"
_INCEPTION_URL = f"https://download.pytorch.org/models/{INCEPTION_WEIGHTS_FILE}"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@runtime_checkable
class FeatureExtractor(Protocol):
    """Anything mapping images ``(N, C, H, W)`` in [0, 1] to features ``(N, F)``."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


# -- statistics -------------------------------------------------------------------------------
def _features(f: object, name: str) -> torch.Tensor:
    check_float_tensor(f, name)
    if f.ndim != 2:
        raise ValueError(f"{name} must be (N, F) features, got shape {tuple(f.shape)}")
    if f.shape[0] < 2:
        raise ValueError(f"{name} needs >= 2 rows to estimate a covariance, got {f.shape[0]}")
    return f.detach().to(torch.float64)


def feature_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(F,)`` and unbiased covariance ``(F, F)`` of ``(N, F)`` features, float64."""
    f = _features(features, "features")
    mean = f.mean(0)
    centred = f - mean
    return mean, centred.T @ centred / (f.shape[0] - 1)


def _sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    eig, vec = torch.linalg.eigh(0.5 * (m + m.T))
    return (vec * eig.clamp_min(0.0).sqrt()) @ vec.T


def frechet_distance(
    mean1: torch.Tensor, cov1: torch.Tensor, mean2: torch.Tensor, cov2: torch.Tensor
) -> float:
    """Fréchet distance between N(mean1, cov1) and N(mean2, cov2) (float64, no scipy).

    Example:
        >>> import torch, vaekit as vk
        >>> eye = torch.eye(2, dtype=torch.float64)
        >>> vk.metrics.frechet_distance(torch.zeros(2), eye, torch.ones(2), 4 * eye)
        4.0
    """
    mean1, mean2 = mean1.to(torch.float64), mean2.to(torch.float64)
    cov1, cov2 = cov1.to(torch.float64), cov2.to(torch.float64)
    if mean1.shape != mean2.shape or cov1.shape != cov2.shape or cov1.shape != (*mean1.shape,) * 2:
        raise ValueError(
            f"means must be (F,) and covariances (F, F) of the same F, got {tuple(mean1.shape)}, "
            f"{tuple(cov1.shape)}, {tuple(mean2.shape)}, {tuple(cov2.shape)}"
        )
    a = _sqrtm_psd(cov1)
    cross = torch.linalg.eigvalsh(0.5 * ((a @ cov2 @ a) + (a @ cov2 @ a).T)).clamp_min(0.0)
    value = (mean1 - mean2).square().sum() + cov1.trace() + cov2.trace() - 2 * cross.sqrt().sum()
    return max(float(value), 0.0)


def fid(real_features: torch.Tensor, fake_features: torch.Tensor) -> float:
    """FID between two sets of features (Heusel et al. 2017).

    Use thousands of images per side (FID is biased upwards for small N; 10k-50k is usual)
    and the same extractor for both.

    Args:
        real_features, fake_features: ``(N, F)`` and ``(M, F)`` feature matrices, e.g. from
            :func:`extract_features`.

    Example:
        >>> import torch, vaekit as vk
        >>> g = torch.Generator().manual_seed(0)
        >>> real = torch.randn(500, 8, generator=g)
        >>> vk.metrics.fid(real, real)
        0.0
        >>> round(vk.metrics.fid(real, real + 1.0), 4)   # mean shift of 1 in 8 dims
        8.0
    """
    r = _features(real_features, "real_features")
    f = _features(fake_features, "fake_features")
    if r.shape[1] != f.shape[1]:
        raise ValueError(
            f"real_features and fake_features must have the same feature size, got "
            f"{r.shape[1]} and {f.shape[1]}"
        )
    return frechet_distance(*feature_stats(r), *feature_stats(f))


def extract_features(
    extractor: FeatureExtractor,
    images: Iterable | torch.Tensor,
    *,
    batch_size: int = 64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Run ``extractor`` over an image tensor or a loader; returns ``(N, F)`` float64 on CPU.

    Modules run in eval mode under ``no_grad`` (modes restored after).

    Example:
        >>> import torch, vaekit as vk
        >>> pool = lambda x: x.mean((2, 3))    # a toy extractor: mean colour
        >>> vk.metrics.extract_features(pool, torch.rand(10, 3, 8, 8), batch_size=4).shape
        torch.Size([10, 3])
    """
    if not callable(extractor):
        raise TypeError(f"extractor must be callable, got {type(extractor).__name__}")
    if device is None:
        device = model_device(extractor) if isinstance(extractor, nn.Module) else "cpu"
    device = torch.device(device)
    out = []

    def run() -> None:
        for x in iter_images(images, device, batch_size=batch_size):
            feats = extractor(x)
            if not isinstance(feats, torch.Tensor) or feats.ndim != 2 or len(feats) != len(x):
                raise ValueError(
                    f"the extractor must return (N, F) features for N={len(x)} images, got "
                    f"{getattr(feats, 'shape', type(feats).__name__)}"
                )
            out.append(feats.detach().to("cpu", torch.float64))

    if isinstance(extractor, nn.Module):
        with evaluating(extractor):
            run()
    else:
        with torch.no_grad():
            run()
    return torch.cat(out)


# -- Inception --------------------------------------------------------------------------------
class InceptionFeatures(nn.Module):
    """2048-d pool features of torchvision's Inception v3, for :func:`fid`.

    Input images in [0, 1] with 1 or 3 channels are resized to 299 x 299 (bilinear), grey
    is repeated to RGB and ImageNet normalisation applied. The network is frozen.

    Args:
        weights: ``"imagenet"`` (torchvision's ``inception_v3_google-0cc3c7bd.pth`` from
            ``torch.hub.get_dir()/checkpoints``, downloaded once if ``download`` and online;
            otherwise a :class:`~vaekit.losses.WeightsNotFoundError` naming the file and
            where to put it), a path to that file, or ``None`` (random network, tests only).
        download: allow the one-time download.
        resize: resize inputs to 299 x 299 (turn off only if they already are).

    Shape:
        input: (N, 1 or 3, H, W) in [0, 1]; output: (N, 2048).

    Example:
        >>> import torch, vaekit as vk
        >>> net = vk.metrics.InceptionFeatures(weights=None)   # random: tests only
        >>> net(torch.rand(2, 1, 32, 32)).shape
        torch.Size([2, 2048])
    """

    def __init__(
        self, weights: str | os.PathLike | None = "imagenet", *, download: bool = True,
        resize: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        from torchvision.models import inception_v3  # lazy: slow import

        state = load_weights(weights, _INCEPTION_URL, what="InceptionFeatures",
                             download=download, random="network")  # fmt: skip
        # transform_input=True is what torchvision sets for its ImageNet weights: it maps
        # ImageNet-normalised input to the [-1, 1] scaling the Google weights expect
        net = inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
        if state is not None:
            try:
                net.load_state_dict(state)
            except RuntimeError as err:
                raise ValueError(
                    f"the weights do not fit torchvision's inception_v3: {err}"
                ) from err
        net.fc = nn.Identity()
        net.requires_grad_(False)
        self.net = net.eval()
        self.resize = bool(resize)
        self.register_buffer(
            "mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> InceptionFeatures:
        super().train(mode)
        self.net.eval()  # frozen feature extractor: BatchNorm statistics never update
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_float_tensor(images, "images")
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(
                f"images must be (N, 1 or 3, H, W) in [0, 1], got shape {tuple(images.shape)}"
            )
        x = images.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.resize and tuple(x.shape[-2:]) != (299, 299):
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        out = self.net(x)
        return out.logits if hasattr(out, "logits") else out
