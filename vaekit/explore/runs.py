"""Run folders and saved models, loaded once each, and the test images that go with them.

What a run folder holds is read by :func:`vaekit.runs.read_run`, the library's one reader of
run folders (``examples/train.py`` and ``examples/lightning/train.py`` write them); a bare
``.safetensors`` file written by ``vae.save`` is a model without the rest. Models are read
only from safetensors files (no pickle): ``trainer_state.pt`` and Lightning's ``.ckpt`` files
are never opened.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..models import VAE
from ..runs import CHECKPOINTS, RunFolder, read_history, read_run
from .images import ExploreError, fit_images, read_folder

__all__ = ["CHECKPOINTS", "Explorer", "ImageSet", "Run", "load_run", "read_history"]

TEST_IMAGES = 64  # images offered for picking: enough to browse, quick to load


@dataclass
class Run:
    """A loaded model with what its run folder says about it.

    Attributes:
        name: the folder (or file) name. path: the folder or ``.safetensors`` file given.
        checkpoint: the safetensors file the model came from. vae: the model, in eval mode.
        config: ``config.json`` (``{}`` for a bare model). metrics: ``metrics.json`` (``{}``
        when absent). history: ``history.csv`` rows with numbers parsed. notes: what was
        missing or unreadable, for the page. folder: the :class:`vaekit.runs.RunFolder`.
    """

    name: str
    path: Path
    checkpoint: Path
    vae: VAE
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    folder: RunFolder | None = None

    @property
    def channels(self) -> int:
        """The model's input channels (1 or 3)."""
        return int(self.vae.config.in_channels)

    @property
    def image_size(self) -> tuple[int, int]:
        """The model's (H, W)."""
        return tuple(self.vae.config.image_size)

    @property
    def spatial(self) -> bool:
        """True for a spatial latent (C, h, w), False for a flat one (D,)."""
        return len(self.vae.latent_shape) > 1

    def _info(self) -> RunFolder:
        if self.folder is not None:
            return self.folder
        return RunFolder(self.path, self.name, self.checkpoint, config=self.config)

    @property
    def data(self) -> str | None:
        """The training data: ``"fashion-mnist"``, a folder, or None when unknown."""
        return self._info().data

    @property
    def data_root(self) -> str | None:
        """The folder the Fashion-MNIST files came from (None: the default place)."""
        return self._info().data_root

    def describe(self) -> str:
        """One line for the page: name, model, latent, data."""
        h, w = self.image_size
        kind = "spatial" if self.spatial else "flat"
        latent = "x".join(str(s) for s in self.vae.latent_shape)
        params = sum(p.numel() for p in self.vae.parameters()) / 1e6
        data = f", trained on {self.data}" if self.data else ""
        trainer = self._info().trainer
        by = " with Lightning" if trainer == "lightning" else ""
        prior = getattr(self.vae, "prior", None)  # the model's own p(z), when it has one
        prior = f", prior {type(prior).__name__}" if prior is not None else ""
        return (
            f"**{self.name}**: {self.channels}x{h}x{w} images, {kind} latent {latent}{prior}, "
            f"{params:.2f} M parameters{data}{by}"
        )


def load_run(path: str | os.PathLike) -> Run:
    """Load a run folder (its ``best.safetensors``) or a ``.safetensors`` model file.

    Args:
        path: a folder written by ``examples/train.py`` or ``examples/lightning/train.py``, or
            a file written by ``vae.save``.

    Raises:
        ExploreError: no such path, a folder that is not a run, a file that is not a vaekit
            model (pickled ``.pt`` files are refused: they can run code).

    Example:
        >>> import os, tempfile, vaekit as vk
        >>> from vaekit.explore import load_run
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=16, widths=(4, 8),
        ...                           latent_dim=4, attention_at=()))
        >>> folder = tempfile.mkdtemp()
        >>> vae.save(os.path.join(folder, "best.safetensors"))
        >>> run = load_run(folder)
        >>> run.vae.latent_shape, run.spatial, run.metrics
        ((4,), False, {})
        >>> load_run(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        vaekit.explore.images.ExploreError: ... is a folder but not a vaekit run: ...
    """
    try:
        info = read_run(path)
    except (FileNotFoundError, ValueError) as err:
        raise ExploreError(str(err)) from None
    try:
        vae = info.load_vae(map_location="cpu")
    except (ValueError, TypeError, OSError) as err:
        raise ExploreError(
            f"{str(info.checkpoint)!r} could not be loaded as a vaekit model: {err}"
        ) from err
    vae.eval().requires_grad_(False)
    return Run(
        name=info.name, path=info.path, checkpoint=info.checkpoint, vae=vae,
        config=info.config, metrics=info.metrics, history=info.history, notes=info.notes,
        folder=info,
    )  # fmt: skip


