"""Encoder: image -> q(z|x) as a DiagonalGaussian, flat or spatial latent."""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_image
from ..blocks import ConvNormAct, Downsample
from ..blocks.factory import make_norm
from ..config import VAEConfig
from ..distributions import DiagonalGaussian
from ._build import act_layer, init_head, level_stage, resample_norm_act

__all__ = ["Encoder"]


class Encoder(nn.Module):
    """Convolutional encoder q(z|x) built from a :class:`~vaekit.VAEConfig`.

    Layout: stem conv -> for each level [blocks (+ attention), Downsample] -> mid stage at
    the latent grid -> norm/act -> head. Each level's blocks are ``config.blocks[level]``
    (from the block registry); the mid stage uses the last level's block. The flat head flattens the whole grid into an
    ``nn.Linear`` (no global average pooling: it would throw away *where* things are); the
    spatial head is a 3x3 conv giving ``2 * latent_channels`` maps. Both heads start near
    zero, so at step 0 the posterior is ~N(0, I) whatever the input.

    Shape:
        input (B, C, H, W) with C, H, W from the config; output DiagonalGaussian of shape
        (B, latent_dim) or (B, latent_channels, h, w).

    Example:
        >>> import torch, vaekit as vk
        >>> cfg = vk.VAEConfig(in_channels=1, image_size=28, widths=(8, 16), latent_dim=4,
        ...                    attention_at=())
        >>> q = vk.Encoder(cfg)(torch.rand(2, 1, 28, 28))
        >>> q.mean.shape, q.logvar.shape
        (torch.Size([2, 4]), torch.Size([2, 4]))
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        if not isinstance(config, VAEConfig):
            raise TypeError(f"config must be a vaekit.VAEConfig, got {type(config).__name__}")
        self.config = cfg = config
        widths, sizes = cfg.widths, cfg.sizes
        self.stem = ConvNormAct(cfg.in_channels, widths[0], 3, norm=cfg.norm, act=act_layer(cfg))
        self.stages = nn.ModuleList()
        self.downs = nn.ModuleList()
        for i, width in enumerate(widths):
            out_width = widths[min(i + 1, len(widths) - 1)]
            self.stages.append(level_stage(cfg, i, width, sizes[i][0], cfg.depth))
            self.downs.append(Downsample(width, out_width, **resample_norm_act(cfg, i)))
        bottom = widths[-1]
        # the mid stage at the latent grid uses the last level's block
        self.mid = level_stage(cfg, -1, bottom, sizes[-1][0], min(cfg.depth, 1))
        self.out_norm = make_norm(cfg.norm, bottom)
        self.out_act = act_layer(cfg)()
        h, w = cfg.latent_size
        if cfg.latent == "flat":
            self.head: nn.Module = nn.Sequential(
                nn.Flatten(1), nn.Linear(bottom * h * w, 2 * cfg.latent_dim)
            )
            init_head(self.head[1])
        else:
            self.head = nn.Conv2d(bottom, 2 * cfg.latent_channels, 3, padding=1)
            init_head(self.head)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one latent (without batch)."""
        return self.config.latent_shape

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The bottom feature map before the head: (B, widths[-1], h, w)."""
        cfg = self.config
        check_image(x, "x", channels=cfg.in_channels, size=cfg.image_size)
        h = self.stem(x)
        for stage, down in zip(self.stages, self.downs):
            h = down(stage(h))
        return self.out_act(self.out_norm(self.mid(h)))

    def forward(self, x: torch.Tensor) -> DiagonalGaussian:
        """Encode images to the posterior q(z|x)."""
        stats = self.head(self.features(x))
        mean, logvar = stats.chunk(2, dim=1)
        return DiagonalGaussian(mean, logvar, self.config.logvar_range)
