"""``VAEConfig``: the plain, serialisable description of an Encoder/Decoder/VAE.

Geometry: every level halves the resolution with ``ceil`` (so any size works: 28 -> 14 -> 7
-> 4), and the decoder upsamples back to the *exact* size of each encoder level. There is no
padding or cropping: a 28x28 input gives a 28x28 output.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._validation import check_choice, check_int, check_number
from .blocks.registry import REGISTRY, block_options, takes_option

__all__ = ["ACTS", "BLOCKS", "LATENTS", "NORMS", "OUTPUTS", "VARIANCES", "VAEConfig"]

# The built-in body blocks. Configs are checked against the block registry, not this tuple:
# vk.blocks.available() lists every usable name, your own registered blocks included.
BLOCKS = ("bottleneck", "resblock", "conv", "preact")
LATENTS = ("flat", "spatial")
OUTPUTS = ("sigmoid", "identity")
VARIANCES = ("none", "pixel", "global")
NORMS = ("group", "batch", "layer", "none")
ACTS = ("silu", "relu", "leaky_relu", "gelu", "tanh")
UPSAMPLE_MODES = ("bilinear", "nearest")


# The flat bottleneck fields and dropout are aliases that fill a block's options:
# option name -> (config field, the field's default; a non-default field counts as given).
_BOTTLENECK_ALIASES = {
    "ratio": ("bottleneck_ratio", 4),
    "se": ("se", True),
    "layer_scale": ("layer_scale", 1e-6),
}
_DROPOUT_ALIAS = {"dropout": ("dropout", 0.0)}


def _block_name(name: object, where: str) -> str:
    """The registry's canonical spelling of a block name; an unknown one says how to fix it."""
    if not isinstance(name, str):
        raise TypeError(f"{where} must be a block name (str), got {type(name).__name__} ({name!r})")
    if name not in REGISTRY:
        message = REGISTRY.unknown_message(name)
        raise ValueError(
            f"{where}: {message}{'' if message.endswith('?') else '.'} If {name!r} is a block of "
            f"your own, import the code that registers it (vk.blocks.register({name!r})) before "
            f"building or loading this config"
        )
    return REGISTRY.canonical(name)


