"""A LightningModule assembled from vaekit parts, and the builders that read its configs.

Everything here is vaekit: the network is a preset or a :class:`vaekit.VAEConfig`
(:func:`build_vae`), the objective is :class:`vaekit.losses.VAELoss` over a reconstruction
spec (:func:`build_recon`) with a β schedule from :mod:`vaekit.schedules` stepped by
``self.global_step``, the number of *optimizer* steps: under
``Trainer(accumulate_grad_batches=k)`` β moves once per k batches, exactly as it would
without accumulation at k times the batch size. Gradient clipping, mixed precision and
DDP are the Trainer's options; the module holds no dataset paths (data come from the
``LightningDataModule``).

Logged: every term of the :class:`vaekit.LossOutput`, named by
:func:`vaekit.runs.scalar_tags` (the tags ``examples/train.py --tensorboard`` writes), per
validation (``val/``, at the schedule's final β and with the true KL, so validations compare
along the schedule) through ``self.log`` to the run folder's callback; the training terms
(``train/``) are returned to it. The callback (``run_folder.RunFolder``) logs both at the
number of optimizer steps done, the training terms as means every ``log_every_n_steps``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch

import vaekit as vk


def _plain(value: Any) -> Any:
    """OmegaConf containers (or anything list/dict-like) as plain Python lists and dicts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    return value


def build_vae_config(model: Mapping[str, Any]) -> vk.VAEConfig:
    """``model.preset`` with the non-null ``model.config`` fields replaced, or (``preset:
    null``) a :class:`vaekit.VAEConfig` of ``model.config`` alone.

    Example:
        >>> build_vae_config({"preset": "fmnist32", "config": {"latent_dim": 16}}).latent_shape
        (16,)
    """
    model = _plain(model)
    fields = {k: v for k, v in (model.get("config") or {}).items() if v is not None}
    for key in ("widths", "attention_at", "logvar_range"):
        if isinstance(fields.get(key), list):
            fields[key] = tuple(fields[key])
    preset = model.get("preset")
    if preset is not None:
        return vk.presets.config(preset, **fields)
    if not fields:
        raise ValueError(
            "model.preset is null and model.config is empty: name a preset "
            f"({', '.join(vk.presets.available())}) or give the VAEConfig fields in model.config"
        )
    return vk.VAEConfig(**fields)


def build_prior(spec: Mapping[str, Any] | None, what: str) -> vk.priors.Prior | None:
    """``{name: mog, components: 16}`` -> ``vk.priors.build("mog", components=16)``; None
    stays None."""
    if spec is None:
        return None
    spec = _plain(spec)
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ValueError(
            f"{what} must be null or a mapping with a 'name' (one of "
            f"{', '.join(vk.priors.available())}) and its options, e.g. "
            f"{{name: gmm, components: 10}}; got {spec!r}"
        )
    options = {k: v for k, v in spec.items() if k != "name"}
    return vk.priors.build(spec["name"], **options)


