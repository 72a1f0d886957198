"""The run folder and the TensorBoard pictures, written by one Lightning callback (rank 0).

The folder has the layout of ``examples/train.py``'s (see :mod:`vaekit.runs`), so the
explorer (``python -m vaekit.explore runs/...``) and ``vk.runs.read_run`` open it:

- ``history.csv``: a train row at step 1, every ``log_every_n_steps`` optimizer steps and at
  the last step (the mean of every term since the last row), a val row at every validation;
  each train row also goes to every logger of the Trainer (TensorBoard: ``train/<term>``,
  ``train/beta``, ``train/lr``) at its step, the number of optimizer steps done, as
  ``examples/train.py --tensorboard`` logs it; so do the validation terms (``val/<term>``,
  the means over every process that ``VAEModule.validation_step`` gives Lightning);
- ``best.safetensors`` (lowest ``val/total``) and ``last.safetensors``, written by
  ``vae.save``: config and weights, no pickled code;
- TensorBoard: at every ``snapshot_every``-th validation and at the end, a
  :func:`vaekit.runs.snapshot` of the model on the first validation images: ``val/psnr``,
  ``val/ssim``, ``latent/active_units``, the ``latent/kl_per_dim`` histogram and the
  ``images/reconstructions``, ``images/samples`` and ``images/traversal`` grids.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import lightning as L
import torch

import vaekit as vk


class RunFolder(L.Callback):
    """Write the run folder of a :class:`vae_module.VAEModule` run.

    Args:
        run_dir: the folder (it exists). images: validation images per snapshot.
        snapshot_every: a snapshot every N validations (and always at the end).
        seed: seed of the sampled pictures.
    """

    def __init__(
        self, run_dir: Path, *, images: int = 16, snapshot_every: int = 1, seed: int = 0
    ) -> None:
        if not isinstance(images, int) or images < 2:
            raise ValueError(f"tensorboard.images must be a whole number >= 2, got {images!r}")
        if not isinstance(snapshot_every, int) or snapshot_every < 1:
            raise ValueError(
                f"tensorboard.snapshot_every must be a whole number >= 1, got {snapshot_every!r}"
            )
        self.run_dir = Path(run_dir)
        self.images, self.snapshot_every, self.seed = images, snapshot_every, seed
        self.rows: list[dict] = []
        self.sums: dict[str, float] = {}
        self.count = 0
        self.last_row_step = -1
        self.validations = 0
        self.best = math.inf
        self.best_step: int | None = None
        self.snapshot_step: int | None = None
        self.pictures_of: torch.Tensor | None = None  # the first validation images
        self.started = time.perf_counter()

    # -- train rows --------------------------------------------------------------------------
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.is_global_zero or not isinstance(outputs, dict):
            return
        for key, value in outputs.get("values", {}).items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.count += 1
        step = trainer.global_step  # optimizer steps: once per accumulate_grad_batches
        every = max(1, trainer.log_every_n_steps)
        if step != self.last_row_step and (step == 1 or step % every == 0):
            self._train_row(trainer)

    def _train_row(self, trainer) -> None:
        if not self.count:
            return
        means = {k: v / self.count for k, v in self.sums.items()}
        for logger in trainer.loggers:
            logger.log_metrics(vk.runs.scalar_tags("train", means), step=trainer.global_step)
        beta, lr = means.pop("beta", None), means.pop("lr", None)
        self.rows.append({
            "step": trainer.global_step, "epoch": trainer.current_epoch, "split": "train",
            "time": round(time.perf_counter() - self.started, 2), "lr": lr, "beta": beta,
            **means,
        })  # fmt: skip
        self.sums, self.count, self.last_row_step = {}, 0, trainer.global_step

    # -- validation --------------------------------------------------------------------------
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *args):
        if self.pictures_of is None and trainer.is_global_zero and not trainer.sanity_checking:
            self.pictures_of = batch[: self.images].detach().clone()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        self.validations += 1
        if not trainer.is_global_zero:
            return
        step = trainer.global_step
        terms = {
            key.removeprefix("val/"): float(value)
            for key, value in trainer.callback_metrics.items()
            if key.startswith("val/") and torch.as_tensor(value).numel() == 1
        }
        for logger in trainer.loggers:  # at the steps done, as the train rows
            logger.log_metrics(vk.runs.scalar_tags("val", terms), step=step)
        row = {"step": step, "epoch": trainer.current_epoch, "split": "val",
               "time": round(time.perf_counter() - self.started, 2),
               "beta": pl_module.beta_final, **terms}  # fmt: skip
        if self.validations % self.snapshot_every == 0:
            row.update(self.snapshot(trainer, pl_module))
        self.rows.append(row)
        if "total" in terms and terms["total"] < self.best:
            self.best, self.best_step = terms["total"], step
            pl_module.vae.save(self.run_dir / "best.safetensors")
        vk.runs.write_history(self.run_dir / "history.csv", self.rows)

    def snapshot(self, trainer, pl_module) -> dict[str, float]:
        """Log :func:`vaekit.runs.snapshot` to TensorBoard at this step (once per step);
        returns its scalars (``val/psnr`` -> ``psnr``) for the history row."""
        step = trainer.global_step
        if self.pictures_of is None or self.snapshot_step == step:
            return {}
        snap = vk.runs.snapshot(pl_module.vae, self.pictures_of, seed=self.seed)
        writer = _tensorboard(trainer)
        if writer is not None:
            snap.write(writer, step)
            writer.flush()
        self.snapshot_step = step
        return {key.split("/", 1)[1]: value for key, value in snap.scalars.items()}

    # -- the end -----------------------------------------------------------------------------
    def on_train_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        if trainer.global_step != self.last_row_step:
            self._train_row(trainer)  # the last step always has its row
        pl_module.vae.save(self.run_dir / "last.safetensors")
        vk.runs.write_history(self.run_dir / "history.csv", self.rows)


def _tensorboard(trainer):
    """The TensorBoard ``SummaryWriter`` among the trainer's loggers, or None."""
    from lightning.pytorch.loggers import TensorBoardLogger

    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None
