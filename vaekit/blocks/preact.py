"""Pre-activation residual block: an identity stream that carries its input's scale.

He et al. 2016b ("Identity Mappings in Deep Residual Networks") move the norm and activation
in front of each conv, so nothing is applied to the sum::

    out = skip(x) + conv3x3(drop(act(norm(conv3x3(act(norm(x)))))))
    skip = identity if in_ch == out_ch else conv1x1 (no norm)

The second conv starts at zero, so the block starts as its skip (Dhariwal & Nichol 2021).

The branch sees a normalised input, but the stream ``x`` passes unchanged, so the block
keeps its input's scale: ``f(c·x) - c·x = f(x) - x`` for a per-sample norm. A post-norm
:class:`~vaekit.blocks.ResBlock` re-normalises the stream instead (a freshly built stack of
them maps ``c·x`` and ``x`` to almost the same output). Latent-diffusion decoders (Rombach et
al. 2022) and guided-diffusion U-Nets use this ordering.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .._validation import check_image, check_int, check_number
from .conv import init_conv_
from .factory import ActSpec, NormSpec, _norm_is_none, get_act_layer, get_norm_layer
from .registry import register

__all__ = ["PreActResBlock"]


@register("preact")
class PreActResBlock(nn.Module):
    """Two 3×3 convs behind norm → act, added to an untouched skip.

    Args:
        in_ch: input channels.
        out_ch: output channels (a 1×1 conv skip when they differ).
        norm: norm before each conv (name, class or factory).
        act: activation before each conv (name, class or factory).
        dropout: dropout probability between the convs.

    Shape:
        - Input: ``(B, in_ch, H, W)``. Output: ``(B, out_ch, H, W)``.

    Example:
        >>> import torch, vaekit as vk
        >>> m = vk.blocks.PreActResBlock(8, 8, norm="group", act="silu")
        >>> x = torch.randn(2, 8, 5, 5)
        >>> m(x).shape
        torch.Size([2, 8, 5, 5])
        >>> torch.equal(m(x), x)  # starts as the identity: the branch's last conv is zero
        True
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
        norm_layer, act_layer = get_norm_layer(norm), get_act_layer(act)
        self.norm1 = norm_layer(in_ch)
        self.act1 = act_layer()
        self.norm2 = norm_layer(out_ch)
        self.act2 = act_layer()
        # norm2 follows conv1, so a bias there would be cancelled (as in ConvNormAct)
        self.conv1 = init_conv_(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=_norm_is_none(norm)), self.act2
        )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        # zero-initialised last conv (as in guided diffusion's ResBlock, Dhariwal & Nichol
        # 2021): the block starts as its skip and the branch grows in from there
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Identity() if in_ch == out_ch else init_conv_(nn.Conv2d(in_ch, out_ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, f"{type(self).__name__} input", channels=self.in_ch)
        h = self.conv1(self.act1(self.norm1(x)))
        h = self.conv2(self.dropout(self.act2(self.norm2(h))))
        return self.skip(x) + h
