"""N-layer PatchGAN discriminator (Isola et al. 2017, pix2pix), as in VQGAN / latent diffusion.

A stack of 4×4 convolutions: ``layers`` of stride 2 (widths ``width · min(2^i, 8)``), one more
of stride 1, then a 4×4 conv to one logit per location. Each logit judges one receptive-field
patch (70×70 px for ``layers=3``), so the discriminator penalises blur and texture errors
locally and works at any image size from ``3 · 2^layers`` pixels up. Weights start at
N(0, 0.02) (the DCGAN/pix2pix initialisation), norms' scales at N(1, 0.02).
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_image, check_int
from ..blocks.factory import ActSpec, NormSpec, _norm_is_none, get_act_layer, get_norm_layer
from .registry import register

__all__ = ["PatchGAN"]


def _init_(module: nn.Module) -> None:
    """DCGAN/pix2pix initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


@register("patchgan")
class PatchGAN(nn.Module):
    """N-layer PatchGAN: images ``(B, C, H, W)`` → logits ``(B, 1, h, w)``, higher = real.

    Args:
        in_channels: image channels (1 for Fashion-MNIST and X-rays, 3 for RGB).
        width: channels of the first conv; level ``i`` has ``width · min(2^i, 8)``.
        layers: stride-2 convolutions (3 in pix2pix and latent diffusion). The logits map is
            ``floor(H / 2^layers) - 2`` pixels high: inputs need at least ``3 · 2^layers``
            pixels a side (24 for ``layers=3``; 1×1 logits at 28 px, 30×30 at 256 px).
        norm: ``"batch"`` (pix2pix's default), ``"group"``, ``"layer"``, ``"none"``, a class or
            a callable ``(channels) -> nn.Module``; never on the first and last conv.
        act: activation after each conv but the last (LeakyReLU with slope 0.2 by default).
        spectral_norm: wrap every conv in spectral normalisation (Miyato et al. 2018), which
            bounds the discriminator's Lipschitz constant; usually with ``norm="none"``.

    Shape:
        - Input: ``(B, in_channels, H, W)`` with ``H, W >= min_size``.
        - Output: ``(B, 1, floor(H / 2^layers) - 2, floor(W / 2^layers) - 2)``.

    Example:
        >>> import torch, vaekit as vk
        >>> disc = vk.discriminators.PatchGAN(in_channels=3, width=8, layers=3)
        >>> disc(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 1, 6, 6])
        >>> disc.min_size
        24
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 64,
        layers: int = 3,
        norm: NormSpec = "batch",
        act: ActSpec = "leaky_relu",
        *,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels")
        self.width = check_int(width, "width")
        self.layers = check_int(layers, "layers")
        if not isinstance(spectral_norm, bool):
            raise TypeError(f"spectral_norm must be a bool, got {type(spectral_norm).__name__}")
        norm_layer = get_norm_layer(norm)
        act_layer = get_act_layer(act, **({"negative_slope": 0.2} if act == "leaky_relu" else {}))
        bias = _norm_is_none(norm)  # a norm's shift makes a conv bias redundant

        def conv(c_in: int, c_out: int, stride: int, *, with_bias: bool) -> nn.Conv2d:
            layer = nn.Conv2d(c_in, c_out, 4, stride=stride, padding=1, bias=with_bias)
            _init_(layer)
            if spectral_norm:
                layer = nn.utils.parametrizations.spectral_norm(layer)
            return layer

        body: list[nn.Module] = [conv(in_channels, width, 2, with_bias=True), act_layer()]
        c_out = width
        for i in range(1, layers + 1):
            c_in, c_out = c_out, width * min(2**i, 8)
            stride = 2 if i < layers else 1
            norm_module = norm_layer(c_out)
            _init_(norm_module)
            body += [conv(c_in, c_out, stride, with_bias=bias), norm_module, act_layer()]
        self.body = nn.Sequential(*body)
        self.head = conv(c_out, 1, 1, with_bias=True)  # one logit per patch
        self.min_size = 3 * 2**layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "PatchGAN input", channels=self.in_channels)
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(
                f"PatchGAN input must be at least {self.min_size}x{self.min_size} pixels for "
                f"layers={self.layers}, got {tuple(x.shape[-2:])}; use fewer layers "
                f"(layers={self.layers - 1} needs {self.min_size // 2})"
                if self.layers > 1
                else f"PatchGAN input must be at least {self.min_size}x{self.min_size} pixels, "
                f"got {tuple(x.shape[-2:])}"
            )
        return self.head(self.body(x))

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, width={self.width}, layers={self.layers}"
