"""Decoder: latent z -> image p(x|z), with optional per-pixel or global variance."""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_float_tensor
from ..blocks import Upsample
from ..blocks.factory import make_norm
from ..config import VAEConfig
from ._build import act_layer, level_stage, resample_norm_act

__all__ = ["Decoder"]


class Decoder(nn.Module):
    """Convolutional decoder p(x|z) mirroring :class:`~vaekit.Encoder`.

    Layout: latent -> (Linear + reshape | 3x3 conv) -> mid stage -> for each level from the
    bottom [Upsample to that level's exact size, blocks (+ attention)] -> norm/act -> 3x3
    output conv -> ``sigmoid`` or identity. Level ``i`` uses ``config.blocks[i]``, as in the
    encoder. Upsampling is interpolation + conv, never
    ``ConvTranspose2d`` (its uneven kernel overlap paints checkerboards, Odena et al. 2016).

    With ``variance="pixel"`` the output conv also predicts a per-pixel log-variance; with
    ``"global"`` one learned scalar log sigma^2 is used (sigma-VAE). Both are clamped to
    ``config.logvar_range``.

    Shape:
        input (N, *config.latent_shape); output (N, C, H, W).

    Example:
        >>> import torch, vaekit as vk
        >>> cfg = vk.VAEConfig(in_channels=1, image_size=28, widths=(8, 16), latent_dim=4,
        ...                    attention_at=())
        >>> vk.Decoder(cfg)(torch.randn(3, 4)).shape
        torch.Size([3, 1, 28, 28])
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        if not isinstance(config, VAEConfig):
            raise TypeError(f"config must be a vaekit.VAEConfig, got {type(config).__name__}")
        self.config = cfg = config
        widths, sizes = cfg.widths, cfg.sizes
        bottom = widths[-1]
        h, w = cfg.latent_size
        if cfg.latent == "flat":
            self.proj: nn.Module = nn.Linear(cfg.latent_dim, bottom * h * w)
        else:
            self.proj = nn.Conv2d(cfg.latent_channels, bottom, 3, padding=1)
        self.bottom_shape = (bottom, h, w)
        self.mid = level_stage(cfg, -1, bottom, sizes[-1][0], min(cfg.dec_depth, 1))
        self.ups = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.target_sizes: list[tuple[int, int]] = []
        for i in reversed(range(len(widths))):
            in_width = widths[min(i + 1, len(widths) - 1)]
            self.ups.append(
                Upsample(in_width, widths[i], mode=cfg.upsample, **resample_norm_act(cfg, i))
            )
            self.stages.append(level_stage(cfg, i, widths[i], sizes[i][0], cfg.dec_depth))
            self.target_sizes.append(sizes[i])
        self.out_norm = make_norm(cfg.norm, widths[0])
        self.out_act = act_layer(cfg)()
        out_ch = cfg.in_channels * (2 if cfg.variance == "pixel" else 1)
        self.out_conv = nn.Conv2d(widths[0], out_ch, 3, padding=1)
        if cfg.variance == "pixel":
            # the logvar half starts at exactly 0 (sigma = 1) so step 0 is well scaled
            with torch.no_grad():
                self.out_conv.weight[cfg.in_channels :].zero_()
                self.out_conv.bias[cfg.in_channels :].zero_()
        if cfg.variance == "global":
            self.log_sigma2 = nn.Parameter(torch.zeros(()))

    @property
    def last_layer(self) -> nn.Parameter:
        """The weight of the final conv: where an adversarial term's adaptive weight compares
        the reconstruction and adversarial gradients (``vk.losses.Adversarial(last_layer=...)``).
        """
        return self.out_conv.weight

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one latent (without batch)."""
        return self.config.latent_shape

    def _check_z(self, z: torch.Tensor) -> None:
        check_float_tensor(z, "z")
        shape = self.config.latent_shape
        if z.ndim != len(shape) + 1 or tuple(z.shape[1:]) != shape:
            raise ValueError(
                f"z must have shape (N, {', '.join(map(str, shape))}), got {tuple(z.shape)}"
            )

    def decode_with_logvar(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decode to ``(mean image, log-variance or None)``; the logvar has the image's shape."""
        self._check_z(z)
        cfg = self.config
        h = self.proj(z)
        if cfg.latent == "flat":
            h = h.view(z.shape[0], *self.bottom_shape)
        h = self.mid(h)
        for up, stage, size in zip(self.ups, self.stages, self.target_sizes):
            h = stage(up(h, size=size))
        out = self.out_conv(self.out_act(self.out_norm(h)))
        logvar = None
        if cfg.variance == "pixel":
            out, logvar = out.chunk(2, dim=1)
            logvar = logvar.clamp(*cfg.logvar_range)
        elif cfg.variance == "global":
            logvar = self.log_sigma2.clamp(*cfg.logvar_range).to(out.dtype).expand_as(out)
        if cfg.output == "sigmoid":
            out = torch.sigmoid(out)
        return out, logvar

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Decode latents to images (the mean of p(x|z))."""
        return self.decode_with_logvar(z)[0]
