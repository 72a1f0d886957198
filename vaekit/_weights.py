"""Pretrained weights the torchvision way, for perceptual losses and metric feature networks.

``weights="imagenet"`` reads the file from the torch hub cache ``$TORCH_HOME/hub/checkpoints/``
(``torch.hub.get_dir()``), downloading it once (hash-checked) when ``download=True`` and the
network allows; a path reads that file; ``None`` means no weights (a random network, for
tests). A file that is neither cached nor downloadable raises :class:`WeightsNotFoundError`,
whose message names the file, the directory to put it in and the URL to fetch it from.
Used by :mod:`vaekit.losses.perceptual` (VGG16, AlexNet, SqueezeNet trunks) and
:class:`vaekit.metrics.InceptionFeatures`; imports nothing from vaekit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import torch

__all__ = ["WeightsNotFoundError", "hub_cache_path", "load_weights"]


class WeightsNotFoundError(FileNotFoundError, ValueError):
    """Pretrained weights are neither cached nor downloadable (or a given path is missing).

    A ``FileNotFoundError`` (what happened) and a ``ValueError`` (vaekit's user-error type);
    the message names the file, the directory to put it in and the URL to fetch it from.
    """


def hub_cache_path(url: str) -> str:
    """Where torchvision keeps the file at ``url``: ``torch.hub.get_dir()/checkpoints/<name>``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def _not_found(what: str, path: str, url: str, reason: str, random: str) -> WeightsNotFoundError:
    name, directory = os.path.basename(path), os.path.dirname(path)
    return WeightsNotFoundError(
        f"{what} needs the weights file {name!r} in {directory!r}: {reason}. On a machine with "
        f"internet, download {url} and copy it to {hub_cache_path(url)} (the torch hub cache: "
        "$TORCH_HOME/hub/checkpoints, TORCH_HOME defaults to ~/.cache/torch), or pass "
        f"weights='/path/to/{os.path.basename(url)}', or weights=None for a random {random} "
        "(tests only)."
    )


def load_weights(
    weights: str | os.PathLike | None,
    url: str | Callable[[], str],
    *,
    what: str,
    download: bool = True,
    random: str = "network",
) -> dict[str, torch.Tensor] | None:
    """Resolve ``weights`` (``None`` | ``"imagenet"`` | a path) to a state dict on the CPU.

    Args:
        weights: ``"imagenet"`` (the file at ``url``, from the hub cache or downloaded),
            a path to a state dict, or ``None`` (returns ``None``: the caller keeps its
            random initialisation).
        url: the pretrained file's URL, or a function returning it (called only when it is
            needed, e.g. to avoid importing torchvision for a local path).
        what: the network that needs the file, for messages (``"perceptual"``).
        download: allow the one-off download for ``"imagenet"``.
        random: what ``weights=None`` gives, for the message (``"backbone"``, ``"network"``).

    Raises:
        WeightsNotFoundError: no such file, or not cached and not downloadable.
        TypeError: ``weights`` of another type. ValueError: an unreadable file or one that is
        not a state dict of tensors.
    """
    if weights is None:
        return None

    def resolved_url() -> str:
        return url() if callable(url) else url

    if isinstance(weights, str) and weights == "imagenet":
        source = resolved_url()
        path = hub_cache_path(source)
        if not os.path.isfile(path):
            if not download:
                raise _not_found(what, path, source, "not cached and download=False", random)
            try:  # torchvision's own route: hash-checked download into the hub cache
                torch.hub.load_state_dict_from_url(
                    source, map_location="cpu", progress=False, check_hash=True, weights_only=True
                )
            except Exception as err:  # offline, proxy, DNS, HTTP errors: all mean "not there"
                reason = f"not cached and download failed ({err})"
                raise _not_found(what, path, source, reason, random) from err
    elif isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise _not_found(what, os.path.abspath(path), resolved_url(), "no such file", random)
    else:
        raise TypeError(
            f"weights must be None, 'imagenet' or a file path, got {type(weights).__name__}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"could not read {what} weights from {path!r}: {err}") from err
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(f"{path!r} must hold a state dict of tensors, got {type(state).__name__}")
    return dict(state)
