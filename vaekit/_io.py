"""One-file checkpoints: safetensors weights with a format tag and a JSON config in the metadata."""

from __future__ import annotations

import os

import torch


def read_checkpoint(
    path: str | os.PathLike, fmt: str, what: str
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read ``(state, metadata)`` from a safetensors file written with format tag ``fmt``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for an unreadable
    (truncated, corrupted) file or one whose metadata is not ``fmt`` with a ``config`` entry;
    ``what`` names the expected kind of file in the messages.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {what} at {path!r}")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(
            f"{path!r} is not a readable {what} (truncated or corrupted safetensors file?): {err}"
        ) from err
    if meta.get("format") != fmt or "config" not in meta:
        raise ValueError(
            f"{path!r} is a safetensors file but not a {what} (metadata format="
            f"{meta.get('format')!r}, expected {fmt!r})"
        )
    return state, meta
