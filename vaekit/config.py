"""``VAEConfig``: the plain, serialisable description of an Encoder/Decoder/VAE.

Geometry: every level halves the resolution with ``ceil`` (so any size works: 28 -> 14 -> 7
-> 4), and the decoder upsamples back to the *exact* size of each encoder level. There is no
padding or cropping: a 28x28 input gives a 28x28 output.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ._validation import check_choice

__all__ = ["ACTS", "BLOCKS", "LATENTS", "NORMS", "OUTPUTS", "VARIANCES", "VAEConfig"]

BLOCKS = ("bottleneck", "resblock", "conv")
LATENTS = ("flat", "spatial")
OUTPUTS = ("sigmoid", "identity")
VARIANCES = ("none", "pixel", "global")
NORMS = ("group", "batch", "layer", "none")
ACTS = ("silu", "relu", "leaky_relu", "gelu", "tanh")
UPSAMPLE_MODES = ("bilinear", "nearest")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive_int(v: object, name: str, *, allow_zero: bool = False) -> None:
    if not _is_int(v):
        raise TypeError(f"{name} must be an int, got {type(v).__name__} ({v!r})")
    if v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {v}")


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
        block: ``"bottleneck"`` (ResidualBottleneck + SE + LayerScale), ``"resblock"`` or
            ``"conv"`` (ConvNormAct; up/downsampling then carry norm and activation too).
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
        bottleneck_ratio, se, layer_scale: ResidualBottleneck options.
        dropout: dropout inside resblocks/bottlenecks.

    Example:
        >>> import vaekit as vk
        >>> cfg = vk.VAEConfig(in_channels=1, image_size=28, widths=(8, 16), latent_dim=4,
        ...                    attention_at=())
        >>> cfg.resolutions, cfg.latent_shape
        ((28, 14, 7), (4,))
        >>> vk.VAEConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    in_channels: int = 3
    image_size: int | tuple[int, int] = 64
    widths: tuple[int, ...] = (64, 128, 256, 512)
    depth: int = 1
    decoder_depth: int | None = None
    block: str = "bottleneck"
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

    def __post_init__(self) -> None:
        _positive_int(self.in_channels, "in_channels")
        size = self.image_size
        if _is_int(size):
            size = (size, size)
        if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(map(_is_int, size))):
            raise TypeError(f"image_size must be an int or (H, W) of ints, got {self.image_size!r}")
        if min(size) < 1:
            raise ValueError(f"image_size must be positive, got {tuple(size)}")
        self.image_size = (int(size[0]), int(size[1]))

        if isinstance(self.widths, int) or not isinstance(self.widths, (tuple, list)):
            raise TypeError(f"widths must be a tuple of ints, got {self.widths!r}")
        self.widths = tuple(self.widths)
        if not self.widths:
            raise ValueError("widths must name at least one level, got ()")
        for i, w in enumerate(self.widths):
            _positive_int(w, f"widths[{i}]")
        _positive_int(self.depth, "depth", allow_zero=True)
        if self.decoder_depth is not None:
            _positive_int(self.decoder_depth, "decoder_depth", allow_zero=True)

        check_choice(self.block, BLOCKS, "block")
        check_choice(self.latent, LATENTS, "latent")
        check_choice(self.norm, NORMS, "norm")
        check_choice(self.act, ACTS, "act")
        check_choice(self.output, OUTPUTS, "output")
        check_choice(self.variance, VARIANCES, "variance")
        check_choice(self.upsample, UPSAMPLE_MODES, "upsample")
        if not isinstance(self.act_kwargs, dict):
            raise TypeError(f"act_kwargs must be a dict, got {type(self.act_kwargs).__name__}")
        self.act_kwargs = dict(self.act_kwargs)
        _positive_int(self.latent_dim, "latent_dim")
        _positive_int(self.latent_channels, "latent_channels")
        _positive_int(self.attention_heads, "attention_heads")
        _positive_int(self.bottleneck_ratio, "bottleneck_ratio")

        # None = "attention at 16 px if there is such a level"; remembered so that
        # replace(image_size=...) resolves it again for the new geometry
        self._auto_attention = self.attention_at is None
        if self.attention_at is None:
            self.attention_at = (16,) if 16 in self.resolutions else ()
        if _is_int(self.attention_at):
            self.attention_at = (self.attention_at,)
        if not isinstance(self.attention_at, (tuple, list)) or not all(
            map(_is_int, self.attention_at)
        ):
            raise TypeError(
                f"attention_at must be a tuple of feature-map heights (ints) or None, got "
                f"{self.attention_at!r}"
            )
        self.attention_at = tuple(self.attention_at)
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
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.layer_scale is not None and self.layer_scale < 0:
            raise ValueError(f"layer_scale must be >= 0 or None, got {self.layer_scale}")
        if not isinstance(self.se, bool):
            raise TypeError(f"se must be a bool, got {type(self.se).__name__}")

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
