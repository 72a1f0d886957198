"""Data helpers: Fashion-MNIST from the Debian package, folders of images, a seeded split.

- :func:`load_fashion_mnist` reads the four gzip'd IDX files of Xiao et al. 2017 that
  ``apt-get install dataset-fashion-mnist`` puts under ``/usr/share/datasets/fashion-mnist/``
  into a float tensor in [0, 1].
- :class:`ImageFolder` is a ``torch.utils.data.Dataset`` of every image under a folder
  (recursive) as float32 ``(C, H, W)`` in [0, 1] with the channel count the model expects:
  files that cannot be read are skipped with one :class:`DataWarning`, and 16-bit grayscale
  keeps its precision. Optional CLAHE (contrast-limited adaptive histogram equalisation,
  Zuiderveld 1994) comes from scikit-image, the ``clahe`` extra.
- :func:`train_val_split` splits any dataset into seeded, disjoint train and validation subsets.

Pillow (a torchvision dependency) and scikit-image are imported when an image is first read,
never by ``import vaekit``.
"""

from __future__ import annotations

import gzip
import os
import struct
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset

from ._validation import check_choice, check_int, check_number

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "IMAGE_EXTENSIONS",
    "DataWarning",
    "ImageFolder",
    "ImageHeader",
    "find_images",
    "load_fashion_mnist",
    "read_idx",
    "train_val_split",
]

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


