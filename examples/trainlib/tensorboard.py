"""``--tensorboard``: the run's scalars, KL histogram and image grids as TensorBoard events.

The event files go into the run folder itself, so ``tensorboard --logdir runs`` lists every
run by its folder name, next to the Lightning example's runs (``tb_logs/``) when both are
given. The tags are :mod:`vaekit.runs`' (the same in both trainers): ``train/<term>``,
``train/beta``, ``train/lr`` with every history.csv train row (at fixed steps and every
``--log-seconds``, like the console log), ``val/<term>`` at every validation, and a
:func:`vaekit.runs.snapshot` (``val/psnr``, ``val/ssim``, ``latent/active_units``, the
``latent/kl_per_dim`` histogram and the ``images/...`` grids) at validations at least
``--log-seconds`` apart and always at the last step. Only rank 0 writes.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

import vaekit as vk


def summary_writer_class():
    """``torch.utils.tensorboard.SummaryWriter``, or a ValueError saying what to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:  # torch's module imports the tensorboard package
        raise ValueError(
            "--tensorboard needs the tensorboard package: pip install -e '.[lightning]' (or "
            f"pip install tensorboard), or leave out --tensorboard ({err})"
        ) from None
    return SummaryWriter


class TensorBoardLog:
    """The run's TensorBoard writer (rank 0).

    Args:
        run_dir: the run folder (the event files go there).
        seconds: the least wall-clock time between two snapshots (``--log-seconds``).
        resume_step: on ``--resume``, events after this step (written after the last
            checkpoint, repeated by the resumed run) are dropped.
    """

    def __init__(self, run_dir: Path, *, seconds: float, resume_step: int | None = None) -> None:
        self.writer = summary_writer_class()(log_dir=str(run_dir), purge_step=resume_step)
        self.seconds = seconds
        self.last_snapshot: tuple[float, int] | None = None  # (time, step)

    def train(self, step: int, means: dict[str, float], *, beta: float, lr: float) -> None:
        """A train row: every loss term's mean since the last row, β and the learning rate."""
        for tag, value in vk.runs.scalar_tags("train", {**means, "beta": beta, "lr": lr}).items():
            self.writer.add_scalar(tag, value, step)

    def val(self, step: int, terms: dict[str, float]) -> None:
        """A validation: every loss term at the final β."""
        for tag, value in vk.runs.scalar_tags("val", terms).items():
            self.writer.add_scalar(tag, value, step)

    def snapshot_due(self, step: int) -> bool:
        """The first validation, then once ``seconds`` have passed since the last snapshot."""
        if self.last_snapshot is None:
            return True
        when, at = self.last_snapshot
        return at != step and time.perf_counter() - when >= self.seconds

    def snapshot(self, vae: torch.nn.Module, images: torch.Tensor, step: int, *, seed: int):
        """Metrics, the KL histogram and the image grids of ``vae`` on ``images``."""
        if self.last_snapshot is not None and self.last_snapshot[1] == step:
            return  # already drawn at this step
        vk.runs.snapshot(vae, images, seed=seed).write(self.writer, step)
        self.writer.flush()  # a live `tensorboard --logdir` shows it now
        self.last_snapshot = (time.perf_counter(), step)

    def close(self) -> None:
        self.writer.close()
