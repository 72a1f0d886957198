"""Encode a dataset into latents for fitting an ex-post prior."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .._inference import batch_images, evaluating, model_device
from .._validation import check_choice, check_int
from ..distributions import as_diagonal_gaussian
from ._progress import progress_bar

__all__ = ["encode_dataset"]


def _batches(data: Any, batch_size: int) -> tuple[Iterable[Any], int | None]:
    """(iterable of batches, number of batches if known)."""
    if isinstance(data, torch.Tensor):
        if data.ndim != 4:
            raise ValueError(
                f"data must be an image batch (N, C, H, W), got shape {tuple(data.shape)}"
            )
        return data.split(batch_size), -(-data.shape[0] // batch_size)
    if isinstance(data, Dataset) and not isinstance(data, torch.utils.data.IterableDataset):
        data = DataLoader(data, batch_size=batch_size, shuffle=False)
    if not isinstance(data, Iterable):
        raise TypeError(
            "data must be an image tensor (N, C, H, W), a Dataset or a DataLoader, got "
            f"{type(data).__name__}"
        )
    try:
        total = len(data)  # type: ignore[arg-type]
    except TypeError:
        total = None
    return data, total


def _encode_fn(model: Any):
    if hasattr(model, "encode") and callable(model.encode):
        return model.encode
    if callable(model):
        return model
    raise TypeError(
        "expected a VAE (anything with .encode(x) -> DiagonalGaussian) or an encoder callable, "
        f"got {type(model).__name__}"
    )


def encode_dataset(
    vae: Any,
    data: Any,
    *,
    use: str = "mean",
    batch_size: int = 256,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Latents of a whole dataset, for :meth:`~vaekit.priors.ExPostPrior.fit`.

    The model runs in ``eval()`` mode under ``torch.inference_mode()``; every submodule's
    train/eval mode is restored afterwards.

    Args:
        vae: a VAE, or any object with ``.encode(x)``, or an encoder callable; it must
            return a :class:`~vaekit.DiagonalGaussian` (or ``(mean, logvar)``).
        data: images ``(N, C, H, W)``, a ``Dataset`` or a ``DataLoader`` yielding images,
            ``(images, labels)`` or dicts with an ``"image"`` key (in order: no shuffling
            is added).
        use: ``"mean"`` (posterior means, Ghosh et al. 2020) or ``"sample"`` (one draw of
            q(z|x) per image: the aggregate posterior itself).
        batch_size: images per forward pass (a tensor or a Dataset is split into batches
            of this size; a DataLoader keeps its own).
        generator: for ``use="sample"``, on the model's device.
        progress: show a progress bar.

    Returns:
        ``(N, *latent_shape)`` float tensor on the CPU (float32 for half-precision models).

    Example:
        >>> import torch, vaekit as vk
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=8, widths=(4,), latent_dim=3,
        ...                           attention_at=(), block="conv"))
        >>> vk.priors.encode_dataset(vae, torch.rand(10, 1, 8, 8), batch_size=4,
        ...                          progress=False).shape
        torch.Size([10, 3])
    """
    check_choice(use, ("mean", "sample"), "use")
    check_int(batch_size, "batch_size")
    encode = _encode_fn(vae)
    module = vae if isinstance(vae, nn.Module) else nn.Module()  # modes restored after
    device = model_device(module)
    batches, total = _batches(data, batch_size)
    out: list[torch.Tensor] = []
    bar = progress_bar(total, "encode_dataset", progress)
    try:
        with evaluating(module), torch.inference_mode():
            for batch in batches:
                x = batch_images(batch)
                if not isinstance(x, torch.Tensor) or not x.is_floating_point():
                    raise TypeError(
                        "images must be a floating-point tensor in [0, 1], got "
                        f"{getattr(x, 'dtype', type(x).__name__)}; convert uint8 images with "
                        "x.float() / 255"
                    )
                q = as_diagonal_gaussian(encode(x.to(device)))
                z = q.mean if use == "mean" else q.sample(generator=generator)
                if z.dtype in (torch.float16, torch.bfloat16):
                    z = z.float()
                out.append(z.cpu())
                bar.update(1)
    finally:
        bar.close()
    if not out:
        raise ValueError("data yielded no images")
    return torch.cat(out).clone()  # outside inference mode: a normal tensor, usable in autograd
