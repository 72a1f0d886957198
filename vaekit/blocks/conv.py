"""``ConvNormAct``: the Conv2d → norm → activation unit that the other blocks are built from.

It also holds the initialisation rule shared by the blocks (:func:`init_conv_`): Kaiming-normal
(He et al. 2015) with the gain of the activation that follows the conv and ``mode="fan_in"``.
fan_in keeps the *forward* activation variance at ~1 through layers that have no norm after them
(``Downsample``/``Upsample`` default to ``norm="none"``), which is what keeps a freshly built
encoder's outputs, and so ``exp(logvar)``, in range at step 0. Biases start at zero.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .._validation import check_image, check_int
from .factory import ActSpec, NormSpec, _norm_is_none, get_act_layer, get_norm_layer
from .registry import register

__all__ = ["ConvNormAct", "init_conv_"]


def _kaiming_args(act: nn.Module | None) -> tuple[str, float]:
    """(nonlinearity, a) for ``nn.init.kaiming_normal_`` given the module after the conv."""
    if act is None or isinstance(act, nn.Identity):
        return "linear", 0.0
    if isinstance(act, nn.LeakyReLU):
        return "leaky_relu", float(act.negative_slope)
    if isinstance(act, nn.Tanh):
        return "tanh", 0.0
    if isinstance(act, nn.Sigmoid):
        return "sigmoid", 0.0
    # ReLU, SiLU, GELU, Mish, ELU and unknown custom activations: the ReLU gain sqrt(2) is the
    # standard choice for this half-rectifying family.
    return "relu", 0.0


def init_conv_(conv: nn.Conv2d, act: nn.Module | None = None) -> nn.Conv2d:
    """Kaiming-normal weights (fan_in, gain of the activation ``act`` that follows) and zero bias.

    Args:
        conv: the convolution to initialise in place (also returned).
        act: the module applied after it; ``None``/``nn.Identity`` means unit (linear) gain.

    Example:
        >>> import torch.nn as nn, vaekit as vk
        >>> conv = vk.blocks.init_conv_(nn.Conv2d(64, 64, 3), nn.ReLU())
        >>> round(conv.weight.std().item(), 2)  # sqrt(2 / (64 * 3 * 3))
        0.06
    """
    nonlinearity, a = _kaiming_args(act)
    nn.init.kaiming_normal_(conv.weight, a=a, mode="fan_in", nonlinearity=nonlinearity)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


@register("conv")
class ConvNormAct(nn.Module):
    """Conv2d → norm → activation (the ``"conv"`` body block: a plain layer, not residual).

    Args:
        in_ch: input channels.
        out_ch: output channels.
        kernel_size: square kernel size.
        stride: convolution stride.
        norm: ``"group" | "batch" | "layer" | "none"``, an ``nn.Module`` class or a callable
            ``(channels) -> nn.Module`` (see :func:`vaekit.blocks.get_norm_layer`).
        act: ``"silu" | "relu" | "leaky_relu" | "gelu" | "tanh" | "none"``, an ``nn.Module``
            class or a zero-argument callable (see :func:`vaekit.blocks.get_act_layer`).
        padding: defaults to ``kernel_size // 2`` ("same" size for odd kernels at stride 1).
        groups: convolution groups (``in_ch`` for depthwise).
        bias: conv bias; ``None`` means "only when there is no norm" (a norm's shift makes a
            conv bias redundant).
        act_kwargs: keyword arguments for the activation, e.g. ``{"negative_slope": 0.2}``.

    Shape:
        - Input: ``(B, in_ch, H, W)``.
        - Output: ``(B, out_ch, H', W')``, ``H' = (H + 2 * padding - kernel_size) // stride + 1``
          (``ceil(H / stride)`` with the default padding and an odd kernel).

    Example:
        >>> import torch, vaekit as vk
        >>> m = vk.blocks.ConvNormAct(3, 16, stride=2, norm="batch", act="relu")
        >>> m(torch.randn(2, 3, 15, 15)).shape
        torch.Size([2, 16, 8, 8])
    """

    residual = False  # no skip: resampling between conv levels carries norm + act too
    changes_channels = True

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        norm: NormSpec = "group",
        act: ActSpec = "silu",
        *,
        padding: int | None = None,
        groups: int = 1,
        bias: bool | None = None,
        act_kwargs: dict[str, object] | None = None,
    ):
        super().__init__()
        norm_layer = get_norm_layer(norm)
        act_layer = get_act_layer(act, **(act_kwargs or {}))
        if bias is None:
            bias = _norm_is_none(norm)
        self.in_ch = check_int(in_ch, "in_ch")
        self.out_ch = check_int(out_ch, "out_ch")
        self.conv = nn.Conv2d(
            in_ch,
            out_ch,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2 if padding is None else padding,
            groups=groups,
            bias=bias,
        )
        self.norm = norm_layer(out_ch)
        self.act = act_layer()
        init_conv_(self.conv, self.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, f"{type(self).__name__} input", channels=self.in_ch)
        return self.act(self.norm(self.conv(x)))
