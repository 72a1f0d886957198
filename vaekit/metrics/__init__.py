"""Numbers that tell which failure a VAE is in: blur, collapse, ghosting, or none.

- image quality: :func:`psnr`, :func:`ssim` (Wang et al. 2004), :func:`image_stats`
  (sharpness as variance of the Laplacian, brightness, contrast), :func:`radial_power_spectrum`
  (where in frequency the detail is: blur shows as missing high frequencies);
- likelihood: :func:`iwae_nll` (Burda et al. 2016), :func:`elbo_nll`, :func:`bits_per_dim`
  and :func:`discretized_bits_per_dim` (Theis et al. 2016);
- latent health: :func:`kl_per_dim`, :func:`active_units` (Burda et al. 2016),
  :func:`aggregate_posterior_gap` (Hoffman & Johnson 2016; Rosca et al. 2018);
- sample quality: :func:`fid` (Heusel et al. 2017) with any :class:`FeatureExtractor`,
  e.g. :class:`InceptionFeatures` or a small domain classifier, :class:`ClassifierFeatures`;
  :func:`sample_report` puts each prior's sample FD next to the reconstructions' and the floor.

Metrics that take a model run it in eval mode under ``torch.no_grad()`` and restore its
train/eval modes afterwards. Nothing here imports torchvision until InceptionFeatures is built.
"""

from .classifier import ClassifierFeatures
from .fid import (
    INCEPTION_WEIGHTS_FILE,
    FeatureExtractor,
    InceptionFeatures,
    extract_features,
    feature_stats,
    fid,
    frechet_distance,
)
from .image import ImageStats, image_stats, psnr, ssim
from .latent import (
    PosteriorGap,
    active_units,
    aggregate_posterior_gap,
    kl_per_dim,
    latent_activity,
)
from .likelihood import (
    LIKELIHOODS,
    bits_per_dim,
    discretized_bits_per_dim,
    elbo_nll,
    iwae_nll,
    log_likelihood,
)
from .report import SampleReport, sample_report
from .spectrum import RadialSpectrum, radial_power_spectrum

__all__ = [
    "INCEPTION_WEIGHTS_FILE",
    "LIKELIHOODS",
    "ClassifierFeatures",
    "FeatureExtractor",
    "ImageStats",
    "InceptionFeatures",
    "PosteriorGap",
    "RadialSpectrum",
    "SampleReport",
    "active_units",
    "aggregate_posterior_gap",
    "bits_per_dim",
    "discretized_bits_per_dim",
    "elbo_nll",
    "extract_features",
    "feature_stats",
    "fid",
    "frechet_distance",
    "image_stats",
    "iwae_nll",
    "kl_per_dim",
    "latent_activity",
    "log_likelihood",
    "psnr",
    "radial_power_spectrum",
    "sample_report",
    "ssim",
]
