"""vaekit: parts for variational autoencoders on images.

``import vaekit as vk`` gives blocks, encoders/decoders, the VAE wrapper, a registry of
losses, annealing schedules, metrics and plotting helpers. Nothing heavy (torchvision's model
zoo, lpips, matplotlib) is imported until it is used.
"""

__version__ = "0.1.0"

# Imports run one way (tests/test_import_layers.py holds the table and checks every module):
#   core (_validation, _registry, _io, _maths, _weights, _inference) -> shared (distributions,
#   outputs, schedules) -> blocks -> config -> priors -> models -> presets;  blocks ->
#   discriminators;  shared -> data;
#   shared -> losses (+ functional);  shared -> metrics -> viz;  models + viz -> runs (run
#   folders, TensorBoard tags);  this file imports them all, and explore (the Gradio app) sits
#   on top. Losses and metrics never import each other;
#   they reach a model's parts (vae.prior) through the objects they are given.

from . import (
    blocks,
    data,
    discriminators,
    functional,
    losses,
    metrics,
    presets,
    priors,
    runs,
    schedules,
    viz,
)
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
    "discriminators",
    "functional",
    "losses",
    "metrics",
    "presets",
    "priors",
    "runs",
    "schedules",
    "viz",
]
