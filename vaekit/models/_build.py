"""Shared construction helpers for Encoder and Decoder (one code path for every preset).

The builder asks each level's block what it is (:func:`vaekit.blocks.traits`) instead of
guessing from its name, so a block registered with :func:`vaekit.blocks.register` is built
exactly like a built-in one.
"""

from __future__ import annotations

from torch import nn

from ..blocks import SelfAttention, create, traits
from ..blocks.factory import get_act_layer
from ..config import VAEConfig


def act_layer(cfg: VAEConfig):
    """The config's activation as a zero-argument module factory (kwargs bound once)."""
    return get_act_layer(cfg.act, **cfg.act_kwargs)


def level_block(cfg: VAEConfig, level: int, channels: int) -> nn.Module:
    """One body block of ``level``'s kind at ``channels`` width (in = out)."""
    return create(
        cfg.blocks[level],
        channels,
        channels,
        norm=cfg.norm,
        act=act_layer(cfg),
        **cfg.block_options(level),
    )


def level_stage(
    cfg: VAEConfig, level: int, channels: int, height: int, depth: int
) -> nn.Sequential:
    """``depth`` blocks of ``level``'s kind, then SelfAttention if ``height`` is in
    ``cfg.attention_at``."""
    layers: list[nn.Module] = [level_block(cfg, level, channels) for _ in range(depth)]
    if height in cfg.attention_at:
        layers.append(SelfAttention(channels, heads=cfg.attention_heads, norm=cfg.norm))
    return nn.Sequential(*layers)


def resample_norm_act(cfg: VAEConfig, level: int) -> dict:
    """Norm and activation of the Downsample/Upsample that belongs to ``level`` (the encoder's
    after that level's blocks, the decoder's into them).

    Plain layers (``residual = False``, e.g. ``conv``) need norm+act in their resampling convs:
    they have no other nonlinearity between levels. Next to residual blocks resampling stays
    linear (pre-activation style; the blocks carry the nonlinearity).
    """
    if traits(cfg.blocks[level]).residual:
        return {"norm": "none", "act": "none"}
    return {"norm": cfg.norm, "act": act_layer(cfg)}


def init_head(layer: nn.Module, gain: float = 0.01) -> None:
    """Near-zero init of a mean/logvar head so q(z|x) starts as ~N(0, I) (no NaN at step 0)."""
    nn.init.xavier_uniform_(layer.weight, gain=gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
