"""Helpers for the explorer's tests: tiny models saved as run folders in the trainer's format."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import vaekit as vk

HISTORY = "step,epoch,split,time,lr,beta,bce,kl,kl_raw,recon,total\n"


def tiny_vae(channels: int = 1, size: int = 16, latent: str = "flat", seed: int = 0) -> vk.VAE:
    """A two-level VAE with 4 latent dims (or 2 spatial channels): milliseconds per pass."""
    torch.manual_seed(seed)
    cfg = vk.VAEConfig(
        in_channels=channels, image_size=size, widths=(4, 8), attention_at=(), latent=latent,
        latent_dim=4, latent_channels=2,
    )  # fmt: skip
    vae = vk.VAE(cfg)
    return vae.eval()


def make_run(
    folder: Path,
    vae: vk.VAE,
    *,
    data: str = "fashion-mnist",
    data_root: str | None = None,
    metrics: dict | None = None,
    history: list[tuple] | None = None,
) -> Path:
    """A run folder as examples/train.py writes it: best.safetensors, config.json, and
    metrics.json / history.csv when given (rows: step, split, recon, kl, total)."""
    folder.mkdir(parents=True, exist_ok=True)
    vae.save(folder / "best.safetensors")
    h, w = vae.config.image_size
    config = {
        "args": {"data": data, "data_root": data_root, "preset": None, "seed": 0},
        "model": vae.config.to_dict(),
        "data": {"name": data, "channels": vae.config.in_channels, "image_size": h, "notes": []},
        "versions": {"vaekit": vk.__version__},
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if history is not None:
        lines = [
            f"{s},{s / 100:.2f},{split},{s * 0.1:.1f},0.001,1.0,{r},{k},{k},{r},{r + k / (h * w)}"
            for s, split, r, k in history
        ]
        (folder / "history.csv").write_text(HISTORY + "\n".join(lines) + "\n")
    return folder


def metrics(psnr: float, fd: float, steps: int = 100, sharpness: float | None = None) -> dict:
    """A metrics.json in the trainer's shape (a few of its keys); ``sharpness`` adds the
    sharpness and contrast ratios (reconstructions and N(0, I) samples) the trainer reports."""
    extra = {}
    if sharpness is not None:
        extra = {
            f"{key}_ratio": {"reconstructions": value, "samples": {"standard_normal": value / 2}}
            for key, value in (("sharpness", sharpness), ("contrast", min(1.0, 2 * sharpness)))
        }
    return {
        **extra,
        "run": {
            "steps": steps,
            "best_val_total": 0.5 - psnr / 100,
            "checkpoint": "best.safetensors",
        },
        "eval_split": "test",
        "psnr": psnr,
        "ssim": psnr / 40,
        "neg_elbo_nats_per_dim": 0.3,
        "kl_per_dim": {"mean": 0.5, "values": [1.0, 0.1, 2.0, 0.0]},
        "active_units": 2,
        "fid": {
            "classifier": "/root/.cache/vaekit/fashion-mnist-classifier-32px.safetensors",
            "fd_samples": fd,
        },
    }