# -- a seeded train/validation split ------------------------------------------------------------
def train_val_split(dataset, val_fraction: float, *, seed: int) -> tuple[Subset, Subset]:
    """Split a dataset into disjoint, seeded train and validation subsets.

    ``round(len(dataset) * val_fraction)`` items (at least one) go to validation, chosen by a
    ``torch.randperm`` from a generator seeded with ``seed``: the same seed and length give
    the same split on every machine and every run, and the global RNG is left untouched. Both
    subsets keep the dataset's order (their ``.indices`` are sorted), so "the first validation
    images" stay the same images.

    Args:
        dataset: anything with ``len()`` and indexing: a ``Dataset``, a tensor, a list of files.
        val_fraction: the share of items for validation, in (0, 1).
        seed: an int >= 0.

    Returns:
        ``(train, val)``: two ``torch.utils.data.Subset`` of ``dataset``.

    Example:
        >>> import torch, vaekit as vk
        >>> train, val = vk.data.train_val_split(torch.arange(10), 0.3, seed=0)
        >>> len(train), len(val), sorted(train.indices + val.indices) == list(range(10))
        (7, 3, True)
        >>> vk.data.train_val_split(torch.arange(10), 0.3, seed=0)[1].indices == val.indices
        True
    """
    check_number(val_fraction, "val_fraction", above=0, below=1)
    check_int(seed, "seed", minimum=0)
    try:
        n = len(dataset)
    except TypeError:
        raise TypeError(
            "dataset must have a length (a map-style Dataset, a tensor or a list), got "
            f"{type(dataset).__name__}"
        ) from None
    n_val = max(1, round(n * val_fraction))
    if n - n_val < 1:
        raise ValueError(
            f"val_fraction {val_fraction:g} of {n} item(s) leaves no training items "
            f"({n_val} for validation, at least 1 always)"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    train, val = perm[n_val:].sort().values, perm[:n_val].sort().values
    return Subset(dataset, train.tolist()), Subset(dataset, val.tolist())


# -- folders of images --------------------------------------------------------------------------
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# PIL modes without colour: one channel (alpha, where there is one, is dropped)
_GRAY_MODES = frozenset(("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"))
_MAX_NAMED = 10  # files named in the skip warning; the rest are counted (all are in .skipped)


class DataWarning(UserWarning):
    """Something about the data worth knowing, such as image files skipped because they could
    not be read. Filter it like any warning:
    ``warnings.filterwarnings("ignore", category=vk.data.DataWarning)``."""


class ImageHeader(NamedTuple):
    """What a file's header says: its path, size ``(H, W)`` and PIL mode (``"L"``, ``"RGB"``,
    ``"I;16"``...)."""

    path: Path
    size: tuple[int, int]
    mode: str

    @property
    def channels(self) -> int:
        """The file's own colour channels: 1 for grayscale modes (16-bit and float included),
        3 for colour ones (RGB, RGBA, palette, CMYK...)."""
        return 1 if self.mode in _GRAY_MODES else 3


def find_images(root: str | os.PathLike) -> list[Path]:
    """Image files under ``root``: recursive, sorted, extensions in :data:`IMAGE_EXTENSIONS`
    (any case); hidden files and folders (names starting with ``.``) are left out.

    Example:
        >>> import tempfile, pathlib, vaekit as vk
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "a").mkdir(); (root / "a" / "x.PNG").touch(); (root / "notes.txt").touch()
        >>> [p.relative_to(root).as_posix() for p in vk.data.find_images(root)]
        ['a/x.PNG']
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path, got {type(root).__name__}")
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{str(root)!r}: no such folder; expected a folder of images")
    if not root.is_dir():
        raise ValueError(f"{str(root)!r} is a file; expected a folder of images")
    files = sorted(
        p for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )  # fmt: skip
    if not files:
        raise ValueError(
            f"no images in {str(root)!r}: expected files ending in "
            f"{', '.join(IMAGE_EXTENSIONS)} (searched recursively)"
        )
    return files


def _pil_image():
    try:
        from PIL import Image
    except ImportError as err:  # torchvision depends on Pillow, so this is rare
        raise ImportError(
            "vk.data.ImageFolder reads files with Pillow: pip install pillow"
        ) from err
    return Image


def _equalize_adapthist():
    try:
        from skimage.exposure import equalize_adapthist
    except ImportError as err:
        raise ImportError(
            'ImageFolder(clahe=True) needs scikit-image: pip install "vaekit[clahe]" '
            "(or pip install scikit-image)"
        ) from err
    return equalize_adapthist


def _scan(files: list[Path], verify: bool) -> tuple[list[ImageHeader], list[tuple[Path, str]]]:
    """Each file's header (or, with ``verify``, its whole decode): ``(readable, skipped)``."""
    image = _pil_image()
    good, bad = [], []
    for path in files:
        try:
            with image.open(path) as img:
                if verify:
                    img.load()
                good.append(ImageHeader(path, (img.height, img.width), img.mode))
        except Exception as err:  # PIL raises many types for broken files
            why = str(err).replace(str(path), path.name)  # the path is named once, outside
            bad.append((path, f"{type(err).__name__}: {why}"))
    return good, bad


def _to_array(img, channels: int) -> np.ndarray:
    """A decoded PIL image as float32 ``(H, W, channels)`` in [0, 1]."""
    mode = img.mode
    if mode.startswith("I") or mode == "F":  # 16/32-bit integer or float grayscale
        arr = np.asarray(img)
        if mode == "F":
            scale = 1.0
            if arr.size and (arr.min() < 0 or arr.max() > 1):
                raise ValueError(
                    f"a float image must hold values in [0, 1], got [{arr.min():g}, {arr.max():g}]"
                )
        else:  # treated as 16 bits per pixel: 65535 is white
            scale = 65535.0
            if arr.size and (arr.min() < 0 or arr.max() > 65535):
                raise ValueError(
                    f"an integer image must hold 16-bit values, got [{arr.min()}, {arr.max()}]"
                )
        gray = arr.astype(np.float32)[..., None] / np.float32(scale)
        return gray if channels == 1 else np.repeat(gray, 3, axis=2)
    # 8-bit modes: Pillow's conversions (ITU-R 601-2 luma for colour -> L, replication for
    # L -> RGB; an alpha channel is dropped, not composited)
    arr = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
    return arr[..., None] if arr.ndim == 2 else arr


def _crop_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The largest centred crop of ``(C, H, W)`` with the aspect ratio of ``size``, resized to
    ``size`` (bilinear, antialiased); an image already of that size is returned unchanged."""
    h, w = x.shape[-2:]
    th, tw = size
    if (h, w) == (th, tw):
        return x
    if w * th > h * tw:  # wider than the target: crop the width
        ch, cw = h, max(1, min(w, round(h * tw / th)))
    else:
        ch, cw = max(1, min(h, round(w * th / tw))), w
    top, left = (h - ch) // 2, (w - cw) // 2
    x = x[:, top : top + ch, left : left + cw]
    if (ch, cw) != (th, tw):
        x = F.interpolate(x[None], size=(th, tw), mode="bilinear", antialias=True)[0]
        # a convex combination of values in [0, 1]: the clamp only removes float rounding
        x = x.clamp_(0.0, 1.0)
    return x


def _clahe(x: torch.Tensor) -> torch.Tensor:
    """CLAHE of a ``(C, H, W)`` image in [0, 1] (scikit-image's ``equalize_adapthist``; colour
    images are equalised on their value channel)."""
    arr = x.permute(1, 2, 0).numpy().astype(np.float64)
    out = _equalize_adapthist()(arr[..., 0] if arr.shape[2] == 1 else arr)
    out = torch.from_numpy(np.asarray(out, dtype=np.float32))
    return out[None] if out.ndim == 2 else out.permute(2, 0, 1).contiguous()


def _image_size(value: object) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"image_size must be an int or (height, width), got {value!r}")
        return check_int(value[0], "image_size[0]"), check_int(value[1], "image_size[1]")
    size = check_int(value, "image_size")
    return size, size


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


class ImageFolder(Dataset):
    """Every image file under a folder as float32 ``(C, H, W)`` in [0, 1], ready for a VAE.

    Unlike torchvision's ``ImageFolder`` (RGB for every file, labels from subfolders, one
    broken file stops the ``DataLoader``), it returns exactly the ``channels`` you ask for
    and skips unreadable files:

    - **Files**: every ``.png .jpg .jpeg .bmp .tif .tiff`` under ``root``, searched
      recursively (:func:`find_images`), or the files you list. Each file's header is read
      once when the dataset is built; files that cannot be read are skipped with **one**
      :class:`DataWarning` naming them (also kept in ``.skipped``). ``verify=True`` decodes
      every file instead (slower; also catches files whose header is fine but whose data is
      truncated, which otherwise raise a ``ValueError`` naming the file when read).
    - **Channels**: every image is converted to ``channels``, whatever the file holds.
      ``channels=1``: colour files become grayscale by Pillow's luma
      (0.299 R + 0.587 G + 0.114 B, rounded to 8 bits). ``channels=3``: a grayscale file's
      channel is copied into R, G and B. Alpha is dropped (not composited). No conversion
      happens unless the file differs from ``channels``; ``.headers[i].channels`` tells what
      each file holds, to refuse a mismatch instead (``examples/train.py`` does).
    - **Bit depth**: 8-bit files are divided by 255; 16-bit grayscale (PIL modes ``I;16``,
      ``I``) by 65,535, keeping its precision; 32-bit float (mode ``F``) must hold values in
      [0, 1]. 16-bit colour files are read at 8 bits (Pillow's limit).
    - **Size**: the largest centred crop with the aspect ratio of ``image_size`` is resized
      to it (bilinear, antialiased); an image already of that size is returned unchanged.
    - **CLAHE** (``clahe=True``, after resizing): contrast-limited adaptive histogram
      equalisation (Zuiderveld 1994) by scikit-image (``pip install "vaekit[clahe]"``),
      common for X-rays.
    - **Flips** (``hflip=True``): each item is flipped left-right with probability 0.5,
      drawn from torch's global RNG (the ``DataLoader`` seeds each worker's), so validation
      items built from the same dataset are flipped too; build a second dataset without
      ``hflip`` for them, or draw flips in the training loop as ``examples/train.py`` does.

    Args:
        root: a folder (searched recursively) or a list of image files.
        image_size: the output size: an int for square images or ``(height, width)``.
        channels: 1 (grayscale) or 3 (RGB).
        clahe: apply CLAHE to every image.
        hflip: random horizontal flips.
        verify: decode every file when the dataset is built, not only its header.

    Shape:
        ``dataset[i]``: float32 ``(channels, H, W)`` in [0, 1]; ``len(dataset)``: the number
        of readable files.

    Attributes:
        files: the readable image files, sorted, in the dataset's order.
        headers: an :class:`ImageHeader` (path, size, PIL mode, channels) per file.
        skipped: ``(path, reason)`` for every file that could not be read.
        scan_warning: the text of the :class:`DataWarning` about them (``None`` if none).

    Example:
        >>> import tempfile, pathlib, numpy as np, vaekit as vk
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> Image.fromarray(np.full((40, 60), 255, np.uint8)).save(root / "white.png")
        >>> Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "black.jpg")
        >>> ds = vk.data.ImageFolder(root, image_size=16, channels=3)
        >>> len(ds), ds[0].shape, float(ds[0].max()), float(ds[1].min())
        (2, torch.Size([3, 16, 16]), 0.0, 1.0)
    """

    def __init__(
        self,
        root: str | os.PathLike | Iterable[str | os.PathLike],
        *,
        image_size: int | tuple[int, int],
        channels: int,
        clahe: bool = False,
        hflip: bool = False,
        verify: bool = False,
    ) -> None:
        self.image_size = _image_size(image_size)
        check_int(channels, "channels")
        check_choice(channels, (1, 3), "channels")
        self.channels = channels
        self.clahe = _check_bool(clahe, "clahe")
        self.hflip = _check_bool(hflip, "hflip")
        _check_bool(verify, "verify")
        if clahe:
            _equalize_adapthist()  # fail now, not in a DataLoader worker
        if isinstance(root, (str, os.PathLike)):
            self.root = Path(root)
            files = find_images(self.root)
        elif isinstance(root, Iterable):
            files = [Path(p) for p in root]
            if not files:
                raise ValueError("the list of image files is empty")
            self.root = Path(os.path.commonpath([p.absolute() for p in files]))
            if not self.root.is_dir():  # one file: its folder
                self.root = self.root.parent
        else:
            raise TypeError(f"root must be a folder or a list of files, got {type(root).__name__}")
        self.headers, self.skipped = _scan(files, verify)
        self.scan_warning: str | None = None  # the DataWarning's text, if one was issued
        if self.skipped:
            named = "; ".join(f"{self._name(p)}: {why}" for p, why in self.skipped[:_MAX_NAMED])
            more = len(self.skipped) - _MAX_NAMED
            named += f"; and {more} more (see .skipped)" if more > 0 else ""
            if not self.headers:
                raise ValueError(
                    f"none of the {len(files)} image files in {self.root} could be read ({named})"
                )
            self.scan_warning = (
                f"skipped {len(self.skipped)} of {len(files)} image files that could not be "
                f"read ({named})"
            )
            warnings.warn(self.scan_warning, DataWarning, stacklevel=2)
        self.files = [h.path for h in self.headers]

    def _name(self, path: Path) -> str:
        try:
            return path.absolute().relative_to(self.root.absolute()).as_posix()
        except ValueError:
            return str(path)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self.files[index]
        try:
            img = _pil_image().open(path)
        except Exception as err:
            raise ValueError(f"could not open {path} ({type(err).__name__}: {err})") from err
        with img:
            try:
                img.load()
            except Exception as err:
                raise ValueError(
                    f"could not decode {path} ({type(err).__name__}: {err}); its header was "
                    "readable, so it was kept when the dataset was built: remove or replace the "
                    "file, or build the ImageFolder with verify=True to skip such files"
                ) from err
            try:
                arr = _to_array(img, self.channels)
            except ValueError as err:  # a value range this loader cannot map to [0, 1]
                raise ValueError(f"{path}: {err}") from None
        x = _crop_resize(
            torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1), self.image_size
        )
        if self.clahe:
            x = _clahe(x)
        if self.hflip and bool(torch.rand(()) < 0.5):
            x = x.flip(-1)
        return x.contiguous()

    def __repr__(self) -> str:
        h, w = self.image_size
        return (
            f"ImageFolder({str(self.root)!r}, {len(self)} images, image_size=({h}, {w}), "
            f"channels={self.channels}, clahe={self.clahe}, hflip={self.hflip})"
        )