def build_recon(terms: Mapping[str, Any]) -> torch.nn.Module:
    """The reconstruction loss of ``loss.terms``: ``{name: weight}`` or ``{name: {weight: w,
    OPTION: value}}``; one term is the loss itself (times its weight when it is not 1),
    several are a :class:`vaekit.losses.Weighted` sum.

    Example:
        >>> type(build_recon({"l1": 1.0, "ssim": 0.5})).__name__
        'Weighted'
    """
    terms = _plain(terms)
    if not isinstance(terms, dict) or not terms:
        raise ValueError(
            "loss.terms must map loss names to weights, e.g. {bce: 1.0} or {l1: 1.0, ssim: 0.5}; "
            f"got {terms!r} (names: {', '.join(vk.losses.available())})"
        )
    built: dict[str, tuple[torch.nn.Module, float]] = {}
    for name, value in terms.items():
        options = dict(value) if isinstance(value, dict) else {"weight": value}
        weight = options.pop("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"loss.terms.{name}: the weight must be a number >= 0, got {weight!r}")
        built[name] = (vk.losses.build(name, **options), float(weight))
    if len(built) == 1:
        ((module, weight),) = built.values()
        if weight == 1.0:
            return module
    return vk.losses.Weighted(built)


def build_schedule(schedule: Mapping[str, Any]) -> vk.schedules.Schedule:
    """A :mod:`vaekit.schedules` schedule from its ``to_dict()`` form (``name`` + fields)."""
    return vk.schedules.from_dict(_plain(schedule))


class VAEModule(L.LightningModule):
    """A VAE, its loss and its optimizer, as Lightning wants them.

    Args:
        model: ``preset``, ``config`` (VAEConfig fields) and ``prior`` (a prior learned with
            the VAE, or null for N(0, I)); see :func:`build_vae_config`.
        loss: ``terms`` (:func:`build_recon`), ``beta`` (the schedule's target, read by the
            schedule configs) and ``free_bits`` (nats per latent dimension).
        schedule: a β schedule as ``vk.schedules.from_dict`` reads it.
        optimizer: AdamW's ``lr``, ``weight_decay`` and ``betas``.

    All four are saved as hyperparameters, so ``VAEModule.load_from_checkpoint(path)`` and
    TensorBoard's HPARAMS tab know them. ``self.vae`` is a plain :class:`vaekit.VAE`:
    ``module.vae.save("model.safetensors")`` is the file the explorer and every vaekit tool open.
    """

    def __init__(
        self,
        model: Mapping[str, Any],
        loss: Mapping[str, Any],
        schedule: Mapping[str, Any],
        optimizer: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        model, loss, schedule = _plain(model), _plain(loss), _plain(schedule)
        optimizer = _plain(optimizer or {})
        self.save_hyperparameters(
            {"model": model, "loss": loss, "schedule": schedule, "optimizer": optimizer}
        )
        self.vae = vk.VAE(
            build_vae_config(model), prior=build_prior(model.get("prior"), "model.prior")
        )
        self.beta = build_schedule(schedule)
        recon = build_recon(loss.get("terms", {}))
        free_bits = loss.get("free_bits", 0.0) or 0.0
        self.loss_fn = vk.losses.VAELoss(
            recon, kl=vk.losses.KL(free_bits=free_bits), beta=self.beta
        )
        # validation: the same reconstruction, the true KL (no free bits), the final β
        self.beta_final = self.beta(10**12)
        self.val_loss_fn = vk.losses.VAELoss(recon, kl=vk.losses.KL(), beta=self.beta_final)
        self.optimizer_options = {"lr": 1e-3, "weight_decay": 1e-4, "betas": (0.9, 0.999)}
        self.optimizer_options.update(optimizer)

    def forward(self, x: torch.Tensor) -> vk.VAEOutput:
        return self.vae(x)

    def training_step(self, x: torch.Tensor, batch_idx: int) -> dict:
        out = self.vae(x)
        # global_step counts optimizer steps (not batches): β follows them, also under
        # gradient accumulation, and resumes from a checkpoint at the right value
        res = self.loss_fn(out, x, step=self.global_step)
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        values = {"total": res.total.detach(), **res.terms, "beta": res.beta, "lr": lr}
        # the progress bar only: the loggers get means over steps, at the step they end,
        # from the run folder's callback (run_folder.RunFolder), which receives `values`
        self.log_dict({"total": values["total"], "beta": res.beta}, prog_bar=True, logger=False)
        return {"loss": res.total, "values": values}

    def validation_step(self, x: torch.Tensor, batch_idx: int) -> None:
        gen = torch.Generator(device=x.device).manual_seed(batch_idx)  # the same noise each time
        q = self.vae.encode(x)
        z = q.sample(generator=gen)
        recon, logvar = self.vae.decode_with_logvar(z)
        out = vk.VAEOutput(recon, q, z, logvar, prior=self.vae.prior)
        res = self.val_loss_fn(out, x, step=self.global_step)
        values = {"total": res.total, **res.terms}
        # sync_dist: the mean over every process's shard, so every rank sees the same number;
        # the run folder's callback logs it at the step (the optimizer steps done)
        self.log_dict(
            vk.runs.scalar_tags("val", values), on_step=False, on_epoch=True, sync_dist=True,
            batch_size=len(x), logger=False,
        )  # fmt: skip

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW; weight decay only on the network. A learned prior's parameters (mixture
        means and scales, VampPrior pseudo-inputs) and a loss's (a learned σ) are not
        regularisers' business: decay would pull them towards 0."""
        opts = dict(self.optimizer_options)
        decay = opts.pop("weight_decay")
        opts["betas"] = tuple(opts["betas"])
        exempt = list(self.vae.prior.parameters()) + list(self.loss_fn.parameters())
        ids = {id(p) for p in exempt}
        groups = [{"params": [p for p in self.parameters() if id(p) not in ids],
                   "weight_decay": decay}]  # fmt: skip
        if exempt:
            groups.append({"params": exempt, "weight_decay": 0.0})
        return torch.optim.AdamW(groups, **opts)
