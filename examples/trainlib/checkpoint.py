"""Run folders, checkpoints and ``history.csv``.

A run folder holds ``config.json``, ``history.csv``, ``best.safetensors`` and
``last.safetensors`` (``vae.save``: config + weights, no pickled code) and
``trainer_state.pt``: optimiser, GradScaler, LR scheduler, loss parameters (e.g. a learned σ),
the discriminator with its optimiser and GradScaler (``--adversarial``), step/epoch/position in
the epoch, every rank's RNG states and the best validation value, so
``--resume DIR`` continues at the exact step. Files are written to a temporary name and then
renamed, so an interrupted save never leaves a truncated checkpoint. ``history.csv`` is read
and written by :mod:`vaekit.runs`, the reader the explorer uses too.
"""

from __future__ import annotations

import math
import os
from datetime import datetime
from pathlib import Path

import torch

import vaekit as vk

STATE_FILE = "trainer_state.pt"


def make_run_dir(parent: str | Path, name: str) -> Path:
    """``parent/<YYYYmmdd-HHMMSS>-<name>/``; never reuses an existing folder (adds -1, -2, ...)."""
    parent = Path(parent)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "run"
    for i in range(10_000):
        path = parent / (f"{stamp}-{safe}" if i == 0 else f"{stamp}-{safe}-{i}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {parent}")


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_model(vae, path: Path) -> None:
    _atomic(Path(path), vae.save)


def save_state(state: dict, path: Path) -> None:
    _atomic(Path(path), lambda p: torch.save(state, p))


def load_state(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no {path.name} in {path.parent}: --resume needs a run folder with last.safetensors "
            "and trainer_state.pt (written at every evaluation and at the end)"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


class History:
    """Rows of numbers: train rows (means since the last row; when they come: see train.py and
    ``--log-every``/``--log-seconds``) and a val row at every evaluation."""

    def __init__(self, rows: list[dict] | None = None) -> None:
        self.rows = rows or []

    def add(self, **row: object) -> None:
        self.rows.append(row)

    def write(self, path: Path) -> None:
        vk.runs.write_history(path, self.rows)  # atomic: a temporary name, then renamed

    @classmethod
    def read(cls, path: Path, up_to_step: int) -> History:
        """Rows of an earlier run up to (and including) ``up_to_step``: rows logged after the
        last checkpoint belong to steps that the resumed run repeats."""
        if not Path(path).is_file():
            return cls()
        return cls(vk.runs.read_history(path, up_to_step=up_to_step))

    def series(self, split: str) -> list[dict]:
        return [r for r in self.rows if r.get("split") == split]


def finite_or_none(value: float) -> float | None:
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None
