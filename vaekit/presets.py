"""Named configurations: each reproduces a system a user described (see DESIGN.md).

Every preset is a plain :class:`~vaekit.VAEConfig` built by the same Encoder/Decoder code;
``config(name, **overrides)`` returns an editable copy.

| name | system |
|---|---|
| ``fmnist32`` | 1x32x32 Fashion-MNIST, flat latent 32, widths (32, 64), BatchNorm/LeakyReLU conv stack |
| ``cifar32`` | 3x32x32, flat latent 256, widths (64, 128, 256, 512), BatchNorm/LeakyReLU conv stack |
| ``celeba64`` | 3x64x64, flat latent 256, widths (64, 128, 256, 512), BatchNorm/LeakyReLU |
| ``celeba64-bottleneck`` | 3x64x64, ResidualBottleneck + SE + LayerScale, GroupNorm/SiLU, flat 256 |
| ``celeba64-wide`` | 3x64x64, flat latent 512, widths 128 -> 1024, LeakyReLU(0.2) |
| ``fmnist32-spatial`` | 1x32x32 Fashion-MNIST, spatial latent 4x8x8, ResBlocks, GroupNorm/SiLU (the xray family at 32 px) |
| ``fmnist28-spatial`` | the same at the native 1x28x28, spatial latent 4x7x7 |
| ``xray128-spatial`` | 1x128x128, spatial latent 64x4x4, attention at 16x16, GroupNorm/SiLU |
| ``xray256-spatial`` | 1x256x256, spatial latent 8x8x8, attention at 16x16, 2-conv up blocks |
"""

from __future__ import annotations

import difflib
from typing import Any

from .config import VAEConfig

__all__ = ["available", "build", "config"]

_PRESETS: dict[str, dict[str, Any]] = {
    "fmnist32": dict(
        in_channels=1, image_size=32, widths=(32, 64), depth=1, block="conv",
        attention_at=(), latent="flat", latent_dim=32, norm="batch", act="leaky_relu",
    ),
    "cifar32": dict(
        in_channels=3, image_size=32, widths=(64, 128, 256, 512), depth=1, block="conv",
        attention_at=(), latent="flat", latent_dim=256, norm="batch", act="leaky_relu",
    ),
    "celeba64": dict(
        in_channels=3, image_size=64, widths=(64, 128, 256, 512), depth=1, block="conv",
        attention_at=(), latent="flat", latent_dim=256, norm="batch", act="leaky_relu",
    ),
    "celeba64-bottleneck": dict(
        in_channels=3, image_size=64, widths=(64, 128, 256, 512), depth=1,
        block="bottleneck", se=True, layer_scale=1e-6, attention_at=(), latent="flat",
        latent_dim=256, norm="group", act="silu",
    ),
    "celeba64-wide": dict(
        in_channels=3, image_size=64, widths=(128, 256, 512, 1024), depth=1, block="conv",
        attention_at=(), latent="flat", latent_dim=512, norm="batch", act="leaky_relu",
        act_kwargs={"negative_slope": 0.2},
    ),
    # the xray-spatial family at 32 px: the benchmarks' spatial recipe
    "fmnist32-spatial": dict(
        in_channels=1, image_size=32, widths=(32, 64), depth=1, block="resblock",
        attention_at=(), latent="spatial", latent_channels=4, norm="group", act="silu",
    ),
    # the same at Fashion-MNIST's native 28 px (latent 4x7x7): 28x28 data needs no padding
    "fmnist28-spatial": dict(
        in_channels=1, image_size=28, widths=(32, 64), depth=1, block="resblock",
        attention_at=(), latent="spatial", latent_channels=4, norm="group", act="silu",
    ),
    "xray128-spatial": dict(
        in_channels=1, image_size=128, widths=(32, 64, 128, 256, 256), depth=1,
        block="resblock", attention_at=(16,), latent="spatial", latent_channels=64,
        norm="group", act="silu",
    ),
    "xray256-spatial": dict(
        in_channels=1, image_size=256, widths=(32, 64, 128, 256, 256), depth=1,
        decoder_depth=2, block="resblock", attention_at=(16,), latent="spatial",
        latent_channels=8, norm="group", act="silu",
    ),
}  # fmt: skip


def available() -> list[str]:
    """Names of the built-in presets.

    Example:
        >>> import vaekit as vk
        >>> "celeba64-bottleneck" in vk.presets.available()
        True
    """
    return list(_PRESETS)


def config(name: str, **overrides: Any) -> VAEConfig:
    """The :class:`~vaekit.VAEConfig` of a preset, with optional field overrides.

    Example:
        >>> import vaekit as vk
        >>> vk.presets.config("xray256-spatial").latent_shape
        (8, 8, 8)
        >>> vk.presets.config("fmnist32", latent_dim=16).latent_shape
        (16,)
    """
    if not isinstance(name, str):
        raise TypeError(f"preset name must be a str, got {type(name).__name__}")
    if name not in _PRESETS:
        close = difflib.get_close_matches(name, _PRESETS, n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise ValueError(f"unknown preset {name!r}; available: {available()}{hint}")
    return VAEConfig(**{**_PRESETS[name], **overrides})


def build(name: str, **overrides: Any):
    """A freshly initialised :class:`~vaekit.VAE` for a preset.

    Example:
        >>> import torch, vaekit as vk
        >>> vae = vk.presets.build("fmnist32")
        >>> vae(torch.rand(2, 1, 32, 32)).recon.shape
        torch.Size([2, 1, 32, 32])
    """
    from .models import VAE

    return VAE(config(name, **overrides))
