"""vaekit: parts for variational autoencoders on images.

``import vaekit as vk`` gives blocks, encoders/decoders, the VAE wrapper, a registry of
losses, annealing schedules, metrics and plotting helpers. Nothing heavy (torchvision's model
zoo, lpips, matplotlib) is imported until it is used.
"""

__version__ = "0.1.0"

from . import blocks, data, functional, losses, metrics, presets, schedules, viz
from ._validation import DTypeError
from .config import VAEConfig
from .distributions import DiagonalGaussian
from .models import VAE, Decoder, Encoder
from .outputs import LossOutput, VAEOutput

__all__ = [
    "VAE",
    "DTypeError",
    "Decoder",
    "DiagonalGaussian",
    "Encoder",
    "LossOutput",
    "VAEConfig",
    "VAEOutput",
    "__version__",
    "blocks",
    "data",
    "functional",
    "losses",
    "metrics",
    "presets",
    "schedules",
    "viz",
]
