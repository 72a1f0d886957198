"""Building blocks for VAE encoders and decoders: NCHW in, NCHW out.

Every block takes ``norm``/``act`` as a name (:data:`NORMS`, :data:`ACTS`), an ``nn.Module``
class or a factory callable, resolved once in ``__init__`` by :func:`get_norm_layer` /
:func:`get_act_layer`. Blocks check their input's channel count (``ValueError`` naming expected
and actual), run under ``torch.compile(fullgraph=True)``, with ``channels_last`` and bf16 autocast.
One file per kind of block; this package re-exports them flat.

Body blocks are registered by name (:mod:`vaekit.blocks.registry`): :func:`register` adds your
own, :func:`create` builds any of them as ``create(name, in_ch, out_ch, norm=..., act=...)``,
and ``VAEConfig(block=...)`` names them, one for all levels or one per level.
"""

from .attention import SelfAttention
from .bottleneck import LayerScale, ResidualBottleneck
from .conv import ConvNormAct, init_conv_
from .factory import (
    ACTS,
    NORMS,
    ActSpec,
    LayerNorm2d,
    NormSpec,
    get_act_layer,
    get_norm_layer,
    group_count,
    make_act,
    make_norm,
)
from .preact import PreActResBlock
from .registry import (
    BlockTraits,
    available,
    block_options,
    create,
    get,
    name_of,
    register,
    traits,
    unregister,
)
from .resblock import ResBlock
from .sampling import Downsample, Upsample
from .squeeze_excite import SqueezeExcitation

__all__ = [
    "ACTS",
    "NORMS",
    "ActSpec",
    "BlockTraits",
    "ConvNormAct",
    "Downsample",
    "LayerNorm2d",
    "LayerScale",
    "NormSpec",
    "PreActResBlock",
    "ResBlock",
    "ResidualBottleneck",
    "SelfAttention",
    "SqueezeExcitation",
    "Upsample",
    "available",
    "block_options",
    "create",
    "get",
    "get_act_layer",
    "get_norm_layer",
    "group_count",
    "init_conv_",
    "make_act",
    "make_norm",
    "name_of",
    "register",
    "traits",
    "unregister",
]
