"""Small, dependency-free data helpers: Fashion-MNIST from the Debian package.

``apt-get install dataset-fashion-mnist`` puts the four gzip'd IDX files of Xiao et al. 2017
under ``/usr/share/datasets/fashion-mnist/``; :func:`load_fashion_mnist` reads them into a
float tensor in [0, 1]. (For folders of your own images use torchvision's ``ImageFolder``.)
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch

from ._validation import check_choice

__all__ = ["FASHION_MNIST_CLASSES", "FASHION_MNIST_DIR", "load_fashion_mnist", "read_idx"]

FASHION_MNIST_DIR = Path(
    os.environ.get("VAEKIT_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
)
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzip'd) into a numpy array (LeCun's MNIST format)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4]!r})")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = data[4 + 4 * ndim :]
    if len(body) != expected:
        raise ValueError(f"{path} is truncated: expected {expected} bytes of data, got {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def load_fashion_mnist(
    split: str = "train",
    *,
    root: str | os.PathLike | None = None,
    pad_to: int | None = 32,
    limit: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST images and labels.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        root: folder with the IDX files (default ``/usr/share/datasets/fashion-mnist``, or
            the ``VAEKIT_FASHION_MNIST`` environment variable).
        pad_to: zero-pad the 28x28 images to this size (32 for the ``fmnist32`` preset);
            ``None`` keeps 28x28.
        limit: keep only the first ``limit`` images.

    Returns:
        ``(images, labels)``: float32 (N, 1, S, S) in [0, 1] and int64 (N,).
    """
    check_choice(split, tuple(_FILES), "split")
    root = Path(root) if root is not None else FASHION_MNIST_DIR
    img_file, lbl_file = (root / name for name in _FILES[split])
    if not img_file.is_file() or not lbl_file.is_file():
        raise FileNotFoundError(
            f"Fashion-MNIST not found: expected {img_file.name} and {lbl_file.name} in {root}. "
            "Install it with `apt-get update && apt-get install -y dataset-fashion-mnist` (as "
            "root), or pass root= a folder holding the four IDX .gz files"
        )
    images = read_idx(img_file)
    labels = read_idx(lbl_file)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    if pad_to is not None:
        h = x.shape[-1]
        if pad_to < h:
            raise ValueError(f"pad_to must be >= {h}, got {pad_to}")
        lo = (pad_to - h) // 2
        x = torch.nn.functional.pad(x, (lo, pad_to - h - lo, lo, pad_to - h - lo))
    return x, torch.from_numpy(labels.astype(np.int64))
