"""Helpers for the tests of examples/train.py: load it as a module, write fake data."""

from __future__ import annotations

import functools
import gzip
import importlib.util
import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TRAIN = EXAMPLES / "train.py"
RECIPES = EXAMPLES / "recipes"


@functools.cache
def trainer():
    """examples/train.py as a module (``main(argv)`` runs it in this process)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location("vaekit_example_train", TRAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_fashion_mnist(root: Path, n_train: int = 96, n_test: int = 40, seed: int = 0) -> Path:
    """The four Fashion-MNIST IDX files with learnable fakes: class k is a bright bar at row 2k."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            images[i, 2 + 2 * k : 4 + 2 * k, 4:24] = 230
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


def write_images(
    folder: Path, n: int, size: tuple[int, int], mode: str = "L", *, seed: int = 0, ext: str = "png"
) -> Path:
    """``n`` random images of ``size`` (w, h) in PIL ``mode``, half of them in a subfolder."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    w, h = size
    for i in range(n):
        shape = (h, w, 3) if mode == "RGB" else (h, w)
        img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        img.convert(mode).save(folder / ("sub" if i % 2 else ".") / f"img{i:03d}.{ext}")
    return folder
