"""Networks: Encoder, Decoder and the VAE wrapper, all built from one VAEConfig."""

from .decoder import Decoder
from .encoder import Encoder
from .vae import VAE, slerp

__all__ = ["VAE", "Decoder", "Encoder", "slerp"]
