"""A LightningDataModule over :mod:`vaekit.data`: Fashion-MNIST or any folder of images.

Fashion-MNIST comes from the Debian package ``dataset-fashion-mnist``
(:func:`vaekit.data.load_fashion_mnist`, nothing is downloaded); a folder is read by
:class:`vaekit.data.ImageFolder`. Both are split into training and validation images by
:func:`vaekit.data.train_val_split` (seeded: every process and every rerun gets the same
split). Batches are plain ``(B, C, H, W)`` float tensors in [0, 1]; under DDP Lightning adds
the distributed sampler itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

import vaekit as vk


class _Images(Dataset):
    """Images held in memory as one (N, C, H, W) tensor (no labels: a VAE needs none)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


class VAEDataModule(L.LightningDataModule):
    """Training and validation images for a model of ``channels`` x ``image_size`` pixels.

    Args:
        name: ``"fashion-mnist"`` or ``"folder"``.
        root: Fashion-MNIST: the folder of the four IDX files (None: the Debian package's);
            a folder: the images (searched recursively).
        channels, image_size: the model's (every image is converted/resized to them).
        val_fraction: the validation share (seeded split). limit: only the first N images.
        batch_size: images per step and process. num_workers: DataLoader workers.
        clahe: folders only: contrast-limited adaptive histogram equalisation.
        pad_to: Fashion-MNIST only: zero-pad 28x28 to this size (None: ``image_size``).
        seed: of the split and the shuffling.
    """

    def __init__(
        self,
        name: str,
        *,
        channels: int,
        image_size: int,
        root: str | None = None,
        val_fraction: float = 0.1,
        limit: int | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        clahe: bool = False,
        pad_to: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if name not in ("fashion-mnist", "folder"):
            raise ValueError(f"data.name must be 'fashion-mnist' or 'folder', got {name!r}")
        if not 0 < val_fraction < 1:
            raise ValueError(f"data.val_fraction must be in (0, 1), got {val_fraction!r}")
        for key, value in (("batch_size", batch_size), ("limit", limit)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"data.{key} must be a whole number >= 1, got {value!r}")
        if name == "fashion-mnist" and channels != 1:
            raise ValueError(
                f"Fashion-MNIST is grayscale (1 channel) but the model expects {channels}: use "
                "a 1-channel model (model=fmnist32) or data=folder for colour images"
            )
        if name == "folder" and (not root or root == "???"):
            raise ValueError("data=folder needs data.root=PATH, the folder of images")
        self.name, self.root, self.channels, self.image_size = name, root, channels, image_size
        self.val_fraction, self.limit, self.clahe, self.seed = val_fraction, limit, clahe, seed
        self.batch_size, self.num_workers = batch_size, num_workers
        self.pad_to = pad_to
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    @classmethod
    def from_config(cls, data: Mapping[str, Any], cfg: vk.VAEConfig, seed: int) -> VAEDataModule:
        """The ``data`` config group for a model config (channels and size default to its)."""
        data = dict(data)
        h, w = cfg.image_size
        if h != w:
            raise ValueError(f"the Lightning example trains square images; the model has {h}x{w}")
        size = data.pop("image_size", None) or h
        channels = data.pop("channels", None) or cfg.in_channels
        if size != h:
            raise ValueError(
                f"data.image_size {size} but the model takes {h}x{w} images: drop data.image_size "
                f"or set model.config.image_size={size}"
            )
        if channels != cfg.in_channels:
            raise ValueError(
                f"data.channels {channels} but the model takes {cfg.in_channels}-channel "
                "images: drop data.channels or set model.config.in_channels"
            )
        name = data.pop("name")
        return cls(name, channels=channels, image_size=size, seed=seed, **data)

    def describe(self) -> dict[str, Any]:
        """What config.json records about the data (and the explorer reads back)."""
        return {
            "name": "fashion-mnist" if self.name == "fashion-mnist" else str(self.root),
            "root": self.root, "channels": self.channels, "image_size": self.image_size,
            "train": len(self.train_set) if self.train_set is not None else None,
            "val": len(self.val_set) if self.val_set is not None else None,
        }  # fmt: skip

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if self.name == "fashion-mnist":
            pad = self.pad_to or self.image_size
            if pad < 28:
                raise ValueError(
                    f"Fashion-MNIST images are 28x28; the model takes {self.image_size}x"
                    f"{self.image_size}: use a model of 28 px or more (padded with zeros)"
                )
            x, _ = vk.data.load_fashion_mnist(
                "train", root=self.root, pad_to=None if pad == 28 else pad, limit=self.limit
            )
            if x.shape[-1] != self.image_size:
                raise ValueError(
                    f"data.pad_to={self.pad_to} gives {x.shape[-1]} px images but the model "
                    f"takes {self.image_size} px: drop data.pad_to"
                )
            images: Dataset = _Images(x)
        else:
            root = Path(self.root).expanduser()
            if not root.is_dir():
                raise FileNotFoundError(f"data.root {self.root!r}: no such folder of images")
            files = vk.data.find_images(root)
            if self.limit is not None:
                files = files[: self.limit]
            images = vk.data.ImageFolder(
                files, image_size=self.image_size, channels=self.channels, clahe=self.clahe
            )
        train, val = vk.data.train_val_split(images, self.val_fraction, seed=self.seed)
        if len(train) < self.batch_size:
            raise ValueError(
                f"{len(train)} training images are fewer than one batch of {self.batch_size}: "
                "lower data.batch_size or add images"
            )
        if isinstance(images, _Images):  # plain tensors: faster batches than Subset lookups
            train, val = _Images(images.images[train.indices]), _Images(images.images[val.indices])
        self.train_set, self.val_set = train, val

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set, batch_size=self.batch_size, shuffle=True, drop_last=True,
            num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),
        )  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_set, batch_size=max(2 * self.batch_size, 64),
            num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
        )  # fmt: skip

    def first_images(self, split: str, n: int) -> torch.Tensor:
        """The first ``n`` images of ``"train"`` or ``"val"`` as one tensor."""
        data = self.train_set if split == "train" else self.val_set
        if isinstance(data, _Images):
            return data.images[:n]
        return torch.stack([data[i] for i in range(min(n, len(data)))])
