"""Images in and out of the explorer: files (uploads, ``--images`` folders) to model-sized
tensors, and tensors to the uint8 pictures a browser shows.

Uploads are checked, not guessed: a file that is not an image, or a colour image for a
grayscale model (and the other way round), is a :class:`ExploreError` whose message the page
shows. A grey picture stored as RGB (three equal channels) counts as grayscale.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import check_image, check_int

__all__ = [
    "IMAGE_SUFFIXES",
    "ExploreError",
    "error_map",
    "find_images",
    "fit_images",
    "read_folder",
    "read_image",
    "to_display",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
DISPLAY_TILE = 128  # small tiles are enlarged (nearest neighbour) to at least this many pixels


class ExploreError(ValueError):
    """A user-facing problem (a bad path, file or upload); its message is shown in the page."""


def _channel_name(c: int) -> str:
    return "1-channel grayscale" if c == 1 else f"{c}-channel colour (RGB)"


def read_image(
    path: str | os.PathLike, channels: int, image_size: int | tuple[int, int]
) -> torch.Tensor:
    """Read an image file into a model-sized batch of one, in [0, 1].

    The picture is centre-cropped to the model's aspect ratio and resized (antialiased).
    An alpha channel is dropped; 16-bit files keep their precision.

    Args:
        path: the file. channels: the model's input channels (1 or 3).
        image_size: the model's image side in pixels, or (H, W).

    Shape:
        output: (1, channels, H, W), float32.

    Raises:
        ExploreError: not a readable image, or a channel count the model does not take.

    Example:
        >>> import os, tempfile
        >>> from PIL import Image
        >>> from vaekit.explore.images import read_image
        >>> path = os.path.join(tempfile.mkdtemp(), "grey.png")
        >>> Image.new("L", (40, 30), 128).save(path)
        >>> x = read_image(path, channels=1, image_size=16)
        >>> x.shape, round(float(x.mean()), 3)
        (torch.Size([1, 1, 16, 16]), 0.502)
        >>> read_image(path, channels=3, image_size=16)
        Traceback (most recent call last):
        ...
        vaekit.explore.images.ExploreError: wrong channel count: the model takes 3-channel ...
    """
    from PIL import Image, UnidentifiedImageError

    check_int(channels, "channels", minimum=1)
    _size(image_size)
    name = Path(path).name
    try:
        with Image.open(path) as img:
            img.load()
            array, found = _pixels(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ExploreError(
            f"{name!r} is not an image that can be read (expected a PNG, JPEG, BMP, TIFF, WebP "
            f"or GIF file): {err}"
        ) from err
    if found == 3 and channels == 1 and np.ptp(array, axis=-1).max(initial=0) == 0:
        array, found = array[..., :1], 1  # grey stored as RGB
    if found != channels:
        raise ExploreError(
            f"wrong channel count: the model takes {_channel_name(channels)} images, and "
            f"{name!r} is a {_channel_name(found)} image"
        )
    x = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None]
    return fit_images(x, channels, image_size)


def _pixels(img) -> tuple[np.ndarray, int]:
    """(H, W, C) float32 in [0, 1] and C in (1, 3), from any PIL mode."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if a.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        return (a / top).clip(0, 1).astype(np.float32)[..., None], 1
    if mode == "F":
        return np.asarray(img, dtype=np.float32).clip(0, 1)[..., None], 1
    if mode in ("1", "L", "LA"):
        a = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        return a[..., None], 1
    a = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return a, 3


def _size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        h, w = image_size
        return check_int(h, "image height", minimum=1), check_int(w, "image width", minimum=1)
    if isinstance(image_size, bool) or not isinstance(image_size, int):
        raise TypeError(f"image_size must be an int or (H, W), got {image_size!r}")
    side = check_int(image_size, "image_size", minimum=1)
    return side, side


def fit_images(x: torch.Tensor, channels: int, image_size: int | tuple[int, int]) -> torch.Tensor:
    """Centre-crop to the target's aspect ratio, resize (antialiased bilinear) and match the
    channel count.

    For data sets and folders, not uploads: 1 channel becomes 3 by repetition and 3 become 1
    by their mean.

    Args:
        x: images in [0, 1]. channels: 1 or 3.
        image_size: the side of a square result, or (H, W).

    Shape:
        x: (N, C, H, W); output: (N, channels, H', W').

    Example:
        >>> import torch
        >>> from vaekit.explore.images import fit_images
        >>> fit_images(torch.rand(2, 1, 28, 40), channels=3, image_size=16).shape
        torch.Size([2, 3, 16, 16])
        >>> fit_images(torch.rand(1, 3, 50, 50), channels=3, image_size=(16, 32)).shape
        torch.Size([1, 3, 16, 32])
    """
    check_image(x, "x")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    out_h, out_w = _size(image_size)
    x = x.float()
    h, w = x.shape[-2:]
    if w * out_h > h * out_w:  # too wide: crop the width
        ch, cw = h, max(1, round(h * out_w / out_h))
    else:
        ch, cw = max(1, round(w * out_h / out_w)), w
    top, left = (h - ch) // 2, (w - cw) // 2
    x = x[..., top : top + ch, left : left + cw]
    if (ch, cw) != (out_h, out_w):
        shrink = ch > out_h or cw > out_w
        x = F.interpolate(x, size=(out_h, out_w), mode="bilinear", antialias=shrink).clamp(0, 1)
    if x.shape[1] != channels:
        x = x.mean(1, keepdim=True) if channels == 1 else x[:, :1].expand(-1, 3, -1, -1)
    return x.contiguous()


