"""Data for the trainer: Fashion-MNIST (Debian package) or any folder of images.

Everything returns images as float32 ``(C, H, W)`` in [0, 1]. Randomness lives elsewhere:
the shuffled order comes from :class:`EpochSampler` (seeded by seed + epoch) and flips are
drawn in the training loop from a generator whose state is checkpointed, so a resumed run
sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

import vaekit as vk

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
MAX_BAD_FRACTION = 0.1  # more unreadable files than this is an error, not a warning


class DataWarning(UserWarning):
    """Something about the data the user should know (e.g. skipped unreadable files)."""


@dataclass
class Data:
    """Training, validation and evaluation sets of one run."""

    name: str  # "fashion-mnist" or the folder
    train: Dataset
    val: Dataset
    test: Dataset  # Fashion-MNIST's test split; the validation set for folders
    eval_split: str  # "test" or "val"
    channels: int
    image_size: int
    # Fashion-MNIST only, for the FID classifier: train_images, train_labels, test_labels
    labelled: dict[str, torch.Tensor] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class TensorImages(Dataset):
    """Images held in memory as one (N, C, H, W) tensor."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def _split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (train, val) index split; both sorted so the first val images are stable."""
    n_val = max(1, round(n * val_fraction))
    if n - n_val < 1:
        raise ValueError(f"--val-fraction {val_fraction} leaves no training images out of {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


# -- Fashion-MNIST ------------------------------------------------------------------------------
def fashion_mnist(args, channels: int, image_size: int) -> Data:
    """Train/val from a seeded split of the 60,000 training images; test kept for metrics."""
    if channels != 1:
        raise ValueError(
            f"Fashion-MNIST is grayscale (1 channel) but the model expects {channels}; use a "
            "1-channel preset such as fmnist32, or --data PATH for colour images"
        )
    if args.channels not in (None, 1):
        raise ValueError(f"--channels {args.channels}: Fashion-MNIST has 1 channel")
    if args.clahe:
        raise ValueError("--clahe applies to image folders (e.g. X-rays), not to Fashion-MNIST")
    if image_size < 28:
        raise ValueError(
            f"Fashion-MNIST images are 28x28; the model expects {image_size}x{image_size}: use "
            "image_size 28 (native) or larger (zero-padded, e.g. 32 for fmnist32)"
        )
    pad_to = None if image_size == 28 else image_size
    try:
        x, y = vk.data.load_fashion_mnist(
            "train", root=args.data_root, pad_to=pad_to, limit=args.limit
        )
        x_test, y_test = vk.data.load_fashion_mnist(
            "test", root=args.data_root, pad_to=pad_to, limit=args.eval_limit
        )
    except FileNotFoundError:
        root = args.data_root or vk.data.FASHION_MNIST_DIR
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {root} (expected train-images-idx3-ubyte.gz and "
            "friends). Install it with `apt-get install dataset-fashion-mnist` (as root; "
            "`bash scripts/get-fashion-mnist.sh` does it), point --data-root at a folder with "
            "the four IDX .gz files, or train on your own images with --data PATH"
        ) from None
    train_idx, val_idx = _split(len(x), args.val_fraction, args.seed)
    return Data(
        name="fashion-mnist", train=TensorImages(x[train_idx]), val=TensorImages(x[val_idx]),
        test=TensorImages(x_test), eval_split="test", channels=1, image_size=image_size,
        labelled={"train_images": x, "train_labels": y, "test_labels": y_test},
    )  # fmt: skip


# -- image folders ------------------------------------------------------------------------------
def find_images(root: Path) -> list[Path]:
    """Image files under ``root`` (recursive, sorted, case-insensitive extensions)."""
    if not root.exists():
        raise FileNotFoundError(
            f"--data {str(root)!r}: no such folder; expected 'fashion-mnist' or a folder of images"
        )
    if not root.is_dir():
        raise ValueError(f"--data {str(root)!r} is a file; expected a folder of images")
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


def inspect_images(files: list[Path]) -> tuple[list[tuple[Path, tuple[int, int], str]], list]:
    """Read each file's header: ``(good, bad)`` with (path, (w, h), mode) and (path, error)."""
    from PIL import Image

    good, bad = [], []
    for path in files:
        try:
            with Image.open(path) as img:
                good.append((path, img.size, img.mode))
        except Exception as err:  # PIL raises many types for broken files
            bad.append((path, f"{type(err).__name__}: {err}"))
    return good, bad


def _channels_of(mode: str) -> int:
    return 1 if mode in GRAY_MODES else 3


def _to_array(img, channels: int) -> np.ndarray:
    """A PIL image as float32 (H, W, C) in [0, 1]; 16-bit grayscale keeps its precision."""
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(img)
        if mode == "F":
            scale = 1.0
            if arr.min() < 0 or arr.max() > 1:
                raise ValueError(
                    f"a float image must hold values in [0, 1], got [{arr.min():g}, {arr.max():g}]"
                )
        else:  # 16-bit (or 32-bit integer) grayscale: treated as 16 bits per pixel
            scale = 65535.0
            if arr.min() < 0 or arr.max() > 65535:
                raise ValueError(
                    f"an integer image must hold 16-bit values, got [{arr.min()}, {arr.max()}]"
                )
        gray = arr.astype(np.float32) / scale
        arr = gray[..., None] if channels == 1 else np.repeat(gray[..., None], 3, axis=2)
        return arr
    img = img.convert("L" if channels == 1 else "RGB")
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr[..., None] if arr.ndim == 2 else arr


def centre_crop_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-crop (C, H, W) to a square, then resize to ``size`` (bilinear, antialiased)."""
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[:, top : top + side, left : left + side]
    if side != size:
        x = F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True)[0]
        # a convex combination of values in [0, 1]: the clamp only removes float rounding
        x = x.clamp_(0.0, 1.0)
    return x


def clahe(x: torch.Tensor) -> torch.Tensor:
    """Contrast-limited adaptive histogram equalisation (Zuiderveld 1994) via scikit-image."""
    try:
        from skimage.exposure import equalize_adapthist
    except ImportError as err:
        raise ImportError(
            '--clahe needs scikit-image: pip install "vaekit[examples]" (or scikit-image)'
        ) from err
    arr = x.permute(1, 2, 0).numpy().astype(np.float64)
    out = equalize_adapthist(arr[..., 0] if arr.shape[2] == 1 else arr)
    out = torch.from_numpy(np.asarray(out, dtype=np.float32))
    return out[None] if out.ndim == 2 else out.permute(2, 0, 1).contiguous()


class ImageFolder(Dataset):
    """Images read from files on access: centre-crop + resize, optional CLAHE."""

    def __init__(self, files: list[Path], channels: int, size: int, resize: bool, use_clahe: bool):
        self.files, self.channels, self.size = files, channels, size
        self.resize, self.use_clahe = resize, use_clahe

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        path = self.files[i]
        try:
            with Image.open(path) as img:
                img.load()
                arr = _to_array(img, self.channels)
        except Exception as err:
            raise ValueError(
                f"could not decode {path} ({type(err).__name__}: {err}); remove or replace the "
                "file (its header was readable, so the scan before training kept it)"
            ) from err
        x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
        if self.resize:
            x = centre_crop_resize(x, self.size)
        if self.use_clahe:
            x = clahe(x)
        return x.contiguous()


def image_folder(args, channels: int, image_size: int, resize: bool) -> Data:
    """A folder of images with a seeded validation split (also used for the final metrics).

    ``resize``: centre-crop + resize every image to ``image_size``; otherwise every image
    must already be ``image_size`` square.
    """
    root = Path(args.data)
    files = find_images(root)
    if args.limit is not None:
        files = files[: args.limit]
    good, bad = inspect_images(files)
    notes = []
    if bad:
        examples = "; ".join(f"{p.name}: {e}" for p, e in bad[:3])
        if not good:
            raise ValueError(
                f"none of the {len(files)} image files in {root} could be read ({examples})"
            )
        if len(bad) > MAX_BAD_FRACTION * len(files):
            raise ValueError(
                f"{len(bad)} of {len(files)} image files in {root} could not be read (more than "
                f"{MAX_BAD_FRACTION:.0%}), e.g. {examples}; fix or remove them"
            )
        msg = f"skipped {len(bad)} of {len(files)} image files that could not be read ({examples})"
        warnings.warn(msg, DataWarning, stacklevel=2)
        notes.append(msg)
    if args.channels is not None and args.channels != channels:
        raise ValueError(
            f"--channels {args.channels} but the model expects {channels} input channel(s); "
            "use a preset/config with in_channels matching your images"
        )
    if args.channels is None:
        wrong = [(p, m) for p, _, m in good if _channels_of(m) != channels]
        if wrong:
            kind = "grayscale" if channels == 1 else "RGB"
            raise ValueError(
                f"{len(wrong)} of {len(good)} images do not have the model's {channels} "
                f"channel(s) (e.g. {wrong[0][0].name} is PIL mode {wrong[0][1]!r}); pass "
                f"--channels {channels} to convert every image to {kind}, or use a model with "
                "matching in_channels"
            )
    if not resize:
        sizes = Counter((w, h) for _, (w, h), _ in good)
        if len(sizes) > 1:
            listed = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(4))
            raise ValueError(
                f"the images in {root} have different sizes: {listed}; pass --image-size N "
                "to centre-crop and resize them to N x N"
            )
        ((w, h),) = sizes
        if (w, h) != (image_size, image_size):
            raise ValueError(
                f"the images in {root} are {w}x{h} but the model expects "
                f"{image_size}x{image_size}; pass --image-size {image_size} to centre-crop and "
                "resize them (or --image-size N to train the model at N px)"
            )
    if args.clahe:
        clahe(torch.zeros(channels, 8, 8))  # fail now if scikit-image is missing
    files = [p for p, _, _ in good]
    train_idx, val_idx = _split(len(files), args.val_fraction, args.seed)

    def subset(idx: torch.Tensor) -> ImageFolder:
        return ImageFolder(
            [files[i] for i in idx.tolist()], channels, image_size, resize, args.clahe
        )

    val = subset(val_idx)
    test = val if args.eval_limit is None else subset(val_idx[: args.eval_limit])
    return Data(
        name=str(root), train=subset(train_idx), val=val, test=test, eval_split="val",
        channels=channels, image_size=image_size, notes=notes,
    )  # fmt: skip


def load(args, channels: int, image_size: int, resize: bool) -> Data:
    if args.data == "fashion-mnist":
        return fashion_mnist(args, channels, image_size)
    return image_folder(args, channels, image_size, resize)


# -- sampling and loading -----------------------------------------------------------------------
class EpochSampler(Sampler[int]):
    """``DistributedSampler``'s shuffled shard (seed + epoch), able to skip the first batches of
    an epoch: a resumed run continues mid-epoch with exactly the remaining batches."""

    def __init__(self, dataset: Dataset, batch_size: int, rank: int, world_size: int, seed: int):
        self.base = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.batch_size = batch_size
        self.skip = 0

    @property
    def steps_per_epoch(self) -> int:
        return len(self.base) // self.batch_size

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.base.set_epoch(epoch)
        self.skip = skip_batches * self.batch_size

    def __iter__(self):
        return itertools.islice(iter(self.base), self.skip, None)

    def __len__(self) -> int:
        return len(self.base) - self.skip


def train_loader(data: Data, args, rank: int, world_size: int, pin: bool):
    sampler = EpochSampler(data.train, args.batch_size, rank, world_size, args.seed)
    if sampler.steps_per_epoch < 1:
        raise ValueError(
            f"{len(data.train)} training images are fewer than one batch of {args.batch_size} "
            f"per process x {world_size} process(es); lower --batch-size or add images"
        )
    loader = DataLoader(
        data.train, batch_size=args.batch_size, sampler=sampler, drop_last=True,
        num_workers=workers(data, args), pin_memory=pin, persistent_workers=workers(data, args) > 0,
        generator=torch.Generator().manual_seed(args.seed),  # keeps the global RNG untouched
    )  # fmt: skip
    return loader, sampler


def eval_loader(dataset: Dataset, args, rank: int = 0, world_size: int = 1, pin: bool = False):
    """Sequential batches of this process's shard (every world_size-th image, no padding)."""
    shard = torch.utils.data.Subset(dataset, range(rank, len(dataset), world_size))
    n = workers_for(dataset, args)
    return DataLoader(shard, batch_size=max(2 * args.batch_size, 64), num_workers=n, pin_memory=pin)


def workers_for(dataset: Dataset, args) -> int:
    if args.workers is not None:
        return args.workers
    return 0 if isinstance(dataset, TensorImages) else min(4, os.cpu_count() or 1)


def workers(data: Data, args) -> int:
    return workers_for(data.train, args)


def first_images(dataset: Dataset, n: int) -> torch.Tensor:
    """The first ``n`` images of a dataset as one tensor."""
    if isinstance(dataset, TensorImages):
        return dataset.images[:n]
    return torch.stack([dataset[i] for i in range(min(n, len(dataset)))])
