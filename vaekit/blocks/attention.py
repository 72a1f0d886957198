"""Spatial multi-head self-attention over the H·W positions of a feature map.

The usual VAE/diffusion "attention block" (as in Ho et al. 2020 and the Stable Diffusion VAE):
norm → 1×1 conv to q, k, v → softmax(q kᵀ / √d) v per head → 1×1 output projection, added to
the input. It gives a low-resolution stage a global receptive field. The attention itself is
``F.scaled_dot_product_attention``, which picks a fused (flash / memory-efficient) kernel where
one exists. The output projection is zero-initialised (weights and bias), so at init the block
is *exactly* the identity: inserting attention into a network does not change what it computes
until training asks for it (the "zero-init residual" trick of Goyal et al. 2017).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._validation import check_image, check_int
from .conv import init_conv_
from .factory import NormSpec, get_norm_layer

__all__ = ["SelfAttention"]


class SelfAttention(nn.Module):
    """Residual multi-head self-attention for NCHW maps: ``x + proj(attn(norm(x)))``.

    Args:
        channels: C (input = output channels).
        heads: number of attention heads.
        norm: pre-attention norm (name, class or factory).
        head_dim: width of each head. ``None`` gives ``channels // heads`` (then ``channels`` must
            be divisible by ``heads``); otherwise the attention runs at width
            ``heads * head_dim`` and the projections map between that and ``channels``.

    Shape:
        - Input: ``(B, C, H, W)``. Output: same shape. Cost is O((H·W)²) per head: use it at
          low resolutions (16×16 or less).

    Example:
        >>> import torch, vaekit as vk
        >>> attn = vk.blocks.SelfAttention(32, heads=4)
        >>> x = torch.randn(2, 32, 8, 8)
        >>> torch.equal(attn(x), x)  # zero-initialised output projection
        True
    """

    def __init__(
        self, channels: int, heads: int = 1, norm: NormSpec = "group", head_dim: int | None = None
    ):
        super().__init__()
        self.channels = check_int(channels, "channels")
        self.heads = check_int(heads, "heads")
        if head_dim is None:
            if channels % heads != 0:
                raise ValueError(
                    f"channels must be divisible by heads, got channels={channels}, "
                    f"heads={heads}; pick heads from the divisors of {channels} or set head_dim"
                )
            head_dim = channels // heads
        self.head_dim = check_int(head_dim, "head_dim")
        inner = heads * head_dim
        self.norm = get_norm_layer(norm)(channels)
        self.qkv = init_conv_(nn.Conv2d(channels, 3 * inner, 1))
        self.proj = nn.Conv2d(inner, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, f"{type(self).__name__} input", channels=self.channels)
        b, _, h, w = x.shape
        # (B, 3·heads·d, H, W) → (3, B, heads, H·W, d): pure reshapes/permutes with static
        # factors, so torch.compile sees no data-dependent shapes. reshape (not view) also
        # accepts channels_last tensors.
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, self.head_dim, h * w)
        q, k, v = qkv.permute(1, 0, 2, 4, 3).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, H·W, d)
        out = out.transpose(-1, -2).reshape(b, self.heads * self.head_dim, h, w)
        return x + self.proj(out)