def find_images(folder: str | os.PathLike, limit: int | None = None) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted), the first ``limit`` of them.

    Example:
        >>> import tempfile
        >>> from vaekit.explore.images import find_images
        >>> find_images(tempfile.mkdtemp())
        []
    """
    root = Path(folder)
    if not root.is_dir():
        raise ExploreError(f"--images {str(folder)!r}: no such folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return files if limit is None else files[:limit]


def to_display(images: torch.Tensor, nrow: int = 8, *, tile: int = DISPLAY_TILE) -> np.ndarray:
    """A uint8 picture for the browser: images tiled in a grid, small ones enlarged.

    Tiles smaller than ``tile`` pixels grow by a whole nearest-neighbour factor (no blur, so
    a pixel stays a pixel); grayscale stays 2-D.

    Args:
        images: (N, C, H, W) or one (C, H, W) image in [0, 1]. nrow: tiles per row.
        tile: the smallest displayed tile side.

    Shape:
        output: (H', W') for 1 channel, (H', W', 3) for 3, uint8.

    Example:
        >>> import torch
        >>> from vaekit.explore.images import to_display
        >>> to_display(torch.rand(1, 32, 32)).shape      # enlarged 4x to 128 px
        (128, 128)
        >>> to_display(torch.rand(6, 3, 32, 32), nrow=3, tile=64).shape
        (134, 200, 3)
    """
    from ..viz import make_grid

    if isinstance(images, torch.Tensor) and images.ndim == 3:
        images = images[None]
    check_image(images, "images")
    check_int(tile, "tile", minimum=1)
    k = -(-tile // min(images.shape[-2:]))  # ceil: the smallest whole factor, 1 for big tiles
    if len(images) == 1:
        grid = images[0].detach().float().cpu().clamp(0, 1)
        grid = grid.repeat_interleave(k, -2).repeat_interleave(k, -1) if k > 1 else grid
    else:
        grid = make_grid(images, nrow=nrow, upscale=k, padding=2)
    array = (grid * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def error_map(x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """|x - recon| averaged over channels, as a heat map (black, red, yellow, white).

    The colours span 0 to the largest error of the image, so that small errors stay visible;
    the largest error is in the page next to it.

    Shape:
        x, recon: (N, C, H, W); output: (N, 3, H, W) in [0, 1].

    Example:
        >>> import torch
        >>> from vaekit.explore.images import error_map
        >>> x = torch.zeros(1, 1, 4, 4); y = x.clone(); y[..., 0, 0] = 0.5
        >>> m = error_map(x, y)
        >>> m.shape, m[0, :, 0, 0].tolist(), m[0, :, 1, 1].tolist()
        (torch.Size([1, 3, 4, 4]), [1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    """
    check_image(x, "x")
    check_image(recon, "recon")
    if x.shape != recon.shape:
        raise ValueError(
            f"x and recon must have the same shape, got {tuple(x.shape)} and {tuple(recon.shape)}"
        )
    err = (x.float() - recon.float()).abs().mean(1)  # (N, H, W)
    top = err.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    t = (err / top).clamp(0, 1) * 3  # three linear ramps: R, then G, then B
    return torch.stack([t.clamp(0, 1), (t - 1).clamp(0, 1), (t - 2).clamp(0, 1)], 1)


def read_folder(
    folder: str | os.PathLike, channels: int, image_size: int | tuple[int, int], limit: int = 64
) -> tuple[torch.Tensor, list[str]]:
    """The first ``limit`` images of a folder, converted to the model's channels and size.

    Unlike :func:`read_image` (uploads), colour and grayscale are converted, as a data set
    loader would; unreadable files are skipped and named in the notes.

    Shape:
        output: (N, channels, H, W) and a list of notes.

    Example:
        >>> import os, tempfile
        >>> from PIL import Image
        >>> from vaekit.explore.images import read_folder
        >>> folder = tempfile.mkdtemp()
        >>> Image.new("RGB", (20, 20), (255, 0, 0)).save(os.path.join(folder, "a.png"))
        >>> x, notes = read_folder(folder, channels=1, image_size=8)
        >>> x.shape, notes
        (torch.Size([1, 1, 8, 8]), [])
    """
    from PIL import Image

    files = find_images(folder)
    images, notes = [], []
    for path in files:
        if len(images) >= limit:
            break
        try:
            with Image.open(path) as img:
                img.load()
                array, _ = _pixels(img)
        except (OSError, SyntaxError, ValueError) as err:
            notes.append(f"skipped {path.name}: {err}")
            continue
        x = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None]
        images.append(fit_images(x, channels, image_size))
    if not images:
        raise ExploreError(
            f"no readable images in {str(folder)!r} (looked for {', '.join(IMAGE_SUFFIXES)})"
        )
    return torch.cat(images), notes
