"""Train a vaekit VAE on Fashion-MNIST or a folder of images, on one process or with DDP.

    python examples/train.py --config examples/recipes/fmnist32.json --minutes 3
    python examples/train.py --preset celeba64 --data ~/celeba --image-size 64 --hflip \\
        --loss "l1=1,ssim=0.5" --beta "linear:0->1@5ep" --epochs 30
    torchrun --standalone --nproc_per_node=4 examples/train.py \\
        --config examples/recipes/celeba64.json --data ~/celeba
    python examples/train.py --resume runs/20250101-120000-fmnist32 --epochs 60
    python examples/train.py --config examples/recipes/fmnist32.json --adversarial patchgan
    python examples/train.py --config examples/recipes/fmnist32.json --tensorboard

Writes runs/<YYYYmmdd-HHMMSS>-<name>/: config.json, history.csv, best.safetensors and
last.safetensors (vk.VAE.load), trainer_state.pt (for --resume), pictures, metrics.json and
summary.md (and TensorBoard event files with --tensorboard). Options come from defaults <
--config FILE.json < a resumed run < the command line. See docs/training.md.

This file is the training run: ``Trainer`` builds it, loops and finishes, one method per step;
examples/trainlib/ holds the plumbing (options, data, checkpoints, metrics). Copy both and
edit.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for `import trainlib`

from trainlib import checkpoint, data, evaluate, options, runtime, specs
from trainlib.tensorboard import TensorBoardLog, summary_writer_class

import vaekit as vk
from vaekit._inference import evaluating  # eval() + no_grad; every submodule's mode back


class UsageError(ValueError):
    """A problem with the options or the data, reported without a traceback."""


@contextlib.contextmanager
def usage_errors():
    """Turn bad options/data (ValueError, TypeError, FileNotFoundError) into a UsageError."""
    try:
        yield
    except UsageError:
        raise
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise UsageError(str(err)) from err


class RunningMean:
    """Mean of every loss term since the last ``reset`` (for the progress bar and history.csv)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, res: vk.LossOutput) -> None:
        for key, value in {"total": res.total, **res.terms}.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.count += 1

    def means(self) -> dict[str, float]:
        return {k: float(v) / self.count for k, v in self.sums.items()}

    def reset(self) -> None:
        self.sums, self.count = {}, 0


def check_finite(means: dict[str, float], step: int, run_dir: Path | None) -> None:
    """Stop on a NaN/inf loss: nothing is clipped or patched, the last checkpoint stays good."""
    if not all(math.isfinite(v) for v in means.values()):
        raise FloatingPointError(
            f"the loss is not finite at step {step}: {means}; lower --lr, keep --clip-grad on, "
            f"try --amp none, and resume from the last checkpoint with --resume {run_dir}"
        )


def model_config(args) -> vk.VAEConfig:
    """The preset or --model-config, with --image-size applied."""
    if args.preset is not None:
        cfg = vk.presets.config(args.preset)
    else:
        path = Path(args.model_config)
        if not path.is_file():
            raise FileNotFoundError(f"--model-config {str(path)!r}: no such file")
        try:
            cfg = vk.VAEConfig.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError, ValueError) as err:
            raise ValueError(
                f"--model-config {str(path)!r} is not a VAEConfig.to_dict() JSON file: {err}"
            ) from None
    if args.image_size is not None and cfg.image_size != (args.image_size, args.image_size):
        try:
            cfg = cfg.replace(image_size=args.image_size)
        except ValueError as err:
            raise ValueError(
                f"--image-size {args.image_size} does not fit this network "
                f"({args.preset or args.model_config}): {err}"
            ) from None
    if cfg.image_size[0] != cfg.image_size[1]:
        raise ValueError(f"train.py trains square images; the model config has {cfg.image_size}")
    return cfg


def main(argv: list[str] | None = None) -> Path | None:
    """Run the trainer; returns the run folder (on rank 0; None on other ranks)."""
    with usage_errors():
        args = options.parse(argv, __doc__)
        args.command = ["train.py", *(sys.argv[1:] if argv is None else argv)]
        rt = runtime.setup(args)
    try:
        return train(args, rt)
    finally:
        runtime.cleanup(rt)


def train(args, rt: runtime.Runtime) -> Path | None:
    """Build the run, train until a stop condition, then report (rank 0 writes the files)."""
    run = Trainer(args, rt)  # bad options or data fail here, before any training
    stop = run.loop()
    return run.finish(stop)


