"""Squeeze-and-Excitation channel gating (Hu et al. 2018, "Squeeze-and-Excitation Networks").

Global average pooling "squeezes" each channel to one number, a two-layer bottleneck MLP (as
1×1 convs) with a sigmoid "excites" it into a per-channel gate in (0, 1), and the input is
rescaled by the gate. It lets a block re-weight channels from global image context at the cost
of ~2·C²/reduction parameters. The activation defaults to SiLU as in EfficientNet.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .._validation import check_image, check_int
from .conv import init_conv_
from .factory import ActSpec, get_act_layer

__all__ = ["SqueezeExcitation"]


class SqueezeExcitation(nn.Module):
    """Squeeze-and-Excitation: ``x * sigmoid(W2 act(W1 mean_hw(x)))``.

    Args:
        channels: C (input = output channels).
        reduction: hidden width is ``channels // reduction`` ...
        act: activation between the two 1×1 convs (name, class or factory).
        min_hidden: ... but at least ``min_hidden`` (8, as in timm), so narrow layers keep a
            usable gate MLP.

    Shape:
        - Input: ``(B, C, H, W)``. Output: same shape.

    Example:
        >>> import torch, vaekit as vk
        >>> se = vk.blocks.SqueezeExcitation(32, reduction=4)
        >>> se.hidden_channels
        8
        >>> se(torch.randn(2, 32, 7, 7)).shape
        torch.Size([2, 32, 7, 7])
    """

    def __init__(
        self, channels: int, reduction: int = 4, act: ActSpec = "silu", min_hidden: int = 8
    ):
        super().__init__()
        self.channels = check_int(channels, "channels")
        check_int(reduction, "reduction")
        check_int(min_hidden, "min_hidden")
        self.hidden_channels = max(channels // reduction, min_hidden)
        self.reduce = nn.Conv2d(channels, self.hidden_channels, 1)
        self.act = get_act_layer(act)()
        self.expand = nn.Conv2d(self.hidden_channels, channels, 1)
        init_conv_(self.reduce, self.act)
        init_conv_(self.expand)  # feeds the sigmoid: unit (linear) gain keeps it unsaturated

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, f"{type(self).__name__} input", channels=self.channels)
        scale = x.mean(dim=(2, 3), keepdim=True)
        scale = torch.sigmoid(self.expand(self.act(self.reduce(scale))))
        return x * scale
