"""Discriminators for an adversarial reconstruction term (:class:`vaekit.losses.Adversarial`).

A discriminator maps an image batch ``(B, C, H, W)`` to logits: a map ``(B, 1, h, w)`` for a
patch discriminator (one real/fake judgement per receptive field, Isola et al. 2017), or
``(B, 1)``. The adversarial loss only needs a module that returns logits, so anything works;
the registry gives the built-ins by name and takes your own:

- ``patchgan`` (:class:`PatchGAN`): the N-layer PatchGAN of pix2pix, as used by the
  autoencoders of VQGAN and latent diffusion (Esser et al. 2021, Rombach et al. 2022).

Registry: :func:`available`, :func:`build`, :func:`register`, :func:`unregister`,
:func:`get`, :func:`name_of` (the same helper as blocks, losses and priors).
"""

from .patchgan import PatchGAN
from .registry import available, build, get, name_of, register, unregister

__all__ = ["PatchGAN", "available", "build", "get", "name_of", "register", "unregister"]
