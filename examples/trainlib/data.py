"""Data for the trainer: Fashion-MNIST (Debian package) or any folder of images.

Everything returns images as float32 ``(C, H, W)`` in [0, 1]; folders are read by
``vk.data.ImageFolder`` and split by ``vk.data.train_val_split``. Randomness lives elsewhere:
the shuffled order comes from :class:`EpochSampler` (seeded by seed + epoch) and flips are
drawn in the training loop from a generator whose state is checkpointed, so a resumed run
sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset

import vaekit as vk

MAX_BAD_FRACTION = 0.1  # more unreadable files than this is an error, not only a warning


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
    train, val = vk.data.train_val_split(x, args.val_fraction, seed=args.seed)
    return Data(
        name="fashion-mnist", train=TensorImages(x[train.indices]),
        val=TensorImages(x[val.indices]),
        test=TensorImages(x_test), eval_split="test", channels=1, image_size=image_size,
        labelled={"train_images": x, "train_labels": y, "test_labels": y_test},
    )  # fmt: skip


# -- image folders ------------------------------------------------------------------------------
def image_folder(args, channels: int, image_size: int, resize: bool) -> Data:
    """A folder of images (``vk.data.ImageFolder``) with a seeded validation split, also used
    for the final metrics.

    ``resize``: centre-crop + resize every image to ``image_size``; otherwise every image
    must already be ``image_size`` square. Without ``--channels``, images whose channel count
    differs from the model's are an error rather than converted.
    """
    root = Path(args.data)
    try:
        files = vk.data.find_images(root)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"--data {str(root)!r}: no such folder; expected 'fashion-mnist' or a folder of images"
        ) from None
    if args.limit is not None:
        files = files[: args.limit]
    if args.channels is not None and args.channels != channels:
        raise ValueError(
            f"--channels {args.channels} but the model expects {channels} input channel(s); "
            "use a preset/config with in_channels matching your images"
        )
    # unreadable files: skipped with one vk.data.DataWarning naming them
    images = vk.data.ImageFolder(files, image_size=image_size, channels=channels, clahe=args.clahe)
    if len(images.skipped) > MAX_BAD_FRACTION * len(files):
        raise ValueError(
            f"{len(images.skipped)} of {len(files)} image files in {root} could not be read "
            f"(more than {MAX_BAD_FRACTION:.0%}), e.g. {images.skipped[0][0].name}; fix or "
            "remove them"
        )
    if args.channels is None:
        wrong = [h for h in images.headers if h.channels != channels]
        if wrong:
            kind = "grayscale" if channels == 1 else "RGB"
            raise ValueError(
                f"{len(wrong)} of {len(images)} images do not have the model's {channels} "
                f"channel(s) (e.g. {wrong[0].path.name} is PIL mode {wrong[0].mode!r}); pass "
                f"--channels {channels} to convert every image to {kind}, or use a model with "
                "matching in_channels"
            )
    if not resize:
        sizes = Counter((w, h) for _, (h, w), _ in images.headers)
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
    train, val = vk.data.train_val_split(images, args.val_fraction, seed=args.seed)
    test = val if args.eval_limit is None else Subset(images, val.indices[: args.eval_limit])
    return Data(
        name=str(root), train=train, val=val, test=test, eval_split="val",
        channels=channels, image_size=image_size,
        notes=[images.scan_warning] if images.scan_warning else [],
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
