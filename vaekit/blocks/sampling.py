"""Resolution changes: ``Downsample`` (×½) and ``Upsample`` (×2 or to an exact size).

Both are residual: a learned conv path plus a cheap fixed resampling path (average pooling or
interpolation, then a 1×1 conv only when the width changes), in the spirit of the residual
resampling shortcuts of Chen et al. 2024 (DC-AE). The fixed path carries the low frequencies
from step 0, so the learned conv only has to add detail.

``Upsample`` is interpolation followed by a 3×3 conv and never ``ConvTranspose2d``: a transposed
conv whose kernel size is not divisible by its stride overlaps unevenly and paints checkerboard
artifacts into decoded images (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts").

Odd sizes: ``Downsample`` maps H to ``ceil(H / 2)`` for any H (7 → 4, 15 → 8), and
``Upsample.forward(x, size=...)`` interpolates to an exact size, so a decoder can retrace an
encoder's sizes exactly (28 → 14 → 7 → 4 → 7 → 14 → 28).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._validation import check_image, check_int, check_number
from .conv import init_conv_
from .factory import ActSpec, NormSpec, _norm_is_none, get_act_layer, get_norm_layer

__all__ = ["Downsample", "Upsample"]

UPSAMPLE_MODES = ("bilinear", "nearest")


def _shortcut(in_ch: int, out_ch: int, bias: bool) -> nn.Module:
    """1×1 conv when the width changes, identity otherwise (unit-gain init: no act on it)."""
    if in_ch == out_ch:
        return nn.Identity()
    return init_conv_(nn.Conv2d(in_ch, out_ch, 1, bias=bias))


def _check_size(size: object) -> None:
    """Require ``(H, W)`` of positive ints (SymInts from a dynamic-shape trace pass through)."""
    if not isinstance(size, (tuple, list, torch.Size)) or len(size) != 2:
        raise ValueError(f"size must be a pair of positive ints (H, W), got {size!r}")
    for i, s in enumerate(size):
        if not isinstance(s, torch.SymInt):
            check_int(s, f"size[{i}]")


class Downsample(nn.Module):
    """Halve H and W: ``act(norm(conv3x3_s2(x) + shortcut(avg_pool2x2(x))))``.

    The pooling uses ``ceil_mode=True`` (a partial last window averages only the pixels it
    covers) and the conv uses stride 2, padding 1, so both paths give ``ceil(H / 2) × ceil(W / 2)``
    for every H, W. The shortcut is a 1×1 conv when ``in_ch != out_ch``, else the identity.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        norm: optional norm after the sum (default ``"none"``: the next block normalises).
        act: optional activation after the norm.

    Shape:
        - Input: ``(B, in_ch, H, W)``. Output: ``(B, out_ch, ceil(H/2), ceil(W/2))``.

    Example:
        >>> import torch, vaekit as vk
        >>> down = vk.blocks.Downsample(8, 16)
        >>> down(torch.randn(2, 8, 15, 7)).shape
        torch.Size([2, 16, 8, 4])
    """

    def __init__(self, in_ch: int, out_ch: int, norm: NormSpec = "none", act: ActSpec = "none"):
        super().__init__()
        self.in_ch = check_int(in_ch, "in_ch")
        self.out_ch = check_int(out_ch, "out_ch")
        bias = _norm_is_none(norm)
        self.act = get_act_layer(act)()
        self.norm = get_norm_layer(norm)(out_ch)
        self.conv = nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1, bias=bias)
        init_conv_(self.conv, self.act)
        self.shortcut = _shortcut(in_ch, out_ch, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, f"{type(self).__name__} input", channels=self.in_ch)
        pooled = F.avg_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)
        return self.act(self.norm(self.conv(x) + self.shortcut(pooled)))


class Upsample(nn.Module):
    """Double H and W (or reach an exact size): ``act(norm(conv3x3(u) + shortcut(u)))``.

    ``u = F.interpolate(x, ...)`` with ``mode="bilinear"`` (``align_corners=False``) or
    ``mode="nearest"`` (run as PyTorch's ``"nearest-exact"``, which samples pixel centres like PIL
    and scikit-image; for integer factors it equals legacy ``"nearest"``, for sizes such as
    4 → 7 it avoids the legacy half-pixel shift). The shortcut is a 1×1 conv when
    ``in_ch != out_ch``, else the identity.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        mode: ``"bilinear"`` or ``"nearest"``.
        scale_factor: zoom factor used when ``forward`` gets no ``size``.
        norm: optional norm after the sum (default ``"none"``).
        act: optional activation after the norm.

    Shape:
        - Input: ``(B, in_ch, H, W)``.
        - Output: ``(B, out_ch, floor(H·s), floor(W·s))``, or ``(B, out_ch, *size)`` when
          ``forward(x, size=size)`` is given.

    Example:
        >>> import torch, vaekit as vk
        >>> up = vk.blocks.Upsample(16, 8, mode="bilinear")
        >>> x = torch.randn(2, 16, 4, 4)
        >>> up(x).shape
        torch.Size([2, 8, 8, 8])
        >>> up(x, size=(7, 7)).shape  # invert an odd ceil-halving (7 → 4 → 7)
        torch.Size([2, 8, 7, 7])
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        mode: str = "bilinear",
        scale_factor: float = 2,
        norm: NormSpec = "none",
        act: ActSpec = "none",
    ):
        super().__init__()
        self.in_ch = check_int(in_ch, "in_ch")
        self.out_ch = check_int(out_ch, "out_ch")
        if mode not in UPSAMPLE_MODES:
            raise ValueError(f"mode must be one of {list(UPSAMPLE_MODES)}, got {mode!r}")
        check_number(scale_factor, "scale_factor", above=0)
        self.mode = mode
        # Resolved once: F.interpolate's name for the mode and its align_corners argument.
        self._interp_mode = "bilinear" if mode == "bilinear" else "nearest-exact"
        self._align_corners = False if mode == "bilinear" else None
        self.scale_factor = float(scale_factor)
        bias = _norm_is_none(norm)
        self.act = get_act_layer(act)()
        self.norm = get_norm_layer(norm)(out_ch)
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias)
        init_conv_(self.conv, self.act)
        self.shortcut = _shortcut(in_ch, out_ch, bias=False)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        check_image(x, f"{type(self).__name__} input", channels=self.in_ch)
        mode, corners = self._interp_mode, self._align_corners
        if size is None:
            u = F.interpolate(x, scale_factor=self.scale_factor, mode=mode, align_corners=corners)
        else:
            _check_size(size)
            u = F.interpolate(x, size=(size[0], size[1]), mode=mode, align_corners=corners)
        return self.act(self.norm(self.conv(u) + self.shortcut(u)))

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, scale_factor={self.scale_factor:g}"
