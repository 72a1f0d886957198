"""Shared construction helpers for Encoder and Decoder (one code path for every preset)."""

from __future__ import annotations

from torch import nn

from ..blocks import ConvNormAct, ResBlock, ResidualBottleneck, SelfAttention
from ..blocks.factory import get_act_layer
from ..config import VAEConfig


def act_layer(cfg: VAEConfig):
    """The config's activation as a zero-argument module factory (kwargs bound once)."""
    return get_act_layer(cfg.act, **cfg.act_kwargs)


def level_block(cfg: VAEConfig, channels: int) -> nn.Module:
    """One body block of the config's kind at ``channels`` width."""
    act = act_layer(cfg)
    if cfg.block == "bottleneck":
        return ResidualBottleneck(
            channels,
            ratio=cfg.bottleneck_ratio,
            se=cfg.se,
            layer_scale=cfg.layer_scale,
            norm=cfg.norm,
            act=act,
            dropout=cfg.dropout,
        )
    if cfg.block == "resblock":
        return ResBlock(channels, channels, norm=cfg.norm, act=act, dropout=cfg.dropout)
    return ConvNormAct(channels, channels, 3, norm=cfg.norm, act=act)


def level_stage(cfg: VAEConfig, channels: int, height: int, depth: int) -> nn.Sequential:
    """``depth`` blocks, then SelfAttention if ``height`` is in ``cfg.attention_at``."""
    layers: list[nn.Module] = [level_block(cfg, channels) for _ in range(depth)]
    if height in cfg.attention_at:
        layers.append(SelfAttention(channels, heads=cfg.attention_heads, norm=cfg.norm))
    return nn.Sequential(*layers)


def resample_norm_act(cfg: VAEConfig) -> dict:
    """Plain conv stacks need norm+act in their resampling convs (they have no other
    nonlinearity between levels); residual stacks keep resampling linear (pre-activation
    style, the blocks carry the nonlinearity)."""
    if cfg.block == "conv":
        return {"norm": cfg.norm, "act": act_layer(cfg)}
    return {"norm": "none", "act": "none"}


def init_head(layer: nn.Module, gain: float = 0.01) -> None:
    """Near-zero init of a mean/logvar head so q(z|x) starts as ~N(0, I) (no NaN at step 0)."""
    nn.init.xavier_uniform_(layer.weight, gain=gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