@dataclass
class VAEConfig:
    """Everything needed to build :class:`~vaekit.Encoder`, :class:`~vaekit.Decoder` and
    :class:`~vaekit.VAE`; validated on construction.

    Args:
        in_channels: image channels (1 for grayscale, 3 for RGB; any positive int).
        image_size: side of a square image, or ``(H, W)``; stored as ``(H, W)``.
        widths: channels per level. Each level halves the resolution (ceil), so the latent
            grid is ``image_size / 2**len(widths)`` rounded up.
        depth: blocks per encoder level (0 = only the strided downsampling convs).
        decoder_depth: blocks per decoder level (default: ``depth``).
        block: the body block, by registry name (:func:`vaekit.blocks.available`), for every
            level, or a tuple with one name per level (``len(widths)`` names). Built in:
            ``"bottleneck"`` (ResidualBottleneck + SE + LayerScale), ``"resblock"``,
            ``"preact"`` and ``"conv"`` (ConvNormAct). Next to a block that is not residual
            (``conv``) the up/downsampling carry norm and activation too. Your own blocks:
            :func:`vaekit.blocks.register`. Names are stored in the registry's spelling.
        attention_at: feature-map heights that get a SelfAttention block, in encoder and
            decoder; each must be one of :attr:`resolutions`. Default ``None``: ``(16,)``
            where the network has a 16-px level, else ``()`` (so every image size works with
            the defaults); a height you name that the network lacks is a ``ValueError``.
        attention_heads: heads of those attention blocks.
        latent: ``"flat"`` (flatten -> Linear to ``latent_dim``) or ``"spatial"`` (conv heads
            giving ``latent_channels`` x h x w).
        latent_dim: size of a flat latent.
        latent_channels: channels of a spatial latent.
        norm: ``"group"``, ``"batch"``, ``"layer"`` or ``"none"``.
        act: ``"silu"``, ``"relu"``, ``"leaky_relu"``, ``"gelu"`` or ``"tanh"``.
        act_kwargs: keyword arguments of the activation, e.g. ``{"negative_slope": 0.2}``.
        output: ``"sigmoid"`` (images in [0, 1]) or ``"identity"``.
        variance: decoder variance: ``"none"``, ``"pixel"`` (a per-pixel log-variance map)
            or ``"global"`` (one learned log sigma^2, as in sigma-VAE, Rybkin et al. 2021).
        logvar_range: clamp for posterior and decoder log-variances.
        upsample: interpolation of the decoder's Upsample blocks, ``"bilinear"``/``"nearest"``.
        bottleneck_ratio, se, layer_scale: ResidualBottleneck options (``ratio``, ``se``,
            ``layer_scale``); aliases that fill ``block_kwargs`` for ``"bottleneck"`` levels.
        dropout: dropout inside every block that takes a ``dropout`` argument (when > 0).
        block_kwargs: the blocks' own keyword options: one dict for every level, or one dict
            per level (for mixed blocks). An option the level's block does not take is a
            ``ValueError``; so is one given here and, with another value, by its alias field.
            :meth:`block_options` shows what a level's block receives.

    Example:
        >>> import vaekit as vk
        >>> cfg = vk.VAEConfig(in_channels=1, image_size=28, widths=(8, 16), latent_dim=4,
        ...                    attention_at=())
        >>> cfg.resolutions, cfg.latent_shape
        ((28, 14, 7), (4,))
        >>> vk.VAEConfig.from_dict(cfg.to_dict()) == cfg
        True
        >>> mixed = cfg.replace(block=("resblock", "bottleneck"), block_kwargs=({}, {"ratio": 2}))
        >>> mixed.blocks, mixed.block_options(1)
        (('resblock', 'bottleneck'), {'ratio': 2, 'se': True, 'layer_scale': 1e-06})
    """

    in_channels: int = 3
    image_size: int | tuple[int, int] = 64
    widths: tuple[int, ...] = (64, 128, 256, 512)
    depth: int = 1
    decoder_depth: int | None = None
    block: str | tuple[str, ...] = "bottleneck"
    attention_at: tuple[int, ...] | None = None
    attention_heads: int = 1
    latent: str = "flat"
    latent_dim: int = 256
    latent_channels: int = 8
    norm: str = "group"
    act: str = "silu"
    act_kwargs: dict[str, Any] = field(default_factory=dict)
    output: str = "sigmoid"
    variance: str = "none"
    logvar_range: tuple[float, float] = (-10.0, 10.0)
    upsample: str = "bilinear"
    bottleneck_ratio: int = 4
    se: bool = True
    layer_scale: float | None = 1e-6
    dropout: float = 0.0
    block_kwargs: dict[str, Any] | tuple[dict[str, Any], ...] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.in_channels = check_int(self.in_channels, "in_channels")
        size = self.image_size
        if not isinstance(size, (tuple, list)):
            size = (check_int(size, "image_size"),) * 2
        if len(size) != 2:
            raise TypeError(f"image_size must be an int or (H, W) of ints, got {self.image_size!r}")
        self.image_size = (check_int(size[0], "image_size[0]"), check_int(size[1], "image_size[1]"))

        if not isinstance(self.widths, (tuple, list)):
            raise TypeError(f"widths must be a tuple of ints, got {self.widths!r}")
        if not self.widths:
            raise ValueError("widths must name at least one level, got ()")
        # plain ints stored (numpy ints would not survive to_dict -> JSON)
        self.widths = tuple(check_int(w, f"widths[{i}]") for i, w in enumerate(self.widths))
        self.depth = check_int(self.depth, "depth", minimum=0)
        if self.decoder_depth is not None:
            self.decoder_depth = check_int(self.decoder_depth, "decoder_depth", minimum=0)

        check_choice(self.latent, LATENTS, "latent")
        check_choice(self.norm, NORMS, "norm")
        check_choice(self.act, ACTS, "act")
        check_choice(self.output, OUTPUTS, "output")
        check_choice(self.variance, VARIANCES, "variance")
        check_choice(self.upsample, UPSAMPLE_MODES, "upsample")
        if not isinstance(self.act_kwargs, dict):
            raise TypeError(f"act_kwargs must be a dict, got {type(self.act_kwargs).__name__}")
        self.act_kwargs = dict(self.act_kwargs)
        self.latent_dim = check_int(self.latent_dim, "latent_dim")
        self.latent_channels = check_int(self.latent_channels, "latent_channels")
        self.attention_heads = check_int(self.attention_heads, "attention_heads")
        self.bottleneck_ratio = check_int(self.bottleneck_ratio, "bottleneck_ratio")

        # None = "attention at 16 px if there is such a level"; remembered so that
        # replace(image_size=...) resolves it again for the new geometry
        self._auto_attention = self.attention_at is None
        if self.attention_at is None:
            self.attention_at = (16,) if 16 in self.resolutions else ()
        if not isinstance(self.attention_at, (tuple, list)):
            try:  # one height
                self.attention_at = (check_int(self.attention_at, "attention_at"),)
            except TypeError:
                raise TypeError(
                    f"attention_at must be a tuple of feature-map heights (ints) or None, got "
                    f"{self.attention_at!r}"
                ) from None
        self.attention_at = tuple(
            check_int(r, f"attention_at[{i}]") for i, r in enumerate(self.attention_at)
        )
        for r in self.attention_at:
            if r not in self.resolutions:
                raise ValueError(
                    f"attention_at entry {r} is not a feature-map height of this network; "
                    f"the levels have heights {self.resolutions} (image {self.image_size}, "
                    f"{len(self.widths)} halvings)"
                )
        for r in self.attention_at:
            w = self._width_at(r)
            if w % self.attention_heads:
                raise ValueError(
                    f"attention at height {r} has {w} channels, not divisible by "
                    f"attention_heads={self.attention_heads}"
                )

        lr = tuple(float(v) for v in self.logvar_range)
        if len(lr) != 2 or not lr[0] < lr[1]:
            raise ValueError(f"logvar_range must be (low, high) with low < high, got {lr}")
        self.logvar_range = lr
        check_number(self.dropout, "dropout", at_least=0.0, below=1.0)
        if self.layer_scale is not None:
            check_number(self.layer_scale, "layer_scale", at_least=0.0)
        if not isinstance(self.se, bool):
            raise TypeError(f"se must be a bool, got {type(self.se).__name__}")
        self._check_blocks()

    def _check_blocks(self) -> None:
        """Block names through the registry (canonical spelling), then every level's options."""
        n = len(self.widths)
        if isinstance(self.block, (tuple, list)):
            if len(self.block) != n:
                raise ValueError(
                    f"block names one block per level: got {len(self.block)} names "
                    f"{tuple(self.block)} for {n} widths {self.widths}; give {n} names or one"
                )
            self.block = tuple(_block_name(b, f"block[{i}]") for i, b in enumerate(self.block))
        else:
            self.block = _block_name(self.block, "block")
        kw = self.block_kwargs
        if isinstance(kw, Mapping):
            self.block_kwargs = dict(kw)
        elif isinstance(kw, (tuple, list)):
            if len(kw) != n:
                raise ValueError(
                    f"block_kwargs gives one dict per level: got {len(kw)} dicts for {n} widths "
                    f"{self.widths}; give {n} dicts or one dict for every level"
                )
            for i, d in enumerate(kw):
                if not isinstance(d, Mapping):
                    raise TypeError(f"block_kwargs[{i}] must be a dict, got {type(d).__name__}")
            self.block_kwargs = tuple(dict(d) for d in kw)
        else:
            raise TypeError(
                f"block_kwargs must be a dict or a tuple of dicts (one per level), got "
                f"{type(kw).__name__}"
            )
        for level in range(n):
            self.block_options(level)  # raises for options a level's block does not take

    @property
    def blocks(self) -> tuple[str, ...]:
        """The body block of every level (registry names), encoder order.

        The mid stage at the latent grid uses the last level's block.
        """
        if isinstance(self.block, tuple):
            return self.block
        return (self.block,) * len(self.widths)

    def block_options(self, level: int) -> dict[str, Any]:
        """The keyword options the builder passes to the block of ``level`` (0 = top).

        ``block_kwargs`` (the dict for every level or this level's dict), filled in from the
        alias fields: ``bottleneck_ratio``/``se``/``layer_scale`` as ``ratio``/``se``/
        ``layer_scale`` for a ``"bottleneck"``, and ``dropout`` (when > 0) for a block that
        takes a ``dropout`` argument. Besides these, every block gets ``in_ch``, ``out_ch``,
        ``norm`` and ``act`` (the config's activation with ``act_kwargs`` bound).
        """
        n = len(self.widths)
        level = check_int(level, "level", minimum=-n, maximum=n - 1) % n
        name = self.blocks[level]
        single = isinstance(self.block_kwargs, dict)
        own = self.block_kwargs if single else self.block_kwargs[level]
        aliases = dict(_BOTTLENECK_ALIASES) if name == "bottleneck" else {}
        if self.dropout and takes_option(name, "dropout"):
            aliases.update(_DROPOUT_ALIAS)
        options: dict[str, Any] = {}
        for option, (fname, default) in aliases.items():
            value = getattr(self, fname)
            if option in own and value != default and own[option] != value:
                raise ValueError(
                    f"{fname}={value!r} and block_kwargs {option}={own[option]!r} disagree for "
                    f"the {name!r} block of level {level}; give the option once"
                )
            options[option] = value
        options.update(own)
        what = "block_kwargs" if single else f"block_kwargs[{level}]"
        if single and len(set(self.blocks)) > 1:
            what += " (one dict for every level; give one dict per level for mixed blocks)"
        return block_options(name, options, what)

    # -- derived geometry ----------------------------------------------------------------
    @property
    def sizes(self) -> tuple[tuple[int, int], ...]:
        """(H, W) of every level, from the image down to the latent grid (len(widths) + 1)."""
        h, w = self.image_size
        out = [(h, w)]
        for _ in self.widths:
            h, w = math.ceil(h / 2), math.ceil(w / 2)
            out.append((h, w))
        return tuple(out)

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Heights of the feature maps, the values ``attention_at`` may name."""
        return tuple(h for h, _ in self.sizes)

    def _width_at(self, height: int) -> int:
        idx = self.resolutions.index(height)
        return self.widths[min(idx, len(self.widths) - 1)]

    @property
    def latent_size(self) -> tuple[int, int]:
        """(h, w) of the bottom feature map (and of a spatial latent)."""
        return self.sizes[-1]

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one latent: ``(latent_dim,)`` or ``(latent_channels, h, w)``."""
        if self.latent == "flat":
            return (self.latent_dim,)
        return (self.latent_channels, *self.latent_size)

    @property
    def data_shape(self) -> tuple[int, int, int]:
        """Shape of one image: ``(C, H, W)``."""
        return (self.in_channels, *self.image_size)

    @property
    def data_dims(self) -> int:
        """D_x = C * H * W, the number the KL is divided by in ``VAELoss``."""
        c, h, w = self.data_shape
        return c * h * w

    @property
    def dec_depth(self) -> int:
        """Blocks per decoder level."""
        return self.depth if self.decoder_depth is None else self.decoder_depth

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VAEConfig:
        """Build from :meth:`to_dict`'s output; unknown keys are an error (they are typos)."""
        if not isinstance(data, dict):
            raise TypeError(f"from_dict expects a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown VAEConfig field(s) {unknown}; known fields: {sorted(known)}")
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
        return cls(**kwargs)

    def replace(self, **changes: Any) -> VAEConfig:
        """A copy with some fields changed (validated again).

        A default ``attention_at`` (``None``) is resolved again for the new geometry.
        """
        if getattr(self, "_auto_attention", False) and "attention_at" not in changes:
            changes["attention_at"] = None
        return dataclasses.replace(self, **changes)
