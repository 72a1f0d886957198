"""Runs: the run folders that the trainers write, and the TensorBoard tags they log.

:func:`read_run` reads a run folder of ``examples/train.py`` or ``examples/lightning/train.py``
(config, history, metrics, model files; no pickle is opened) and is what the explorer and
the trainer use; :func:`read_history` / :func:`write_history` are the ``history.csv`` format;
:func:`scalar_tags` and :func:`snapshot` give the scalars, histogram and image grids that
both trainers log to TensorBoard under the same tags. See ``docs/lightning.md``.

Nothing here imports TensorBoard, Lightning or Hydra.
"""

from .folder import CHECKPOINTS, RunFolder, find_runs, read_history, read_run, write_history
from .tensorboard import IMAGE_TAGS, Snapshot, scalar_tags, snapshot

__all__ = [
    "CHECKPOINTS",
    "IMAGE_TAGS",
    "RunFolder",
    "Snapshot",
    "find_runs",
    "read_history",
    "read_run",
    "scalar_tags",
    "snapshot",
    "write_history",
]
