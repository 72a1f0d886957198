"""Shared fixtures: tiny configs so the whole suite runs in minutes on two CPU cores."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

import vaekit as vk

torch.set_num_threads(1)  # pytest-xdist runs two workers on two cores
# "ci" (default): the same examples on every run, so CI is reproducible; "dev" explores
# new random examples each run: HYPOTHESIS_PROFILE=dev bash scripts/test.sh
settings.register_profile("ci", deadline=None, print_blob=True, derandomize=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def tiny_config(**overrides) -> vk.VAEConfig:
    """A 1x16x16 VAE with two levels: milliseconds per forward."""
    base = dict(
        in_channels=1, image_size=16, widths=(4, 8), depth=1, block="resblock",
        attention_at=(), latent="flat", latent_dim=3, latent_channels=2,
    )  # fmt: skip
    base.update(overrides)
    return vk.VAEConfig(**base)


@pytest.fixture
def tiny_cfg() -> vk.VAEConfig:
    return tiny_config()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
