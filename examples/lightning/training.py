"""One training run of the Lightning example: data, module, Trainer, then the run folder's
final files (see train.py for the command line and docs/lightning.md for the whole story).

Imported by train.py once Hydra has composed the config, so a mistyped override is reported
before Lightning and torch are even imported.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path

import lightning as L
import torch
from data_module import VAEDataModule
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from run_folder import RunFolder
from vae_module import VAEModule, build_prior

import vaekit as vk

# Lightning prints its INFO lines itself; without this Hydra's logging prints each one twice
logging.getLogger("lightning").propagate = False


def run_dir() -> Path:
    """This job's output folder (Hydra's run dir, or the sweep's job folder)."""
    return Path(HydraConfig.get().runtime.output_dir)


def log_version(folder: Path, out: str) -> str:
    """The TensorBoard run name: the run folder's path below ``out`` (runs/<name> ->
    tb_logs/<name>, a sweep's runs/<stamp>-sweep/0-<name> -> tb_logs/<stamp>-sweep/0-<name>)."""
    try:
        return str(folder.resolve().relative_to(Path(out).resolve()))
    except ValueError:
        return folder.name


def write_config(folder: Path, cfg: DictConfig, vae_cfg: vk.VAEConfig, dm, module, logger):
    """config.json in the layout vk.runs.read_run reads (as examples/train.py writes it)."""
    config = {
        "trainer": "lightning",
        "args": OmegaConf.to_container(cfg, resolve=True),
        "model": vae_cfg.to_dict(),
        "beta_schedule": module.beta.to_dict(),
        "beta_final": module.beta_final,
        "data": dm.describe(),
        "parameters": sum(p.numel() for p in module.vae.parameters()),
        "tensorboard": str(Path(logger.log_dir).resolve()) if logger is not None else None,
        "versions": {
            "vaekit": vk.__version__,
            "torch": torch.__version__,
            "lightning": L.__version__,
        },
        "command": ["train.py", *sys.argv[1:]],
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")


def fit_prior(cfg: DictConfig, module: VAEModule, dm: VAEDataModule, folder: Path) -> dict:
    """``fit_prior``: an ex-post prior on the training images' posterior means (Ghosh et al.
    2020), saved with the model in best.safetensors (a learned training prior is kept in
    best-<name>.safetensors). Returns what metrics.json records."""
    vae = module.vae
    prior = build_prior(cfg.fit_prior, "fit_prior")
    loader = torch.utils.data.DataLoader(dm.train_set, batch_size=256)
    latents = vk.priors.encode_dataset(vae, loader, use="mean", progress=False)
    generator = torch.Generator(device=latents.device).manual_seed(cfg.seed)
    trained = vk.priors.to_config(vae.prior)
    if list(vae.prior.parameters()):
        vae.save(folder / f"best-{trained['name']}.safetensors")
    prior.fit(latents, generator=generator, progress=False)
    vae.prior = prior
    vae.save(folder / "best.safetensors")
    return {"trained": trained, "fitted": vk.priors.to_config(prior), "latents": len(latents)}


def final_metrics(module: VAEModule, dm: VAEDataModule, folder: Path, info: dict) -> dict:
    """metrics.json: reconstruction quality and latent health of the saved model on the
    validation images (the keys the explorer's comparison table reads)."""
    vae = module.vae
    x = dm.first_images("val", 2000).to(module.device)
    snap = vk.runs.snapshot(vae, x)
    kl = snap.histograms["latent/kl_per_dim"]
    metrics = {
        "run": info,
        "eval_split": "val",
        "psnr": snap.scalars["val/psnr"],
        "ssim": snap.scalars["val/ssim"],
        "active_units": int(snap.scalars["latent/active_units"]),
        "kl_per_dim": {"mean": float(kl.mean()), "values": [float(v) for v in kl]},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


# lightning.Trainer options that must be numbers (Lightning's own message for a string is a
# bare "'<' not supported between instances of 'str' and 'int'")
WHOLE = ("max_epochs", "max_steps", "min_epochs", "min_steps", "log_every_n_steps",
         "accumulate_grad_batches", "num_sanity_val_steps", "check_val_every_n_epoch")  # fmt: skip
NUMBER = ("gradient_clip_val", "val_check_interval", "limit_train_batches", "limit_val_batches")


def check_trainer_options(options: dict) -> None:
    """The ``trainer`` group's numbers are numbers: a ValueError naming the key otherwise."""
    for key, value in options.items():
        if value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key in WHOLE and not (number and float(value).is_integer()):
            raise ValueError(f"trainer.{key} must be a whole number (or null), got {value!r}")
        if key in NUMBER and not number:
            raise ValueError(f"trainer.{key} must be a number (or null), got {value!r}")


def train(cfg: DictConfig) -> float | None:
    """One run; returns the best validation total (what a sweeper would minimise)."""
    folder = run_dir()
    folder.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = VAEModule(  # a bad model, loss or schedule fails here, before any data is read
        model=OmegaConf.to_container(cfg.model, resolve=True),
        loss=OmegaConf.to_container(cfg.loss, resolve=True),
        schedule=OmegaConf.to_container(cfg.schedule, resolve=True),
        optimizer=OmegaConf.to_container(cfg.optimizer, resolve=True),
    )
    vae_cfg = module.vae.config
    build_prior(cfg.fit_prior, "fit_prior")  # a bad fit_prior fails now, not after training
    options = OmegaConf.to_container(cfg.trainer, resolve=True)
    check_trainer_options(options)
    dm = VAEDataModule.from_config(
        OmegaConf.to_container(cfg.data, resolve=True), vae_cfg, cfg.seed
    )
    dm.setup("fit")  # bad data fail here, before the Trainer starts any process
    tb = cfg.tensorboard
    logger = None
    if tb.save_dir:
        logger = TensorBoardLogger(
            save_dir=tb.save_dir, name="", version=log_version(folder, cfg.out),
            default_hp_metric=False,
        )  # fmt: skip
    writer = RunFolder(folder, images=tb.images, snapshot_every=tb.snapshot_every, seed=cfg.seed)
    trainer = L.Trainer(
        logger=logger if logger is not None else False, callbacks=[writer],
        default_root_dir=str(folder), enable_checkpointing=False, **options,
    )  # fmt: skip
    if rank_zero_only.rank == 0:  # the Trainer knows its rank only once fit() starts
        write_config(folder, cfg, vae_cfg, dm, module, logger)
    trainer.fit(module, datamodule=dm)
    if not trainer.is_global_zero:
        return None
    # rank 0: the last step's pictures, then the best weights -> prior, metrics
    writer.snapshot(trainer, module)
    if logger is not None:
        logger.experiment.close()  # Lightning closed it after fit; the snapshot reopened it
    best = folder / "best.safetensors"
    if best.is_file():
        module.vae.load_weights(best)
    module.vae.eval()
    info = {
        "steps": trainer.global_step, "epochs": trainer.current_epoch,
        "best_step": writer.best_step,
        "best_val_total": writer.best if math.isfinite(writer.best) else None,
        "checkpoint": "best.safetensors" if best.is_file() else "last.safetensors",
        "world_size": trainer.world_size, "trainer": "lightning",
    }  # fmt: skip
    if cfg.fit_prior is not None:
        info["prior"] = fit_prior(cfg, module, dm, folder)
    final_metrics(module, dm, folder, info)
    print(f"[lightning] done: {folder}/ (best.safetensors; python -m vaekit.explore {folder})")
    return writer.best if math.isfinite(writer.best) else None
