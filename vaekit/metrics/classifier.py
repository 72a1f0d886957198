"""A small domain classifier whose features judge samples: FID without ImageNet.

Inception features (:class:`~vaekit.metrics.InceptionFeatures`) need a 100 MB ImageNet
checkpoint and see 28-px grey clothes or chest X-rays through a 299-px natural-image lens.
For a dataset with labels, a small CNN trained on *that* dataset gives features that separate
its classes — the usual choice for MNIST-like data. :class:`ClassifierFeatures` is that CNN:
fit it once on the training images, save it, and pass it to
:func:`~vaekit.metrics.extract_features` and :func:`~vaekit.metrics.fid`. Report its test
accuracy next to the distance, and the distance between two real sets (train vs test) as the
floor: numbers from different classifiers are not comparable.
"""

from __future__ import annotations

import itertools
import json
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from .._inference import evaluating
from .._io import read_checkpoint
from .._validation import check_image, check_int, check_number, check_range

__all__ = ["ClassifierFeatures"]

_FORMAT = "vaekit.ClassifierFeatures/1"


class ClassifierFeatures(nn.Module):
    """A small CNN classifier; calling it returns its penultimate ``(N, feature_dim)`` features.

    Three conv-BN-ReLU stages (``width``, ``2·width``, ``4·width`` channels), each followed
    by 2x2 max-pooling, global average pooling, a ``feature_dim`` ReLU layer (the features)
    and a linear classifier. Any image size >= 8 px works; a fitted model remembers the size
    and channel count it was trained on and refuses other ones (features of 28-px and 32-px
    images are not comparable).

    Args:
        in_channels: image channels.
        num_classes: number of labels.
        width: channels of the first stage.
        feature_dim: size of the feature vector.

    Shape:
        input: (N, in_channels, H, W) in [0, 1]; output: (N, feature_dim).

    Example:
        >>> import torch, vaekit as vk
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.rand(64, 1, 16, 16, generator=g)
        >>> y = (x.mean((1, 2, 3)) > 0.5).long()          # a learnable toy label
        >>> clf = vk.metrics.ClassifierFeatures.fit(x, y, num_classes=2, epochs=1, width=8)
        >>> clf(x).shape
        torch.Size([64, 128])
        >>> 0.0 <= clf.accuracy(x, y) <= 1.0
        True
    """

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, *, width: int = 32,
        feature_dim: int = 128,
    ) -> None:  # fmt: skip
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels")
        self.num_classes = check_int(num_classes, "num_classes", minimum=2)
        self.width = check_int(width, "width")
        self.feature_dim = check_int(feature_dim, "feature_dim")
        self.image_size: tuple[int, int] | None = None  # set by fit()/load()
        chans = (in_channels, width, 2 * width, 4 * width)
        layers: list[nn.Module] = []
        for cin, cout in itertools.pairwise(chans):
            layers += [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
        self.body = nn.Sequential(*layers)
        self.features = nn.Sequential(nn.Linear(4 * width, feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(feature_dim, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "images", channels=self.in_channels, size=self.image_size, min_size=8)
        check_range(x, 0.0, 1.0, "images", hint="ClassifierFeatures expects images in [0, 1]")
        return x

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x * 2.0 - 1.0)
        return self.features(h.mean((2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(N, feature_dim)`` of images in [0, 1]."""
        return self._embed(self._check(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, num_classes)``."""
        return self.head(self._embed(self._check(x)))

    @torch.no_grad()
    def accuracy(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 512):
        """Top-1 accuracy in [0, 1] on ``images``/``labels`` (eval mode, no grad)."""
        labels = self._check_labels(images, labels)
        check_int(batch_size, "batch_size")
        correct = 0
        device = next(self.parameters()).device
        with evaluating(self):
            for i in range(0, len(images), batch_size):
                x = images[i : i + batch_size].to(device)
                pred = self.logits(x).argmax(1).cpu()
                correct += int((pred == labels[i : i + batch_size].cpu()).sum())
        return correct / len(images)

    def _check_labels(self, images: torch.Tensor, labels: object) -> torch.Tensor:
        self._check(images)
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
            got = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise TypeError(f"labels must be an int64 tensor of class indices, got {got}")
        if labels.shape != (len(images),):
            raise ValueError(
                f"labels must have shape ({len(images)},) to match the images, got "
                f"{tuple(labels.shape)}"
            )
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(
                f"labels must lie in [0, {self.num_classes - 1}], got values in "
                f"[{int(labels.min())}, {int(labels.max())}]"
            )
        return labels

    @classmethod
    def fit(
        cls,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        num_classes: int = 10,
        epochs: int = 2,
        batch_size: int = 128,
        lr: float = 3e-3,
        width: int = 32,
        feature_dim: int = 128,
        seed: int = 0,
        device: torch.device | str | None = None,
    ) -> ClassifierFeatures:
        """Train a classifier on ``images`` (N, C, H, W in [0, 1]) and int64 ``labels`` (N,).

        AdamW with a cosine learning-rate decay, cross-entropy, reshuffled each epoch by a
        generator seeded with ``seed``; returns the model in eval mode on ``device`` (default:
        the images' device). Two epochs on Fashion-MNIST reach about 90% test accuracy.
        """
        check_int(epochs, "epochs")
        check_int(batch_size, "batch_size")
        check_number(lr, "lr", above=0)
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            check_image(images, "images")  # raises the standard message
        device = torch.device(device) if device is not None else images.device
        with torch.random.fork_rng(devices=[]):  # init from `seed`, caller's RNG untouched
            torch.manual_seed(seed)
            model = cls(images.shape[1], num_classes, width=width, feature_dim=feature_dim)
        model.image_size = tuple(images.shape[-2:])
        model._check_labels(images, labels)
        if len(images) < 2:
            raise ValueError(f"fit needs at least 2 images, got {len(images)}")
        model.to(device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        steps_per_epoch = math.ceil(len(images) / batch_size)
        total = epochs * steps_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
        )
        gen = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            order = torch.randperm(len(images), generator=gen)
            for i in range(0, len(images), batch_size):
                idx = order[i : i + batch_size]
                if len(idx) < 2:  # BatchNorm needs two samples
                    continue
                x = images[idx].to(device)
                loss = F.cross_entropy(model.head(model._embed(x)), labels[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        return model.eval()

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights and the architecture to one safetensors file."""
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        config = {
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "width": self.width,
            "feature_dim": self.feature_dim,
            "image_size": list(self.image_size) if self.image_size else None,
        }
        save_file(
            state, os.fspath(path), metadata={"format": _FORMAT, "config": json.dumps(config)}
        )

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, map_location: str | torch.device = "cpu"
    ) -> ClassifierFeatures:
        """Read a file written by :meth:`save`; returns the model in eval mode."""
        state, meta = read_checkpoint(path, _FORMAT, "ClassifierFeatures file")
        config = json.loads(meta["config"])
        size = config.pop("image_size")
        model = cls(config.pop("in_channels"), config.pop("num_classes"), **config)
        model.load_state_dict(state)
        model.image_size = tuple(size) if size else None
        return model.to(map_location).eval()
