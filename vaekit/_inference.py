"""Running a model for inference: eval mode, its device, batches of images from a loader.

Shared by the metrics, the pictures (:mod:`vaekit.viz`) and the priors fitted on a trained
model's latents, so it sits below all of them (the layer table is in ``vaekit/__init__.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from ._validation import check_int

__all__ = ["acc_dtype", "batch_images", "evaluating", "iter_images", "model_device"]


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` and ``torch.no_grad()`` inside; every submodule's mode restored after.

    Per-module modes are restored (not just the top-level flag), so a model with a frozen
    backbone kept in eval mode inside a training model comes back exactly as it was.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module (a VAE), got {type(model).__name__}")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        for m, mode in modes:
            m.training = mode


def model_device(model: nn.Module) -> torch.device:
    """Device of the first parameter (or buffer); CPU for parameter-free modules."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def acc_dtype(device: torch.device) -> torch.dtype:
    """float64 for accumulations, except on MPS which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def batch_images(batch: object) -> torch.Tensor:
    """The image tensor of one batch: a tensor, ``(images, labels)`` or a dict of images."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]  # (images, labels) from a torchvision dataset
    if isinstance(batch, dict):
        for key in ("image", "images", "x", "pixel_values"):
            if key in batch:
                return batch[key]
    raise TypeError(
        "each batch must be an image tensor, an (images, labels) tuple or a dict with an "
        f"'image' key, got {type(batch).__name__}"
    )


def iter_images(
    loader: Iterable | torch.Tensor,
    device: torch.device,
    *,
    max_batches: int | None = None,
    batch_size: int = 256,
) -> Iterator[torch.Tensor]:
    """Yield image batches on ``device`` from a DataLoader-like iterable or one tensor.

    A tensor ``(N, C, H, W)`` is split into chunks of ``batch_size``.
    """
    if max_batches is not None:
        check_int(max_batches, "max_batches")
    if isinstance(loader, torch.Tensor):
        loader = loader.split(check_int(batch_size, "batch_size"))
    seen = 0
    for batch in loader:
        if max_batches is not None and seen >= max_batches:
            break
        x = batch_images(batch)
        if not x.is_floating_point():
            raise TypeError(
                f"images must be floating point in [0, 1], got dtype {x.dtype}; convert "
                "uint8 images with x.float() / 255"
            )
        yield x.to(device, non_blocking=True)
        seen += 1
    if seen == 0:
        raise ValueError("the loader yielded no batches")