@dataclass
class ImageSet:
    """Images to pick from: ``images`` (N, C, H, W) in [0, 1] (None when there are none) and
    ``source``, a line for the page saying where they came from or why there are none."""

    images: torch.Tensor | None
    source: str


class Explorer:
    """The runs of one explorer session: each path is loaded once, test images and the KL
    ranking of latent dimensions are computed once per run. Thread-safe.

    Args:
        images: a folder of test images for runs not trained on Fashion-MNIST.
        limit: test images per run.

    Example:
        >>> import os, tempfile, vaekit as vk
        >>> from vaekit.explore import Explorer
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=16, widths=(4, 8),
        ...                           latent_dim=4, attention_at=()))
        >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
        >>> vae.save(path)
        >>> ex = Explorer()
        >>> ex.open(path) is ex.open(path), ex.names
        (True, ['model'])
        >>> ex.test_images("model").images is None
        True
    """

    def __init__(self, images: str | os.PathLike | None = None, limit: int = TEST_IMAGES):
        self.images_dir = None if images is None else Path(images)
        self.limit = limit
        self._runs: dict[str, Run] = {}
        self._by_path: dict[Path, str] = {}
        self._tests: dict[str, ImageSet] = {}
        self._kl: dict[str, torch.Tensor | None] = {}
        self._lock = threading.RLock()

    @property
    def names(self) -> list[str]:
        """Names of the loaded runs, in the order they were opened."""
        return list(self._runs)

    def open(self, path: str | os.PathLike) -> Run:
        """Load ``path`` (once: a second call returns the same :class:`Run`)."""
        key = Path(path).expanduser().resolve()
        with self._lock:
            if key in self._by_path:
                return self._runs[self._by_path[key]]
            run = load_run(path)
            base, i = run.name, 1
            while run.name in self._runs:  # two runs with the same folder name
                i += 1
                run.name = f"{base} ({i})"
            self._runs[run.name] = run
            self._by_path[key] = run.name
            return run

    def get(self, name: str | None) -> Run:
        """The run called ``name``."""
        if not self._runs:
            raise ExploreError("no model loaded: open a run folder or a .safetensors file")
        if name not in self._runs:
            raise ExploreError(f"no run named {name!r}; loaded: {', '.join(self._runs)}")
        return self._runs[name]

    def test_images(self, name: str) -> ImageSet:
        """Fashion-MNIST test images when the run used it, else the ``images`` folder, else
        the run's own image folder if it still exists (cached per run)."""
        with self._lock:
            if name not in self._tests:
                self._tests[name] = self._load_test_images(self.get(name))
            return self._tests[name]

    def _load_test_images(self, run: Run) -> ImageSet:
        h, w = run.image_size
        errors = []
        if run.data == "fashion-mnist":
            from ..data import load_fashion_mnist

            root = run.data_root
            try:
                # as the trainer did: 28x28, zero-padded to the model's size when it is larger
                pad = h if h == w and h > 28 else None
                x, _ = load_fashion_mnist("test", root=root, pad_to=pad, limit=self.limit)
                x = fit_images(x, run.channels, (h, w))
                return ImageSet(x, f"the first {len(x)} Fashion-MNIST test images")
            except (OSError, ValueError) as err:
                errors.append(f"Fashion-MNIST: {err}")
        folders = [("--images", self.images_dir)]
        if run.data and run.data != "fashion-mnist":
            folders.append(("the run's data", Path(run.data)))
        for what, folder in folders:
            if folder is None or (what != "--images" and not folder.is_dir()):
                continue
            try:
                x, notes = read_folder(folder, run.channels, (h, w), limit=self.limit)
            except ExploreError as err:
                errors.append(str(err))
                continue
            extra = f" ({'; '.join(notes[:3])})" if notes else ""
            return ImageSet(x, f"the first {len(x)} images of {what} {str(folder)!r}{extra}")
        why = "; ".join(errors) if errors else "this model has no test images"
        return ImageSet(
            None,
            f"no test images ({why}): start the explorer with --images FOLDER, or upload an image",
        )

    def kl_ranking(self, name: str) -> torch.Tensor | None:
        """Mean KL (nats) per latent unit over the test images: per dimension for flat
        latents, per channel (summed over positions) for spatial ones; None without images."""
        from .compute import unit_kl

        with self._lock:
            if name not in self._kl:
                run, test = self.get(name), self.test_images(name)
                kl = None
                if test.images is not None:
                    kl = unit_kl(run.vae, test.images)
                else:
                    values = (run.metrics.get("kl_per_dim") or {}).get("values")
                    if not run.spatial and values and len(values) == run.vae.latent_shape[0]:
                        kl = torch.tensor(values, dtype=torch.float64)
                self._kl[name] = kl
            return self._kl[name]


def finite(value: object) -> bool:
    """A real number that is not NaN or infinite (bools are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
