"""Residual bottleneck block with optional Squeeze-and-Excitation and LayerScale.

The bottleneck (He et al. 2016, "Deep Residual Learning for Image Recognition") squeezes the
channels with a 1×1 conv, does the spatial 3×3 work at the reduced width and expands back with
a 1×1 conv, so a block at width C costs ~C²·(2/ratio + 9/ratio²) instead of 18·C² MACs per pixel.
SE (Hu et al. 2018) re-weights the branch's channels. LayerScale (Touvron et al. 2021, "Going
deeper with Image Transformers", CaiT) multiplies the branch by a learnable per-channel γ that
starts tiny (1e-6), so every block starts as (almost) the identity and a deep encoder/decoder
trains stably from step 0; the branch grows in only as fast as the gradients ask for.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .._validation import check_image, check_int, check_number
from .conv import ConvNormAct
from .factory import ActSpec, NormSpec
from .registry import register
from .squeeze_excite import SqueezeExcitation

__all__ = ["LayerScale", "ResidualBottleneck"]


class LayerScale(nn.Module):
    """Per-channel learnable scale ``γ ⊙ x`` for NCHW tensors (Touvron et al. 2021).

    Args:
        channels: C.
        init_value: initial value of every γ_c.

    Shape:
        - Input: ``(B, C, H, W)``. Output: same shape.

    Example:
        >>> import torch, vaekit as vk
        >>> ls = vk.blocks.LayerScale(4, init_value=0.5)
        >>> ls(torch.ones(1, 4, 2, 2)).unique().tolist()
        [0.5]
    """

    def __init__(self, channels: int, init_value: float = 1e-6):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((check_int(channels, "channels"),), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.to(x.dtype)[:, None, None]

    def extra_repr(self) -> str:
        return f"{self.gamma.numel()}"


@register("bottleneck")
class ResidualBottleneck(nn.Module):
    """Bottleneck residual block: ``out = x + γ ⊙ SE(branch(x))``.

    The branch is ``ConvNormAct(C, h, 1)`` → ``ConvNormAct(h, h, 3)`` → dropout →
    ``ConvNormAct(h, C, 1, act="none")`` (conv + norm, so the branch is unit-scale and γ alone sets
    its size) → optional SE. There is no activation after the sum, so with a tiny γ the block is
    the identity at init. The hidden width is ``h = min(C, max(C // ratio, 8))``: the floor of 8
    keeps the 3×3 conv and its GroupNorm meaningful in narrow layers (C = 16 gives h = 8, not 4),
    and it never widens past C.

    The block keeps its width. It takes the registry's leading arguments
    ``(in_ch, out_ch, *, norm, act)`` as well as the older ``(channels, ratio=...)``: a
    second positional argument is ``out_ch`` and must equal ``channels`` (everything after
    it is keyword-only).

    Args:
        channels: C (input = output channels).
        out_ch: output channels; ``None`` or ``channels`` (it cannot change the width).
        ratio: channel reduction of the bottleneck.
        se: add a :class:`SqueezeExcitation` (reduction 4) at the end of the branch.
        layer_scale: initial LayerScale γ; ``None`` or ``0`` disables it (``out = x + branch``).
        norm: norm after each conv (name, class or factory).
        act: activation after the first two convs and inside SE (name, class or factory).
        dropout: dropout probability before the expanding 1×1 conv.

    Shape:
        - Input: ``(B, C, H, W)``. Output: same shape.

    Example:
        >>> import torch, vaekit as vk
        >>> m = vk.blocks.ResidualBottleneck(32, ratio=4, se=True, layer_scale=1e-6)
        >>> x = torch.randn(2, 32, 7, 7)
        >>> m(x).shape
        torch.Size([2, 32, 7, 7])
        >>> bool((m(x) - x).abs().max() < 1e-4)  # near-identity at init
        True
        >>> vk.blocks.ResidualBottleneck(32, 32, norm="group", act="silu").hidden_channels
        8
    """

    residual = True
    changes_channels = False

    def __init__(
        self,
        channels: int,
        out_ch: int | None = None,
        *,
        ratio: int = 4,
        se: bool = True,
        layer_scale: float | None = 1e-6,
        norm: NormSpec = "group",
        act: ActSpec = "silu",
        dropout: float = 0.0,
    ):
        super().__init__()
        self.channels = check_int(channels, "channels")
        if out_ch is not None and check_int(out_ch, "out_ch") != channels:
            raise ValueError(
                f"ResidualBottleneck keeps its width: out_ch must equal channels ({channels}), "
                f"got {out_ch}; pass the reduction as ratio={out_ch} (a keyword) if that was meant"
            )
        self.in_ch = self.out_ch = channels
        check_int(ratio, "ratio")
        dropout = check_number(dropout, "dropout", at_least=0.0, below=1.0)
        self.hidden_channels = min(channels, max(channels // ratio, 8))
        h = self.hidden_channels
        self.reduce = ConvNormAct(channels, h, 1, norm=norm, act=act)
        self.conv = ConvNormAct(h, h, 3, norm=norm, act=act)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.expand = ConvNormAct(h, channels, 1, norm=norm, act="none")
        self.se = SqueezeExcitation(channels, act=act) if se else nn.Identity()
        self.layer_scale = LayerScale(channels, layer_scale) if layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, f"{type(self).__name__} input", channels=self.channels)
        branch = self.expand(self.dropout(self.conv(self.reduce(x))))
        return x + self.layer_scale(self.se(branch))
