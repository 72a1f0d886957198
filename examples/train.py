"""Train a vaekit VAE on Fashion-MNIST or a folder of images, on one process or with DDP.

    python examples/train.py --config examples/recipes/fmnist32.json --minutes 3
    python examples/train.py --preset celeba64 --data ~/celeba --image-size 64 --hflip \\
        --loss "l1=1,ssim=0.5" --beta "linear:0->1@5ep" --epochs 30
    torchrun --standalone --nproc_per_node=4 examples/train.py \\
        --config examples/recipes/celeba64.json --data ~/celeba
    python examples/train.py --resume runs/20250101-120000-fmnist32 --epochs 60

Writes runs/<YYYYmmdd-HHMMSS>-<name>/: config.json, history.csv, best.safetensors and
last.safetensors (vk.VAE.load), trainer_state.pt (for --resume), pictures, metrics.json and
summary.md. Options come from defaults < --config FILE.json < a resumed run < the command
line. See docs/training.md.

This file is the training loop; examples/trainlib/ holds the plumbing (options, data,
checkpoints, metrics). Copy both and edit.
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

import vaekit as vk


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
    # ---- setup: model, data, objective, optimiser (bad input fails here, before training) ----
    with usage_errors():
        cfg = model_config(args)
        size = cfg.image_size[0]
        dataset = data.load(args, cfg.in_channels, size, resize=args.image_size is not None)
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
        loader, sampler = data.train_loader(
            dataset, args, rt.rank, rt.world_size, pin=rt.device.type == "cuda"
        )
        val_loader = data.eval_loader(dataset.val, args, rt.rank, rt.world_size)
        steps_per_epoch = sampler.steps_per_epoch
        beta = args.beta_plan.schedule(steps_per_epoch)
        beta_final = args.beta_plan.final_value()
        recon = specs.build_recon(
            args.loss_terms, multiscale=args.multiscale, perceptual_weights=args.perceptual_weights
        )
        loss_fn = vk.losses.VAELoss(recon, kl=vk.losses.KL(free_bits=args.free_bits), beta=beta)
        loss_fn = loss_fn.to(rt.device)
        # validation: the same reconstruction loss, the true KL, the final beta
        val_loss_fn = vk.losses.VAELoss(loss_fn.recon, kl=vk.losses.KL(), beta=beta_final)
        likelihood = specs.likelihood_of(args.loss_terms, args.multiscale, cfg.variance)
        eval_every = args.eval_every_length.to_steps(steps_per_epoch)
        # what summary.md must say next to the metrics: skipped files, random backbones
        notes = list(dataset.notes) + [
            f"the {name} term's backbone is random (--perceptual-weights none or weights=None), "
            "not ImageNet-trained: the term measures nothing useful and its values do not compare "
            "with a run that has the weights"
            for name in specs.random_backbones(args.loss_terms, args.perceptual_weights)
        ]

        torch.manual_seed(args.seed)  # the same initial weights on every rank
        vae = vk.VAE(cfg).to(rt.device)
        if args.channels_last:
            vae = vae.to(memory_format=torch.channels_last)
        aug = runtime.seed_everything(args.seed, rt.rank)  # noise differs per rank

        groups = [{"params": list(vae.parameters()), "weight_decay": args.weight_decay}]
        if list(loss_fn.parameters()):  # e.g. a learned sigma: no weight decay
            groups.append({"params": list(loss_fn.parameters()), "weight_decay": 0.0})
        opt = torch.optim.AdamW(groups, lr=args.lr, fused=rt.device.type == "cuda")
        # the cosine length: --epochs if given, else --max-steps (then stopping early with a
        # smaller --max-steps changes the schedule; keep it fixed to resume exactly)
        total_steps = args.epochs * steps_per_epoch if args.epochs else args.max_steps
        if args.lr_schedule == "cosine":
            lr_sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps))
            )
        elif args.lr_schedule == "plateau":
            lr_sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
        else:
            lr_sched = None
        scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp_dtype == torch.float16)

        # ---- a new run folder, or the one we resume ----
        state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best_val": math.inf,
                 "best_step": None, "bad_evals": 0, "train_seconds": 0.0}  # fmt: skip
        history = checkpoint.History()
        if args.resume:
            run_dir = Path(args.resume)
            saved = checkpoint.load_state(run_dir / checkpoint.STATE_FILE)
            vae.load_weights(run_dir / "last.safetensors")
            opt.load_state_dict(saved["optimizer"])
            scaler.load_state_dict(saved["scaler"])
            loss_fn.load_state_dict(saved["loss"])
            if lr_sched is not None and saved["lr_scheduler"] is not None:
                lr_sched.load_state_dict(saved["lr_scheduler"])
            state.update({k: saved[k] for k in state})
            if not runtime.set_rng_state(rt, saved["rng"], aug):
                rt.log(f"resumed with {rt.world_size} processes, saved with {len(saved['rng'])}: "
                       "the noise differs from an uninterrupted run")  # fmt: skip
            history = checkpoint.History.read(run_dir / "history.csv", state["step"])
        elif rt.main:
            name = args.name or args.preset or Path(args.model_config).stem
            run_dir = checkpoint.make_run_dir(args.out, name)
        else:
            run_dir = None  # only rank 0 writes

    net = vae
    if rt.distributed:
        net = DistributedDataParallel(
            vae, device_ids=[rt.device.index] if rt.device.type == "cuda" else None
        )
    if args.compile:
        net = torch.compile(net)

    if rt.main:
        config = {
            "args": options.to_json(args),
            "model": cfg.to_dict(),
            "beta_schedule": beta.to_dict(),
            "beta_final": beta_final,
            "loss": specs.format_loss(args.loss_terms),
            "data": {
                "name": dataset.name,
                "train": len(dataset.train),
                "val": len(dataset.val),
                dataset.eval_split: len(dataset.test),
                "channels": dataset.channels,
                "image_size": size,
                "notes": dataset.notes,
            },
            "steps_per_epoch": steps_per_epoch,
            "world_size": rt.world_size,
            "global_batch_size": args.batch_size * rt.world_size,
            "parameters": sum(p.numel() for p in vae.parameters()),
            "versions": {"vaekit": vk.__version__, "torch": torch.__version__},
            "command": args.command,
        }
        (run_dir / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
        (run_dir / "images").mkdir(exist_ok=True)
        verb = "resuming" if args.resume else "writing to"
        rt.log(f"{verb} {run_dir} | {len(dataset.train)} train / {len(dataset.val)} val images, "
               f"{steps_per_epoch} steps per epoch x {rt.world_size} process(es) | "
               f"{config['parameters'] / 1e6:.2f} M parameters on {rt.device}")  # fmt: skip
        for note in notes[len(dataset.notes) :]:  # the data notes were warnings already
            rt.log(f"note: {note}")

    pictures_of = data.first_images(dataset.val, 16)

    def pictures(prefix: str, folder: Path) -> None:
        with torch.random.fork_rng(devices=[rt.device] if rt.device.type == "cuda" else []):
            evaluate.save_pictures(vae, pictures_of, folder, prefix, seed=args.seed)
            evaluate.plot_losses(history, run_dir / "loss.png", cfg.in_channels * size * size)

    def save(stop_reason: str | None = None) -> None:
        """last.safetensors + trainer_state.pt (every rank takes part in gathering RNG states)."""
        rng = runtime.rng_state(rt, aug)
        state["train_seconds"] = elapsed()
        if rt.main:
            checkpoint.save_model(vae, run_dir / "last.safetensors")
            checkpoint.save_state({
                **state, "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
                "loss": loss_fn.state_dict(), "rng": rng, "stop_reason": stop_reason,
                "lr_scheduler": lr_sched.state_dict() if lr_sched is not None else None,
            }, run_dir / checkpoint.STATE_FILE)  # fmt: skip
            history.write(run_dir / "history.csv")

    def validate() -> bool:
        """Validation total at the final beta -> best.safetensors, LR plateau; True: patience
        is exhausted (early stopping)."""
        with torch.random.fork_rng(devices=[rt.device] if rt.device.type == "cuda" else []):
            terms = evaluate.validation_terms(
                vae, val_loss_fn, val_loader, rt, channels_last=args.channels_last, seed=args.seed
            )
        history.add(step=step, epoch=round(step / steps_per_epoch, 4), split="val",
                    time=round(elapsed(), 2), lr=opt.param_groups[0]["lr"], beta=beta_final,
                    **terms)  # fmt: skip
        improved = terms["total"] < state["best_val"]
        if improved:
            state.update(best_val=terms["total"], best_step=step, bad_evals=0)
            if rt.main:
                checkpoint.save_model(vae, run_dir / "best.safetensors")
        else:
            state["bad_evals"] += 1
        if isinstance(lr_sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            lr_sched.step(terms["total"])
        rt.log(f"step {step} (epoch {step / steps_per_epoch:.2f}) | val total {terms['total']:.5g} "
               f"(recon {terms['recon']:.5g}, KL {terms['kl_raw']:.4g} nats) at final β "
               f"{beta_final:g}{' | best' if improved else ''}")  # fmt: skip
        return bool(args.patience) and state["bad_evals"] >= args.patience

    # ---- the training loop ----
    step, epoch = state["step"], state["epoch"]
    started, seconds_before = time.perf_counter(), state["train_seconds"]

    def elapsed() -> float:
        return seconds_before + time.perf_counter() - started

    def stop_reason() -> str | None:
        if args.max_steps and step >= args.max_steps:
            return "max steps"
        if args.epochs and epoch + 1 >= args.epochs and state["batch_in_epoch"] == steps_per_epoch:
            return "epochs"
        if args.minutes and rt.any(elapsed() - seconds_before > 60 * args.minutes):
            return "time budget (--minutes)"  # decided together: every rank stops at this step
        return None

    loss_params = list(loss_fn.parameters())  # e.g. a learned sigma
    params = list(vae.parameters()) + loss_params
    meter, last_eval, stop = RunningMean(), (step if args.resume else -1), None
    show = runtime.progress_enabled(args.progress, rt)
    last_row = time.perf_counter()  # when the last train row was written (--log-seconds)
    printed = None  # (time, step) of the last log line, printed without a progress bar
    first_step = step

    def train_row(beta_now: float) -> None:
        """A history.csv train row: the mean of every term since the last row; without a
        progress bar also a log line, at most one per --log-seconds (the first one at once)."""
        nonlocal last_row, printed
        means = meter.means()
        history.add(step=step, epoch=round(step / steps_per_epoch, 4), split="train",
                    time=round(elapsed(), 2), lr=opt.param_groups[0]["lr"], beta=beta_now,
                    **means)  # fmt: skip
        meter.reset()
        now = last_row = time.perf_counter()
        if show or (printed is not None and now - printed[0] < args.log_seconds):
            return
        since = printed or (started, first_step)
        rate = (step - since[1]) / max(now - since[0], 1e-9)
        rt.log(f"step {step} (epoch {step / steps_per_epoch:.2f}) | "
               + ", ".join(f"{k} {means[k]:.4g}" for k in ("total", "recon", "kl_raw"))
               + f", beta {beta_now:.3g} | {rate:.3g} steps/s")  # fmt: skip
        printed = (now, step)

    vae.train()
    try:
        while stop is None:
            sampler.set_epoch(epoch, skip_batches=state["batch_in_epoch"])
            bar = tqdm(total=steps_per_epoch, initial=state["batch_in_epoch"], disable=not show,
                       desc=f"epoch {epoch + 1}", leave=False, dynamic_ncols=True)  # fmt: skip
            for x in loader:
                x = x.to(rt.device, non_blocking=True)
                if args.hflip:  # flips drawn from a checkpointed generator: resume-exact
                    flip = (torch.rand(len(x), generator=aug) < 0.5).to(rt.device)
                    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
                if args.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with rt.autocast():
                    out = net(x)
                    res = loss_fn(out, x, step=step)
                opt.zero_grad(set_to_none=True)
                scaler.scale(res.total).backward()
                rt.average_gradients(loss_params)  # DDP syncs the model's gradients, not these
                if args.clip_grad:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(params, args.clip_grad)
                scaler.step(opt)
                scaler.update()
                if isinstance(lr_sched, torch.optim.lr_scheduler.LambdaLR):
                    lr_sched.step()
                step += 1
                state.update(step=step, batch_in_epoch=state["batch_in_epoch"] + 1)
                meter.add(res)
                bar.update()

                stop = stop_reason()  # first: the last step is always logged and evaluated
                evaluate_now = step % eval_every == 0 or bool(stop)
                # train rows at fixed steps (the same in every run and on every rank) and, in
                # between, whenever --log-seconds of wall-clock time have passed
                fixed_row = step == 1 or step % args.log_every == 0 or evaluate_now
                timed_row = (
                    args.log_seconds > 0 and time.perf_counter() - last_row >= args.log_seconds
                )
                if fixed_row or step % 10 == 0:  # steps every rank shares: all stop together
                    means = meter.means()  # since the last history row
                    check_finite(means, step, run_dir)
                    shown = {k: f"{means[k]:.4g}" for k in ("total", "recon", "kl_raw")}
                    bar.set_postfix(shown | {"beta": f"{res.beta:.3g}"})
                if fixed_row or timed_row:
                    train_row(res.beta)
                if evaluate_now:
                    last_eval = step
                    if validate() and not stop:
                        stop = "early stopping (patience)"
                    if not stop:
                        save()  # the final save comes after the loop
                if stop:
                    break
            else:  # the epoch ran to its end
                epoch += 1
                state.update(epoch=epoch, batch_in_epoch=0)
                if rt.main and args.image_every and epoch % args.image_every == 0:
                    pictures(f"epoch-{epoch:04d}-", run_dir / "images")
                if args.epochs and epoch >= args.epochs:
                    stop = "epochs"
            bar.close()
    except KeyboardInterrupt:
        if rt.distributed:
            raise
        stop = "interrupted"
        if meter.count:  # the steps since the last row are not lost
            train_row(res.beta)
    if last_eval != step and stop != "interrupted":
        validate()  # so the last weights compete for best.safetensors
    save(stop)  # last.safetensors + trainer_state.pt
    rt.barrier()
    if stop == "interrupted":
        print(f"[train] interrupted at step {step}; continue with --resume {run_dir}", flush=True)
        return run_dir
    if not rt.main:
        print(f"[train] rank {rt.rank} finished at step {step}", flush=True)
        return None

    # ---- the end (rank 0): best checkpoint -> pictures, metrics.json, summary.md ----
    rt.log(f"stopped after {step} steps ({step / steps_per_epoch:.2f} epochs, "
           f"{state['train_seconds']:.0f} s): {stop}")  # fmt: skip
    if (run_dir / "best.safetensors").is_file():
        vae.load_weights(run_dir / "best.safetensors")
    vae.eval()
    pictures("", run_dir)
    run_info = {
        "steps": step, "epochs": round(step / steps_per_epoch, 4),
        "images_seen": step * args.batch_size * rt.world_size,
        "train_seconds": round(state["train_seconds"], 1), "stopped_because": stop,
        "best_step": state["best_step"], "best_val_total": state["best_val"],
        "checkpoint": "best.safetensors",
    }  # fmt: skip
    metrics: dict = {"run": run_info}
    if args.final_metrics:
        t_metrics = time.perf_counter()
        with torch.random.fork_rng(devices=[rt.device] if rt.device.type == "cuda" else []):
            metrics.update(evaluate.final_metrics(
                vae, dataset, args, rt, val_loss_fn=val_loss_fn, loss_fn=loss_fn,
                likelihood=likelihood,
            ))  # fmt: skip
            if dataset.name == "fashion-mnist" and args.fid_samples:
                metrics["fid"] = evaluate.fashion_fid(vae, dataset, args, rt.device, rt.log)
        run_info["metrics_seconds"] = round(time.perf_counter() - t_metrics, 1)
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        facts = {
            "command": f"`{' '.join(config['command'])}`",
            "data": f"{dataset.name}: {len(dataset.train)} train / {len(dataset.val)} val"
            + (f" / {len(dataset.test)} test" if dataset.eval_split == "test" else "")
            + f", {dataset.channels}x{size}x{size}",
            "model": f"{args.preset or args.model_config}, {config['parameters'] / 1e6:.2f} M "
            f"parameters, latent {vae.latent_shape}",
            "loss": f"`{specs.format_loss(args.loss_terms)}`"
            + (f", multi-scale x{args.multiscale}" if args.multiscale > 1 else "")
            + f", β `{args.beta_plan.text}` (final {beta_final:g}), free bits {args.free_bits:g}",
            "trained": f"{step} steps ({run_info['epochs']:g} epochs, {run_info['images_seen']} "
            f"images) in {run_info['train_seconds']:g} s x {rt.world_size} process(es); "
            f"stopped: {stop}",
            "best": f"step {state['best_step']}, validation total {state['best_val']:.5g}",
        }
        evaluate.write_summary(
            run_dir / "summary.md", title=f"Run {run_dir.name}", facts=facts, metrics=metrics,
            pictures=["samples.png", "reconstructions.png", "interpolations.png", "loss.png"],
            notes=notes,
        )  # fmt: skip
        brief = {
            k: metrics.get(k) for k in ("psnr", "ssim", "neg_elbo_nats_per_dim") if k in metrics
        }
        if "fid" in metrics:
            brief |= {k: metrics["fid"][k] for k in ("fd_samples", "fd_floor_train_vs_test")}
        rt.log("metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in brief.items() if v is not None))
    report = "summary.md, " if args.final_metrics else ""
    rt.log(f"done: {run_dir}/ ({report}samples.png, reconstructions.png, best.safetensors)")
    print(f"[train] rank 0 finished at step {step}", flush=True)
    return run_dir


if __name__ == "__main__":
    try:
        main()
    except UsageError as err:
        if os.environ.get("VAEKIT_DEBUG"):
            raise
        print(f"train.py: error: {err}", file=sys.stderr)
        sys.exit(2)