class Trainer:
    """One training run, in the order it happens.

    1. build (``__init__``): model config, the discriminator (``--adversarial``), data,
       objective, model and optimiser, the run folder (new or resumed), DDP/compile wrapping,
       ``config.json``;
    2. loop (:meth:`loop`): epochs of optimiser steps (:meth:`train_step`, then the
       discriminator's :meth:`_discriminator_step`), train rows in ``history.csv``,
       validation (:meth:`validate`) and checkpoints (:meth:`save`);
    3. finish (:meth:`finish`): a last validation and checkpoint, then on rank 0 the best
       checkpoint's pictures, ``metrics.json`` and ``summary.md`` (:meth:`report`).

    ``state`` holds everything about the progress that ``trainer_state.pt`` saves and
    ``--resume`` restores (step, epoch, batch in the epoch, best validation, patience, time).
    """

    # ---- 1. build ----------------------------------------------------------------------------
    def __init__(self, args, rt: runtime.Runtime) -> None:
        self.args, self.rt = args, rt
        with usage_errors():
            if args.tensorboard:
                summary_writer_class()  # a missing package fails before the data load
            self.cfg = model_config(args)
            self.size = self.cfg.image_size[0]
            self._build_discriminator()  # a bad --adversarial fails before the data load
            self._build_data()
            self._build_objective()
            self._build_model_and_optimiser()
            self._open_run_dir()
        self.net = self._wrap(self.vae)
        if self.disc is not None:
            self._add_adversarial()
        if rt.main:
            self._write_config()
        self.pictures_of = data.first_images(self.dataset.val, 16)
        self.tb = None  # --tensorboard: rank 0's writer (trainlib/tensorboard.py)
        if args.tensorboard and rt.main:
            self.tb = TensorBoardLog(self.run_dir, seconds=args.log_seconds,
                                     resume_step=self.step if args.resume else None)  # fmt: skip

    def _build_discriminator(self) -> None:
        """``--adversarial``: the discriminator (seeded by --seed, so the same on every rank),
        tried once on an image of the run's size, and its own AdamW and GradScaler."""
        args, rt, spec = self.args, self.rt, self.args.adversarial_spec
        self.disc = self.adv = None
        if spec is None:
            return
        with torch.random.fork_rng(devices=[]):  # its own stream: the VAE's init is unchanged
            torch.manual_seed(args.seed)
            disc = spec.build_discriminator(self.cfg.in_channels).to(rt.device)
        specs.check_discriminator(disc, spec, self.cfg.in_channels, self.size, rt.device)
        if args.channels_last:
            disc = disc.to(memory_format=torch.channels_last)
        self.disc = disc
        self.d_opt = spec.optimizer(disc.parameters(), fused=rt.device.type == "cuda")
        self.d_scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp_dtype == torch.float16)

    def _build_data(self) -> None:
        args, rt = self.args, self.rt
        dataset = data.load(
            args, self.cfg.in_channels, self.size, resize=args.image_size is not None
        )
        if len(dataset.val) < rt.world_size:
            raise ValueError(
                f"{len(dataset.val)} validation image(s) for {rt.world_size} processes: raise "
                "--val-fraction so every process gets at least one"
            )
        if args.final_metrics and len(dataset.test) < 2:
            raise ValueError(
                f"the final metrics need at least 2 {dataset.eval_split} images, got "
                f"{len(dataset.test)}: raise --val-fraction (or --eval-limit), or pass "
                "--no-final-metrics"
            )
        spec = args.fit_prior_spec
        need = 0 if spec is None else 20 if spec.is_auto else getattr(spec.build(), "components", 2)
        if len(dataset.train) < need:
            raise ValueError(
                f"--fit-prior {spec.text} fits on the {len(dataset.train)} training images' "
                f"latents and needs at least {need}: add images or use fewer components"
            )
        self.dataset = dataset
        self.loader, self.sampler = data.train_loader(
            dataset, args, rt.rank, rt.world_size, pin=rt.device.type == "cuda"
        )
        self.val_loader = data.eval_loader(dataset.val, args, rt.rank, rt.world_size)
        self.steps_per_epoch = self.sampler.steps_per_epoch

    def _build_objective(self) -> None:
        args = self.args
        self.beta = args.beta_plan.schedule(self.steps_per_epoch)
        self.beta_final = args.beta_plan.final_value()
        recon = specs.build_recon(
            args.loss_terms, multiscale=args.multiscale, perceptual_weights=args.perceptual_weights
        )
        loss_fn = vk.losses.VAELoss(
            recon, kl=vk.losses.KL(free_bits=args.free_bits), beta=self.beta
        )
        self.loss_fn = loss_fn.to(self.rt.device)
        # validation: the same reconstruction loss, the true KL, the final beta
        self.val_loss_fn = vk.losses.VAELoss(
            self.loss_fn.recon, kl=vk.losses.KL(), beta=self.beta_final
        )
        self.likelihood = specs.likelihood_of(args.loss_terms, args.multiscale, self.cfg.variance)
        self.eval_every = args.eval_every_length.to_steps(self.steps_per_epoch)
        # what summary.md must say next to the metrics: skipped files, random backbones
        self.notes = list(self.dataset.notes) + [
            f"the {name} term's backbone is random (--perceptual-weights none or weights=None), "
            "not ImageNet-trained: the term measures nothing useful and its values do not compare "
            "with a run that has the weights"
            for name in specs.random_backbones(args.loss_terms, args.perceptual_weights)
        ]

    def _build_model_and_optimiser(self) -> None:
        args, rt = self.args, self.rt
        torch.manual_seed(args.seed)  # the same initial weights on every rank
        prior = None if args.prior_spec is None else args.prior_spec.build()
        vae = vk.VAE(self.cfg, prior=prior).to(rt.device)
        if isinstance(vae.prior, vk.priors.VampPrior) and not args.resume:
            # pseudo-inputs start as training images (seeded), not noise: the mixture starts
            # where the data are
            images = data.first_images(self.dataset.train, 4 * vae.prior.num_pseudo_inputs)
            vae.prior.init_pseudo_inputs(
                images.to(rt.device), generator=torch.Generator().manual_seed(args.seed)
            )
        if args.channels_last:
            vae = vae.to(memory_format=torch.channels_last)
        self.vae = vae
        self.training_prior = vk.priors.to_config(vae.prior)  # what the model is trained with
        self.aug = runtime.seed_everything(args.seed, rt.rank)  # noise differs per rank

        # a learned prior's parameters (mixture means, pseudo-inputs) and loss parameters (a
        # learned sigma) get no weight decay: it would pull them towards 0, not regularise
        prior_params = list(vae.prior.parameters())
        own = {id(p) for p in prior_params}
        groups = [{"params": [p for p in vae.parameters() if id(p) not in own],
                   "weight_decay": args.weight_decay}]  # fmt: skip
        if prior_params:
            groups.append({"params": prior_params, "weight_decay": 0.0})
        if list(self.loss_fn.parameters()):
            groups.append({"params": list(self.loss_fn.parameters()), "weight_decay": 0.0})
        self.opt = opt = torch.optim.AdamW(groups, lr=args.lr, fused=rt.device.type == "cuda")
        # the cosine length: --epochs if given, else --max-steps (then stopping early with a
        # smaller --max-steps changes the schedule; keep it fixed to resume exactly)
        total_steps = args.epochs * self.steps_per_epoch if args.epochs else args.max_steps
        if args.lr_schedule == "cosine":
            self.lr_sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps))
            )
        elif args.lr_schedule == "plateau":
            self.lr_sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
        else:
            self.lr_sched = None
        self.scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp_dtype == torch.float16)

    def _open_run_dir(self) -> None:
        """A new run folder, or the one we resume (weights, optimiser, RNG, history back)."""
        args, rt = self.args, self.rt
        self.state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best_val": math.inf,
                      "best_step": None, "bad_evals": 0, "train_seconds": 0.0}  # fmt: skip
        self.history = checkpoint.History()
        if args.resume:
            self.run_dir = Path(args.resume)
            saved = checkpoint.load_state(self.run_dir / checkpoint.STATE_FILE)
            self.vae.load_weights(self.run_dir / "last.safetensors")
            self.opt.load_state_dict(saved["optimizer"])
            self.scaler.load_state_dict(saved["scaler"])
            self.loss_fn.load_state_dict(saved["loss"])
            if self.lr_sched is not None and saved["lr_scheduler"] is not None:
                self.lr_sched.load_state_dict(saved["lr_scheduler"])
            self.state.update({k: saved[k] for k in self.state})
            if not runtime.set_rng_state(rt, saved["rng"], self.aug):
                rt.log(f"resumed with {rt.world_size} processes, saved with {len(saved['rng'])}: "
                       "the noise differs from an uninterrupted run")  # fmt: skip
            self.history = checkpoint.History.read(self.run_dir / "history.csv", self.step)
            if self.disc is not None:
                self._load_discriminator(saved)
            elif "discriminator" in saved:
                rt.log("note: the resumed run had a discriminator; without --adversarial it is "
                       "left out from here on")  # fmt: skip
        elif rt.main:
            name = args.name or args.preset or Path(args.model_config).stem
            self.run_dir = checkpoint.make_run_dir(args.out, name)
        else:
            self.run_dir = None  # only rank 0 writes

    def _load_discriminator(self, saved: dict) -> None:
        """The discriminator, its optimiser and GradScaler from ``trainer_state.pt``."""
        text = self.args.adversarial_spec.text
        if "discriminator" not in saved:  # e.g. a plain run continued with --adversarial
            self.rt.log(f"note: the resumed run had no discriminator; --adversarial {text} "
                        "starts with a fresh one")  # fmt: skip
            return
        try:
            self.disc.load_state_dict(saved["discriminator"])
        except RuntimeError as err:
            raise ValueError(
                f"--resume {self.run_dir}: the saved discriminator does not fit --adversarial "
                f"{text!r}; resume with the run's own --adversarial: {' '.join(str(err).split())}"
            ) from None
        self.d_opt.load_state_dict(saved["d_optimizer"])
        self.d_scaler.load_state_dict(saved["d_scaler"])

    def _wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module the loop calls: DDP under torchrun, torch.compile with --compile."""
        net = module
        if self.rt.distributed:
            net = DistributedDataParallel(
                module, device_ids=[self.rt.device.index] if self.rt.device.type == "cuda" else None
            )
        if self.args.compile:
            if self.disc is not None:
                # the adaptive weight differentiates through the compiled graphs before the
                # backward (retain_graph), R1 twice (create_graph): neither works with buffers
                # donated to a compiled backward
                torch._functorch.config.donated_buffer = False
            net = torch.compile(net)
        return net

    def _add_adversarial(self) -> None:
        """The adversarial term joins the training loss (the wrapped discriminator, the adaptive
        weight at the unwrapped decoder's last layer). Validation reports the generator loss
        of the plain discriminator in eval mode with weight 0: never part of the validation
        total, so best.safetensors and early stopping see the same number as without it."""
        spec = self.args.adversarial_spec
        self.disc_net = self._wrap(self.disc)
        self.adv = spec.build(self.disc_net, steps_per_epoch=self.steps_per_epoch,
                              last_layer=self.vae.decoder.last_layer)  # fmt: skip
        self.loss_fn.adversarial = self.adv
        report_only = vk.losses.Adversarial(self.disc, loss=self.adv.loss, weight=0.0,
                                            adaptive=False)  # fmt: skip
        self.val_adv_loss_fn = vk.losses.VAELoss(
            self.val_loss_fn.recon, kl=self.val_loss_fn.kl, beta=self.beta_final,
            adversarial=report_only,
        )  # fmt: skip

    def _write_config(self) -> None:
        """config.json (options, model, schedule, data, versions) and the first log lines."""
        args, rt, dataset = self.args, self.rt, self.dataset
        self.config = {
            "args": options.to_json(args),
            "model": self.cfg.to_dict(),
            "beta_schedule": self.beta.to_dict(),
            "beta_final": self.beta_final,
            "loss": specs.format_loss(args.loss_terms),
            "data": {
                "name": dataset.name,
                "train": len(dataset.train),
                "val": len(dataset.val),
                dataset.eval_split: len(dataset.test),
                "channels": dataset.channels,
                "image_size": self.size,
                "notes": dataset.notes,
            },
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": rt.world_size,
            "global_batch_size": args.batch_size * rt.world_size,
            "parameters": sum(p.numel() for p in self.vae.parameters()),
            "adversarial": None,
            "versions": {"vaekit": vk.__version__, "torch": torch.__version__},
            "command": args.command,
        }
        spec = args.adversarial_spec
        if spec is not None:
            self.config["adversarial"] = spec.describe(self.steps_per_epoch) | {
                "parameters": sum(p.numel() for p in self.disc.parameters())
            }
        run_dir = self.run_dir
        (run_dir / "config.json").write_text(json.dumps(self.config, indent=2, default=str) + "\n")
        (run_dir / "images").mkdir(exist_ok=True)
        verb = "resuming" if args.resume else "writing to"
        rt.log(f"{verb} {run_dir} | {len(dataset.train)} train / {len(dataset.val)} val images, "
               f"{self.steps_per_epoch} steps per epoch x {rt.world_size} process(es) | "
               f"{self.config['parameters'] / 1e6:.2f} M parameters on {rt.device}")  # fmt: skip
        for note in self.notes[len(dataset.notes) :]:  # the data notes were warnings already
            rt.log(f"note: {note}")
        if spec is not None:
            a, o = self.config["adversarial"], spec.options
            rt.log(f"adversarial: {a['discriminator']} ({a['parameters'] / 1e6:.2f} M parameters), "
                   f"{a['loss']} loss, weight {a['weight']:g}"
                   f"{' (adaptive)' if a['adaptive'] else ''} from step {a['start_step']}; "
                   f"its AdamW lr {o['lr']:g}, betas {o['betas']}, "
                   f"weight decay {o['weight_decay']:g}")  # fmt: skip

    # ---- 2. loop -----------------------------------------------------------------------------
    @property
    def step(self) -> int:
        return self.state["step"]

    def epochs_done(self) -> float:
        return self.step / self.steps_per_epoch

    def elapsed(self) -> float:
        """Training seconds, including those of the runs this one resumes."""
        return self.seconds_before + time.perf_counter() - self.started

    def loop(self) -> str:
        """Train until a stop condition; returns why it stopped."""
        args, rt = self.args, self.rt
        self.started, self.seconds_before = time.perf_counter(), self.state["train_seconds"]
        self.loss_params = list(self.loss_fn.parameters())  # e.g. a learned sigma
        self.params = list(self.vae.parameters()) + self.loss_params
        self.meter = RunningMean()
        self.last_eval = self.step if args.resume else -1
        self.show = runtime.progress_enabled(args.progress, rt)
        self.last_row = time.perf_counter()  # when the last train row was written
        self.printed = None  # (time, step) of the last log line, printed without a progress bar
        self.first_step = self.step
        stop = None
        self.vae.train()
        try:
            while stop is None:
                stop = self._epoch()
        except KeyboardInterrupt:
            if rt.distributed:
                raise
            stop = "interrupted"
            if self.meter.count:  # the steps since the last row are not lost
                self._train_row(self.last_beta)
        return stop

    def _epoch(self) -> str | None:
        """One epoch (the rest of it when resumed mid-epoch); returns a stop reason or None."""
        state, spe = self.state, self.steps_per_epoch
        self.sampler.set_epoch(state["epoch"], skip_batches=state["batch_in_epoch"])
        bar = tqdm(total=spe, initial=state["batch_in_epoch"], disable=not self.show,
                   desc=f"epoch {state['epoch'] + 1}", leave=False, dynamic_ncols=True)  # fmt: skip
        stop = None
        for x in self.loader:
            res = self.train_step(x)
            bar.update()
            stop = self._after_step(res, bar)
            if stop:
                break
        else:  # the epoch ran to its end
            state.update(epoch=state["epoch"] + 1, batch_in_epoch=0)
            epoch = state["epoch"]
            if self.rt.main and self.args.image_every and epoch % self.args.image_every == 0:
                self.pictures(f"epoch-{epoch:04d}-", self.run_dir / "images")
            if self.args.epochs and epoch >= self.args.epochs:
                stop = "epochs"
        bar.close()
        return stop

    def train_step(self, x: torch.Tensor) -> vk.LossOutput:
        """One optimiser step on the batch ``x``."""
        args, rt, opt, scaler = self.args, self.rt, self.opt, self.scaler
        x = x.to(rt.device, non_blocking=True)
        if args.hflip:  # flips drawn from a checkpointed generator: resume-exact
            flip = (torch.rand(len(x), generator=self.aug) < 0.5).to(rt.device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with rt.autocast():
            out = self.net(x)
            res = self.loss_fn(out, x, step=self.step)
        opt.zero_grad(set_to_none=True)
        scaler.scale(res.total).backward()
        rt.average_gradients(self.loss_params)  # DDP syncs the model's gradients, not these
        if args.clip_grad:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(self.params, args.clip_grad)
        scaler.step(opt)
        scaler.update()
        if self.adv is not None:
            res = self._discriminator_step(out, x, res)
        if isinstance(self.lr_sched, torch.optim.lr_scheduler.LambdaLR):
            self.lr_sched.step()
        self.state.update(step=self.step + 1, batch_in_epoch=self.state["batch_in_epoch"] + 1)
        self.meter.add(res)
        self.last_beta = res.beta
        return res

    def _discriminator_step(
        self, out: vk.VAEOutput, x: torch.Tensor, res: vk.LossOutput
    ) -> vk.LossOutput:
        """The discriminator's step on the batch the VAE just trained on (its reconstructions
        detached: no gradient into the VAE), with its own optimiser and GradScaler. Before the
        term starts it is skipped and its terms are 0. Returns ``res`` with ``d_loss``,
        ``logits_real`` and ``logits_fake`` (and ``r1``) added to its terms."""
        rt, step = self.rt, self.step
        with rt.autocast():
            d = self.loss_fn.discriminator_loss(out, x, step=step)
        if self.adv.active(step):
            self.d_opt.zero_grad(set_to_none=True)  # the VAE's backward reached them too
            self.d_scaler.scale(d.total).backward()
            self.d_scaler.step(self.d_opt)
            self.d_scaler.update()
        return vk.LossOutput(total=res.total, terms=res.terms | d.terms, beta=res.beta)

    def _after_step(self, res: vk.LossOutput, bar) -> str | None:
        """Stop check, progress bar, train rows, validation and checkpoint after a step."""
        args, step = self.args, self.step
        stop = self._stop_reason()  # first: the last step is always logged and evaluated
        evaluate_now = step % self.eval_every == 0 or bool(stop)
        # train rows at fixed steps (the same in every run and on every rank) and, in
        # between, whenever --log-seconds of wall-clock time have passed
        fixed_row = step == 1 or step % args.log_every == 0 or evaluate_now
        timed_row = args.log_seconds > 0 and time.perf_counter() - self.last_row >= args.log_seconds
        if fixed_row or step % 10 == 0:  # steps every rank shares: all stop together
            means = self.meter.means()  # since the last history row
            check_finite(means, step, self.run_dir)
            shown = {k: f"{means[k]:.4g}" for k in ("total", "recon", "kl_raw")}
            bar.set_postfix(shown | {"beta": f"{res.beta:.3g}"})
        if fixed_row or timed_row:
            self._train_row(res.beta)
        if evaluate_now:
            self.last_eval = step
            if self.validate() and not stop:
                stop = "early stopping (patience)"
            if not stop:
                self.save()  # the final save comes in finish()
        return stop

    def _stop_reason(self) -> str | None:
        args, state = self.args, self.state
        if args.max_steps and self.step >= args.max_steps:
            return "max steps"
        if (args.epochs and state["epoch"] + 1 >= args.epochs
                and state["batch_in_epoch"] == self.steps_per_epoch):  # fmt: skip
            return "epochs"
        if args.minutes and self.rt.any(self.elapsed() - self.seconds_before > 60 * args.minutes):
            return "time budget (--minutes)"  # decided together: every rank stops at this step
        return None

    def _train_row(self, beta_now: float) -> None:
        """A history.csv train row: the mean of every term since the last row; without a
        progress bar also a log line, at most one per --log-seconds (the first one at once)."""
        step, spe = self.step, self.steps_per_epoch
        means = self.meter.means()
        self.history.add(step=step, epoch=round(step / spe, 4), split="train",
                         time=round(self.elapsed(), 2), lr=self.opt.param_groups[0]["lr"],
                         beta=beta_now, **means)  # fmt: skip
        if self.tb is not None:
            self.tb.train(step, means, beta=beta_now, lr=self.opt.param_groups[0]["lr"])
        self.meter.reset()
        now = self.last_row = time.perf_counter()
        if self.show or (
            self.printed is not None and now - self.printed[0] < self.args.log_seconds
        ):
            return
        since = self.printed or (self.started, self.first_step)
        rate = (step - since[1]) / max(now - since[0], 1e-9)
        shown = ("total", "recon", "kl_raw")
        if "d_loss" in means:  # --adversarial
            shown += ("adv_weight", "d_loss")
        self.rt.log(f"step {step} (epoch {step / spe:.2f}) | "
                    + ", ".join(f"{k} {means[k]:.4g}" for k in shown)
                    + f", beta {beta_now:.3g} | {rate:.3g} steps/s")  # fmt: skip
        self.printed = (now, step)

    def _fork_rng(self):
        """Evaluation and pictures draw their own noise: the training RNG stream is untouched."""
        rt = self.rt
        return torch.random.fork_rng(devices=[rt.device] if rt.device.type == "cuda" else [])

    def validate(self) -> bool:
        """Validation total at the final beta -> best.safetensors, LR plateau; True: patience
        is exhausted (early stopping)."""
        args, rt, state, step = self.args, self.rt, self.state, self.step
        loss_fn, judge = self.val_loss_fn, contextlib.nullcontext()
        if self.adv is not None and step > self.adv.start:  # once D has trained: adv reported
            loss_fn, judge = self.val_adv_loss_fn, evaluating(self.disc)
        with self._fork_rng(), judge:
            terms = evaluate.validation_terms(
                self.vae, loss_fn, self.val_loader, rt,
                channels_last=args.channels_last, seed=args.seed,
            )  # fmt: skip
        self.history.add(step=step, epoch=round(step / self.steps_per_epoch, 4), split="val",
                         time=round(self.elapsed(), 2), lr=self.opt.param_groups[0]["lr"],
                         beta=self.beta_final, **terms)  # fmt: skip
        if self.tb is not None:
            self.tb.val(step, terms)
            if self.tb.snapshot_due(step):
                self._tensorboard_snapshot()
        improved = terms["total"] < state["best_val"]
        if improved:
            state.update(best_val=terms["total"], best_step=step, bad_evals=0)
            if rt.main:
                checkpoint.save_model(self.vae, self.run_dir / "best.safetensors")
        else:
            state["bad_evals"] += 1
        if isinstance(self.lr_sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.lr_sched.step(terms["total"])
        rt.log(f"step {step} (epoch {step / self.steps_per_epoch:.2f}) | val total "
               f"{terms['total']:.5g} (recon {terms['recon']:.5g}, KL {terms['kl_raw']:.4g} "
               f"nats) at final β {self.beta_final:g}{' | best' if improved else ''}")  # fmt: skip
        return bool(args.patience) and state["bad_evals"] >= args.patience

    def save(self, stop_reason: str | None = None) -> None:
        """last.safetensors + trainer_state.pt (every rank takes part in gathering RNG states)."""
        rng = runtime.rng_state(self.rt, self.aug)
        self.state["train_seconds"] = self.elapsed()
        if self.rt.main:
            run_dir, lr_sched = self.run_dir, self.lr_sched
            checkpoint.save_model(self.vae, run_dir / "last.safetensors")
            adversarial = {} if self.disc is None else {
                "discriminator": self.disc.state_dict(), "d_optimizer": self.d_opt.state_dict(),
                "d_scaler": self.d_scaler.state_dict(),
            }  # fmt: skip
            checkpoint.save_state({
                **self.state, "optimizer": self.opt.state_dict(),
                "scaler": self.scaler.state_dict(), "loss": self.loss_fn.state_dict(),
                "rng": rng, "stop_reason": stop_reason,
                "lr_scheduler": lr_sched.state_dict() if lr_sched is not None else None,
                **adversarial,
            }, run_dir / checkpoint.STATE_FILE)  # fmt: skip
            self.history.write(run_dir / "history.csv")

    def _tensorboard_snapshot(self) -> None:
        """--tensorboard: val PSNR/SSIM, active units, the KL histogram and the image grids of
        the current weights on the first validation images (rank 0)."""
        with self._fork_rng():
            self.tb.snapshot(self.vae, self.pictures_of, self.step, seed=self.args.seed)

    def pictures(self, prefix: str, folder: Path) -> None:
        """Reconstructions, samples and interpolations of the first validation images, and
        loss.png."""
        with self._fork_rng():
            evaluate.save_pictures(self.vae, self.pictures_of, folder, prefix, seed=self.args.seed)
            evaluate.plot_losses(self.history, self.run_dir / "loss.png",
                                 self.cfg.in_channels * self.size * self.size)  # fmt: skip

    # ---- 3. finish ---------------------------------------------------------------------------
    def finish(self, stop: str) -> Path | None:
        """The last validation and checkpoint; then rank 0 reports. Returns the run folder
        (None on other ranks)."""
        rt, step = self.rt, self.step
        if self.last_eval != step and stop != "interrupted":
            self.validate()  # so the last weights compete for best.safetensors
        self.save(stop)  # last.safetensors + trainer_state.pt
        if self.tb is not None:  # the last step always has its pictures
            self._tensorboard_snapshot()
            self.tb.close()
        rt.barrier()
        if stop == "interrupted":
            print(f"[train] interrupted at step {step}; continue with --resume {self.run_dir}",
                  flush=True)  # fmt: skip
            return self.run_dir
        if not rt.main:
            print(f"[train] rank {rt.rank} finished at step {step}", flush=True)
            return None
        self.report(stop)
        print(f"[train] rank 0 finished at step {step}", flush=True)
        return self.run_dir

    def report(self, stop: str) -> None:
        """Rank 0: the best checkpoint -> pictures, metrics.json and summary.md."""
        args, rt, state, step, run_dir = self.args, self.rt, self.state, self.step, self.run_dir
        rt.log(f"stopped after {step} steps ({self.epochs_done():.2f} epochs, "
               f"{state['train_seconds']:.0f} s): {stop}")  # fmt: skip
        self._load_best()
        self.vae.eval()
        self.pictures("", run_dir)
        run_info = {
            "steps": step, "epochs": round(self.epochs_done(), 4),
            "images_seen": step * args.batch_size * rt.world_size,
            "train_seconds": round(state["train_seconds"], 1), "stopped_because": stop,
            "best_step": state["best_step"], "best_val_total": state["best_val"],
            "checkpoint": "best.safetensors",
        }  # fmt: skip
        self.fitted = self.fit_prior() if args.fit_prior_spec is not None else None
        if args.final_metrics:
            metrics = self._final_metrics(run_info)
            self._write_summary(metrics, stop)
        report = "summary.md, " if args.final_metrics else ""
        fitted = f"samples-{self.fitted['name']}.png, " if self.fitted else ""
        rt.log(f"done: {run_dir}/ ({report}samples.png, {fitted}reconstructions.png, "
               "best.safetensors)")  # fmt: skip

    def _load_best(self) -> None:
        """The best weights, with the prior the model was trained with. A resumed run whose
        best.safetensors already holds a fitted prior (from its first finish) takes the
        training prior back: N(0, I), or the learned one kept in best-<prior>.safetensors."""
        best = self.run_dir / "best.safetensors"
        if not best.is_file():
            return
        self.vae.load_weights(best)
        if vk.priors.to_config(self.vae.prior) == self.training_prior:
            return
        kept = self.run_dir / f"best-{self.training_prior['name']}.safetensors"
        if kept.is_file():
            self.vae.load_weights(kept)
        else:
            self.vae.prior = vk.priors.from_config(self.training_prior)

    def fit_prior(self) -> dict:
        """``--fit-prior``: fit an ex-post prior on the posterior means of the training images
        (Ghosh et al. 2020), save the model with it as best.safetensors and draw
        samples-<prior>.png. Returns what metrics.json records about the fit.

        The model keeps its training prior in memory (the final metrics use both). A learned
        training prior (``--prior``) is kept on disk too, in best-<prior>.safetensors; the
        N(0, I) model needs no file: ``vae.prior = vk.priors.StandardNormal()``.
        """
        args, rt, spec, vae = self.args, self.rt, self.args.fit_prior_spec, self.vae
        loader = data.eval_loader(self.dataset.train, args)
        t = time.perf_counter()
        latents = vk.priors.encode_dataset(vae, loader, use="mean", progress=self.show)
        encode_seconds = time.perf_counter() - t
        rt.log(f"fitting --fit-prior {spec.text} on {len(latents)} posterior means of shape "
               f"{tuple(latents.shape[1:])} ({encode_seconds:.1f} s to encode)")  # fmt: skip
        t = time.perf_counter()
        generator = torch.Generator(device=rt.device).manual_seed(args.seed)
        selection = None
        with usage_errors():  # e.g. a singular covariance: says what to change
            if spec.is_auto:
                score = self._sample_fd_score()
                selection = vk.priors.select(latents.to(rt.device), score=score,
                                             generator=generator, progress=self.show)  # fmt: skip
                prior = selection.best
                how = ("held-out log-likelihood" if score is None
                       else "sample FD (against training images)")  # fmt: skip
                rt.log(f"--fit-prior auto: {selection.name} has the best {how} of "
                       f"{len(selection.table)} candidates\n{selection.to_markdown()}")  # fmt: skip
            else:
                prior = spec.build().to(rt.device)
                prior.fit(latents, generator=generator, progress=self.show, **spec.fit_kwargs)
        fit_seconds = time.perf_counter() - t
        name = vk.priors.name_of(prior)
        trained = vae.prior
        if list(trained.parameters()):  # a learned prior: its own file
            checkpoint.save_model(vae, self.run_dir / f"best-{self.training_prior['name']}"
                                  ".safetensors")  # fmt: skip
        with evaluate.using_prior(vae, prior), self._fork_rng():
            checkpoint.save_model(vae, self.run_dir / "best.safetensors")
            evaluate.save_samples(vae, self.run_dir / f"samples-{name}.png", seed=args.seed)
        self.fitted_prior = prior
        info = {
            "spec": spec.text, "name": name, "config": vk.priors.to_config(prior)["config"],
            "fit_options": spec.fit_kwargs, "latents": len(latents),
            "latent_shape": list(latents.shape[1:]), "use": "mean",
            "encode_seconds": round(encode_seconds, 2), "fit_seconds": round(fit_seconds, 2),
            "fit_report": prior.fit_report,
        }  # fmt: skip
        if selection is not None:
            info["select"] = {
                "chosen": selection.name, "criterion": selection.criterion,
                "num_fit": selection.num_fit, "num_heldout": selection.num_heldout,
                "table": [  # JSON has no NaN: a failed candidate's figures are null
                    {k: None if isinstance(v, float) and v != v else v for k, v in row.items()}
                    for row in selection.table
                ],
            }  # fmt: skip
        if isinstance(prior, vk.priors.GaussianMixture):
            info.update(em_iterations=prior.n_iter, converged=prior.converged,
                        loglik_per_latent=prior.history[-1])  # fmt: skip
        elif getattr(prior, "history", None):
            info["final_loss"] = prior.history[-1]
        report = prior.fit_report
        heldout = (f", log-likelihood {report['fit_log_prob']:.3f} nats/dim on its latents, "
                   f"{report['heldout_log_prob']:.3f} held out"
                   if "heldout_log_prob" in report else "")  # fmt: skip
        rt.log(f"fitted {spec.text} in {fit_seconds:.1f} s{heldout}; best.safetensors samples "
               f"from it (samples-{name}.png)")  # fmt: skip
        return info

    def _sample_fd_score(self):
        """``--fit-prior auto``'s score where the run measures FDs (Fashion-MNIST and
        ``--fid-samples``): the FD of a prior's decoded samples against as many training
        images in the run's classifier (the test images stay for the final figures). The
        held-out log-likelihood ranks densities only, and on spatial latents it prefers priors
        whose samples are worse (docs/priors.md); ``None`` elsewhere (it ranks then)."""
        args, rt, dataset = self.args, self.rt, self.dataset
        if dataset.name != "fashion-mnist" or not args.fid_samples:
            return None
        clf, _ = evaluate.fashion_classifier(
            dataset.labelled["train_images"], dataset.labelled["train_labels"], args, rt.device,
            rt.log,
        )  # fmt: skip
        train = dataset.labelled["train_images"]
        n = min(args.fid_samples, len(train))
        feats = evaluate.feature_fn(clf, rt.device)
        real = feats(evaluate.training_subset(train, n, args.seed))

        def score(prior) -> float:
            with evaluate.using_prior(self.vae, prior):
                return vk.metrics.fid(real, feats(evaluate.draw_samples(self.vae, n,
                                                                        seed=args.seed + 2)))  # fmt: skip

        return score

    def _final_metrics(self, run_info: dict) -> dict:
        """metrics.json: the run, reconstruction quality, likelihood bounds, latent health and
        (Fashion-MNIST) Fréchet distances."""
        args, rt, dataset = self.args, self.rt, self.dataset
        metrics: dict = {"run": run_info}
        # samples of the training prior and, with --fit-prior, of the fitted one
        priors = {evaluate.prior_name(self.vae.prior): self.vae.prior}
        metrics["prior"] = {"trained": self.training_prior}
        if self.fitted is not None:
            priors[self.fitted["name"]] = self.fitted_prior
            metrics["prior"]["fitted"] = self.fitted
        t_metrics = time.perf_counter()
        with self._fork_rng():
            metrics.update(evaluate.final_metrics(
                self.vae, dataset, args, rt, val_loss_fn=self.val_loss_fn, loss_fn=self.loss_fn,
                likelihood=self.likelihood,
            ))  # fmt: skip
            metrics.update(evaluate.sharpness_stats(
                self.vae, data.first_images(dataset.test, 500), priors, seed=args.seed + 1,
                spectrum=self.run_dir / "spectrum.png",
            ))  # fmt: skip
            metrics["posterior_gap_by_prior"] = evaluate.posterior_gaps(
                self.vae, dataset.test, args, rt.device, priors
            )
            if dataset.name == "fashion-mnist" and args.fid_samples:
                metrics["fid"] = evaluate.fashion_fid(
                    self.vae, dataset, args, rt.device, rt.log, priors
                )
        run_info["metrics_seconds"] = round(time.perf_counter() - t_metrics, 1)
        (self.run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        return metrics

    def _write_summary(self, metrics: dict, stop: str) -> None:
        """summary.md (facts of the run, notes, metrics, pictures) and a one-line metrics log."""
        args, rt, dataset, state, size = self.args, self.rt, self.dataset, self.state, self.size
        run_info, config = metrics["run"], self.config
        adversarial = (
            "" if self.adv is None
            else f", adversarial `{args.adversarial_spec.text}` from step {self.adv.start}"
        )  # fmt: skip
        facts = {
            "command": f"`{' '.join(config['command'])}`",
            "data": f"{dataset.name}: {len(dataset.train)} train / {len(dataset.val)} val"
            + (f" / {len(dataset.test)} test" if dataset.eval_split == "test" else "")
            + f", {dataset.channels}x{size}x{size}",
            "model": f"{args.preset or args.model_config}, {config['parameters'] / 1e6:.2f} M "
            f"parameters, latent {self.vae.latent_shape}",
            "loss": f"`{specs.format_loss(args.loss_terms)}`"
            + (f", multi-scale x{args.multiscale}" if args.multiscale > 1 else "")
            + f", β `{args.beta_plan.text}` (final {self.beta_final:g}), free bits "
            f"{args.free_bits:g}{adversarial}",
            "trained": f"{self.step} steps ({run_info['epochs']:g} epochs, "
            f"{run_info['images_seen']} images) in {run_info['train_seconds']:g} s x "
            f"{rt.world_size} process(es); stopped: {stop}",
            "best": f"step {state['best_step']}, validation total {state['best_val']:.5g}",
            "prior": self._prior_fact(),
        }
        evaluate.write_summary(
            self.run_dir / "summary.md", title=f"Run {self.run_dir.name}", facts=facts,
            metrics=metrics, notes=self.notes,
            pictures=["samples.png"]
            + ([f"samples-{self.fitted['name']}.png"] if self.fitted else [])
            + ["reconstructions.png", "interpolations.png", "spectrum.png", "loss.png"],
        )  # fmt: skip
        brief = {
            k: metrics.get(k) for k in ("psnr", "ssim", "neg_elbo_nats_per_dim") if k in metrics
        }
        if "fid" in metrics:
            brief |= {k: metrics["fid"][k] for k in ("fd_samples", "fd_floor_train_vs_test")}
            if self.fitted:
                name = self.fitted["name"]
                brief[f"fd_samples_{name}"] = metrics["fid"]["fd_samples_by_prior"][name]
        rt.log("metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in brief.items() if v is not None))

    def _prior_fact(self) -> str:
        """summary.md's prior line: what the model was trained with, and what was fitted."""
        trained = self.training_prior
        text = (
            "N(0, I)" if trained["name"] == "standard_normal"
            else f"`{self.args.prior}` ({trained['name']}), learned with the VAE"
        )  # fmt: skip
        if self.fitted:
            f = self.fitted
            text += (
                f"; fitted after training: `{f['spec']}` on {f['latents']:,} posterior means "
                f"in {f['fit_seconds']:.1f} s (encoding {f['encode_seconds']:.1f} s), saved "
                f"in best.safetensors (samples-{f['name']}.png)"
            )
        return text


if __name__ == "__main__":
    try:
        main()
    except UsageError as err:
        if os.environ.get("VAEKIT_DEBUG"):
            raise
        print(f"train.py: error: {err}", file=sys.stderr)
        sys.exit(2)
