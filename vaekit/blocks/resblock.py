"""Basic two-conv residual block with a normalised projection skip.

This is the "basic block" of He et al. 2016 ("Deep Residual Learning for Image Recognition", the
torchvision ``BasicBlock``) in its original post-norm ordering, with dropout between the convs
as in Wide ResNets (Zagoruyko & Komodakis 2016)::

    branch = conv3x3 → norm → act → dropout → conv3x3 → norm
    skip   = identity                    if in_ch == out_ch
             conv1x1 → norm              otherwise
    out    = act(branch + skip)

Both branches end in a norm, so when the width changes the two summands have the same
(unit) scale and neither drowns the other; a raw 1×1 projection would start at whatever scale
its init gives. Post-norm also makes the block's output scale independent of its input's scale,
which suits VAE encoders fed raw pixels in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .._validation import check_image, check_int, check_number
from .conv import ConvNormAct
from .factory import ActSpec, NormSpec, get_act_layer
from .registry import register

__all__ = ["ResBlock"]


@register("resblock")
class ResBlock(nn.Module):
    """Two 3×3 convs and a residual: ``act(norm(conv(drop(act(norm(conv(x)))))) + skip(x))``.

    The skip is the identity when ``in_ch == out_ch`` and ``conv1x1 → norm`` otherwise (see the
    module docstring for why it is normalised).

    Args:
        in_ch: input channels.
        out_ch: output channels.
        norm: norm after every conv, the skip's 1×1 included (name, class or factory).
        act: activation after the first conv and after the sum (name, class or factory).
        dropout: dropout probability between the two convs.

    Shape:
        - Input: ``(B, in_ch, H, W)``. Output: ``(B, out_ch, H, W)``.

    Example:
        >>> import torch, vaekit as vk
        >>> m = vk.blocks.ResBlock(8, 16, norm="group", act="silu", dropout=0.1)
        >>> m(torch.randn(2, 8, 15, 15)).shape
        torch.Size([2, 16, 15, 15])
    """

    residual = True
    changes_channels = True

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        norm: NormSpec = "group",
        act: ActSpec = "silu",
        dropout: float = 0.0,
    ):
        super().__init__()
        self.in_ch = check_int(in_ch, "in_ch")
        self.out_ch = check_int(out_ch, "out_ch")
        dropout = check_number(dropout, "dropout", at_least=0.0, below=1.0)
        self.conv1 = ConvNormAct(in_ch, out_ch, 3, norm=norm, act=act)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = ConvNormAct(out_ch, out_ch, 3, norm=norm, act="none")
        if in_ch == out_ch:
            self.skip = nn.Identity()
        else:
            self.skip = ConvNormAct(in_ch, out_ch, 1, norm=norm, act="none")
        self.act = get_act_layer(act)()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, f"{type(self).__name__} input", channels=self.in_ch)
        branch = self.conv2(self.dropout(self.conv1(x)))
        return self.act(branch + self.skip(x))
