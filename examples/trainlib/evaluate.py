"""Validation, pictures, the final metrics and ``summary.md``.

The validation total is the training objective at the schedule's *final* β, with the true KL
(no free bits) and one posterior sample per image from a fixed generator: comparable across
evaluations (a warm-up would otherwise make early epochs look best), and with a likelihood
loss at β = 1 it is the negative ELBO per dimension.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
from pathlib import Path

import torch

import vaekit as vk
from vaekit._inference import evaluating  # eval() + no_grad; every submodule's mode back

from .data import Data, eval_loader, first_images


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


# -- validation ------------------------------------------------------------------------------------
def validation_terms(vae, loss_fn, loader, rt, *, channels_last: bool, seed: int) -> dict:
    """Mean of every loss term over all ranks' validation shards."""
    gen = torch.Generator(device=rt.device).manual_seed(seed)  # the same noise every time
    sums: dict[str, torch.Tensor] = {}
    count = 0
    with evaluating(vae), rt.autocast():
        for x in loader:
            x = to_device(x, rt.device, channels_last)
            q = vae.encode(x)
            z = q.sample(generator=gen)
            recon, logvar = vae.decode_with_logvar(z)
            res = loss_fn(vk.VAEOutput(recon, q, z, logvar, prior=vae.prior), x, step=0)
            for key, value in {"total": res.total, **res.terms}.items():
                sums[key] = sums.get(key, 0.0) + value.detach().double() * len(x)
            count += len(x)
    if count == 0:
        raise ValueError("the validation shard of this process is empty; use fewer processes")
    keys = sorted(sums)
    totals = rt.all_sum(
        torch.stack(
            [torch.as_tensor(sums[k]).cpu() for k in keys]
            + [torch.tensor(float(count), dtype=torch.float64)]
        )
    )
    n = float(totals[-1])
    return {k: float(v) / n for k, v in zip(keys, totals[:-1])}


# -- pictures --------------------------------------------------------------------------------------
def save_pictures(vae, images: torch.Tensor, folder: Path, prefix: str, *, seed: int) -> None:
    """Reconstructions, samples at three temperatures and interpolations of ``images``; small
    images are enlarged by nearest neighbour (``upscale="auto"``: tiles of at least 96 px)."""
    device = next(vae.parameters()).device
    x = images[:16].to(device)
    with evaluating(vae):
        recon = vae.reconstruct(x)
    vk.viz.reconstruction_grid(
        x, recon, nrow=8, upscale="auto", path=folder / f"{prefix}reconstructions.png"
    )
    save_samples(vae, folder / f"{prefix}samples.png", seed=seed)
    half = min(4, len(x) // 2)
    if half:
        vk.viz.interpolation_grid(vae, x[:half], x[half : 2 * half], steps=8, upscale="auto",
                                  path=folder / f"{prefix}interpolations.png")  # fmt: skip


def save_samples(vae, path: Path, *, seed: int) -> None:
    """samples.png: ``vk.viz.sample_grid`` of ``vae.prior`` at temperatures 0.5, 0.8 and 1.0,
    8 per row, every row from a generator seeded with ``seed`` (the same draw per column):
    ``vk.VAE.load(best)`` with the same seed draws the same picture."""
    device = next(vae.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    vk.viz.sample_grid(vae, 8, (0.5, 0.8, 1.0), generator=gen, upscale="auto", path=path)


@contextlib.contextmanager
def using_prior(vae, prior):
    """``vae.prior = prior`` inside the block, the model's own prior back after it."""
    old = vae.prior
    vae.prior = prior
    try:
        yield vae
    finally:
        vae.prior = old


def prior_name(prior) -> str:
    """The registry name of a prior (its class name if it is not registered)."""
    return vk.priors.name_of(prior) or type(prior).__name__


def plot_losses(history, path: Path, data_dims: int) -> None:
    """Train total/recon and KL per data dimension (vk.viz.plot_history: a changing β on the
    right axis, a constant one in the title), with the validation total at the final β as dots."""
    import matplotlib.pyplot as plt

    train = [
        {"step": r["step"], "train total": r["total"], "train recon": r["recon"],
         "train KL/dim": r["kl_raw"] / data_dims, "beta": r["beta"]}
        for r in history.rows if r.get("split") == "train"
    ]  # fmt: skip
    val = [(r["step"], r["total"]) for r in history.rows if r.get("split") == "val"]
    if not train and not val:
        return
    values = [v for r in train for k, v in r.items() if k not in ("step", "beta")]
    values += [t for _, t in val]
    positive = all(v > 0 for v in values if math.isfinite(v))
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    if train and val:  # drawn first: plot_history puts it in the legend after the train lines
        ax.plot(*zip(*val), color="tab:red", marker="o", markersize=4, linestyle=":",
                label="val total (final β)")  # fmt: skip
    base = train or [{"step": s, "val total": t} for s, t in val]
    vk.viz.plot_history(base, log_scale=positive, title="training curves", ax=ax)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


# -- final metrics ---------------------------------------------------------------------------------
def _likelihood_kwargs(likelihood: dict, loss_fn) -> dict:
    """Fill in a learned σ/b from the trained loss module."""
    kwargs = dict(likelihood)
    for key in ("sigma", "scale"):
        if kwargs.get(key) == "learned":
            module = next(
                m
                for m in loss_fn.modules()
                if hasattr(m, "logvar") and isinstance(m.logvar, torch.nn.Parameter)
            )
            var = float(module.logvar.detach().exp())
            # Gaussian: sigma = sqrt(var); Laplace: var = 2 b^2
            kwargs[key] = math.sqrt(var) if key == "sigma" else math.sqrt(var / 2)
    return kwargs


def final_metrics(vae, data: Data, args, rt, *, val_loss_fn, loss_fn, likelihood) -> dict:
    """Everything in ``metrics.json`` except the run bookkeeping; rank 0 only."""
    device = rt.device
    ds = data.test
    loader = eval_loader(ds, args)
    dims = data.channels * data.image_size**2
    out: dict = {"eval_split": data.eval_split, "eval_images": len(ds)}

    # image quality of reconstructions (posterior mean)
    psnr = ssim = 0.0
    with evaluating(vae):
        for x in loader:
            x = to_device(x, device, args.channels_last)
            x_hat = vae.reconstruct(x).float()
            psnr += float(vk.metrics.psnr(x_hat, x, reduction="none").sum())
            ssim += float(vk.metrics.ssim(x_hat, x, reduction="none").sum())
    out["psnr"], out["ssim"] = psnr / len(ds), ssim / len(ds)

    kwargs, note = likelihood
    out["likelihood"] = note
    if kwargs is None:
        # no likelihood, no ELBO: report the training objective at the final beta instead
        single = type(rt)(device=device, amp_dtype=rt.amp_dtype)  # rank 0 alone, no all-reduce
        terms = validation_terms(
            vae, val_loss_fn, loader, single, channels_last=args.channels_last, seed=args.seed
        )
        out["objective"] = {k: terms[k] for k in sorted(terms)}
    else:
        # likelihood: -ELBO and the IWAE bound, per dimension and in bits
        lik = _likelihood_kwargs(kwargs, loss_fn)
        out["likelihood_params"] = lik
        gen = torch.Generator(device=device).manual_seed(args.seed)
        nll = []
        for x in loader:
            x = to_device(x, device, args.channels_last)
            nll.append(vk.metrics.elbo_nll(vae, x, generator=gen, reduction="none", **lik))
        neg_elbo = float(torch.cat(nll).mean())
        x_iwae = first_images(ds, args.iwae_images).to(device)
        iwae = float(vk.metrics.iwae_nll(vae, x_iwae, k=args.iwae_k, generator=gen, **lik))
        # the loaders scale 8-bit pixels as k/255, so the levels are 1/255 apart
        bits = (
            vk.metrics.bits_per_dim if lik["likelihood"] == "bernoulli"
            else functools.partial(vk.metrics.discretized_bits_per_dim, bin_width=1 / 255)
        )  # fmt: skip
        out.update({
            "neg_elbo_nats_per_dim": neg_elbo / dims,
            "neg_elbo_bits_per_dim": float(bits(neg_elbo, dims)),
            "iwae_nll_nats_per_dim": iwae / dims,
            "iwae_bits_per_dim": float(bits(iwae, dims)),
            "iwae_k": args.iwae_k, "iwae_images": len(x_iwae),
        })  # fmt: skip

    # latent health: collapse and ghosting
    kl = vk.metrics.kl_per_dim(vae, loader).flatten()
    out["kl_nats_per_image"] = float(kl.sum())
    out["kl_per_dim"] = {"mean": float(kl.mean()), "max": float(kl.max()), "min": float(kl.min())}
    if kl.numel() <= 512:
        out["kl_per_dim"]["values"] = [round(float(v), 5) for v in kl]
    out["active_units"] = int(vk.metrics.active_units(vae, loader))
    out["latent_dims"] = int(kl.numel())
    gap = vk.metrics.aggregate_posterior_gap(
        vae, loader, num_samples=min(1000, len(ds)),
        generator=torch.Generator(device=device).manual_seed(args.seed),
    )  # fmt: skip
    out["posterior_gap"] = {k: getattr(gap, k) for k in GAP_KEYS}
    return out


# -- Fréchet distance in a Fashion-MNIST classifier's feature space -------------------------------
def cache_dir(args) -> Path:
    return Path(
        args.cache_dir or os.environ.get("VAEKIT_CACHE") or Path.home() / ".cache" / "vaekit"
    )


def fashion_classifier(images: torch.Tensor, labels: torch.Tensor, args, device, log):
    """``vk.metrics.ClassifierFeatures`` trained once per dataset, size and subset, then cached."""
    fit = {"num_classes": 10, "epochs": 2, "batch_size": 128, "seed": 0}
    if args.fid_train_images is not None and args.fid_train_images < len(images):
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
        pick = pick[: args.fid_train_images]
        images, labels = images[pick], labels[pick]
    digest = hashlib.sha256()
    digest.update(json.dumps(fit, sort_keys=True).encode())
    digest.update((images * 255).round().to(torch.uint8).numpy().tobytes())
    digest.update(labels.numpy().tobytes())
    path = cache_dir(args) / (
        f"fashion-mnist-classifier-{images.shape[-1]}px-{digest.hexdigest()[:16]}.safetensors"
    )
    if path.is_file():
        log(f"FID classifier from the cache: {path}")
        return vk.metrics.ClassifierFeatures.load(path, map_location=device), path
    log(f"training the FID classifier on {len(images)} images (once; cached in {path.parent})")
    clf = vk.metrics.ClassifierFeatures.fit(images, labels, device=device, **fit)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    clf.save(tmp)
    os.replace(tmp, path)
    return clf, path


def draw_samples(vae, n: int, *, seed: int) -> torch.Tensor:
    """``n`` samples of ``vae.prior`` (temperature 1, seeded), float on the CPU."""
    device = next(vae.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    with evaluating(vae):
        return torch.cat(
            [vae.sample(len(c), generator=gen).float().cpu() for c in torch.arange(n).split(500)]
        )


def _ratio(value: float, real: float) -> float | None:
    """``value / real``; None where the real images have none of it (a blank test set)."""
    return value / real if real > 0 else None


def sharpness_stats(
    vae, images: torch.Tensor, priors: dict, *, seed: int, n: int = 500, spectrum=None
) -> dict:
    """Blur and contrast of reconstructions and of samples, against the real images.

    ``vk.metrics.image_stats`` of the first ``n`` real ``images``, of their reconstructions
    (posterior mean) and of ``n`` samples of every prior in ``priors`` (name -> prior, drawn
    with ``vae``'s decoder, temperature 1, seeded): faint or washed-out samples show as a
    lower contrast than the real images', blurry ones as a lower sharpness (variance of the
    Laplacian of the grey image). Returns the entries of ``metrics.json``:

    - ``samples``: ``{"images": n, "real": stats, prior: stats, ...}`` (means per image);
    - ``sharpness_ratio`` and ``contrast_ratio``: ``{"reconstructions": r, "samples":
      {prior: r, ...}}``, each the set's mean divided by the real images' (1: as sharp, as
      contrasted as the data; below 1: blurrier, fainter).

    ``spectrum``: a path for ``vk.viz.plot_spectrum`` of the same sets (real, reconstructions,
    samples per prior).
    """
    n = min(n, len(images))
    real = images[:n].float()
    device = next(vae.parameters()).device
    with evaluating(vae):
        recons = torch.cat([vae.reconstruct(x.to(device)).float().cpu() for x in real.split(250)])
    samples = {}
    for name, prior in priors.items():
        with using_prior(vae, prior):
            samples[name] = draw_samples(vae, n, seed=seed)
    stats = {name: vk.metrics.image_stats(x).mean() for name, x in samples.items()}
    real_stats = vk.metrics.image_stats(real).mean()
    recon_stats = vk.metrics.image_stats(recons).mean()
    out = {"samples": {"images": n, "real": real_stats, **stats}}
    for key in ("sharpness", "contrast"):
        out[f"{key}_ratio"] = {
            "reconstructions": _ratio(recon_stats[key], real_stats[key]),
            "samples": {name: _ratio(s[key], real_stats[key]) for name, s in stats.items()},
        }
    if spectrum is not None:
        import matplotlib.pyplot as plt

        sets = {"real test images": real, "reconstructions": recons}
        sets |= {f"{_label(name)} samples": x for name, x in samples.items()}
        fig = vk.viz.plot_spectrum(
            sets, title=f"radially averaged power spectra ({n} images each)", path=spectrum
        )
        plt.close(fig)
    return out


GAP_KEYS = ("kl", "kl_per_dim", "mmd", "mmd_noise", "eig_min", "eig_max", "num_samples", "target")


def posterior_gaps(vae, dataset, args, device, priors: dict) -> dict:
    """``vk.metrics.aggregate_posterior_gap`` of the evaluation images' latents to each prior
    (name -> prior; samples only, so a prior without a density works too): how far the
    prior the model samples from is from where its latents are."""
    out = {}
    for name, prior in priors.items():
        exact = isinstance(prior, vk.priors.StandardNormal)  # closed form: = posterior_gap
        gap = vk.metrics.aggregate_posterior_gap(
            vae, eval_loader(dataset, args), num_samples=min(1000, len(dataset)),
            generator=torch.Generator(device=device).manual_seed(args.seed),
            prior=None if exact else prior,
        )  # fmt: skip
        out[name] = {k: getattr(gap, k) for k in GAP_KEYS}
    return out


def training_subset(train: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` training images drawn with ``seed``: the floor's reference in :func:`fashion_fid`
    and ``--fit-prior auto``'s (the same images for both)."""
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
    return train[pick]


def feature_fn(clf, device):
    """``images -> features`` in the FD classifier ``clf`` on ``device``, in batches of 500."""

    def feats(images: torch.Tensor) -> torch.Tensor:
        return vk.metrics.extract_features(clf, images.to(device), batch_size=500)

    return feats


def fashion_fid(vae, data: Data, args, device, log, priors: dict | None = None) -> dict:
    """FD(test, prior samples), FD(test, reconstructions) and the floor FD(train, test).

    ``priors`` (name -> prior; default: the model's own) adds ``fd_samples_by_prior``: the
    sample FD of each, drawn with the same seed; ``fd_samples`` stays the model's own prior's.
    """
    clf, path = fashion_classifier(
        data.labelled["train_images"], data.labelled["train_labels"], args, device, log
    )
    test = data.test.images
    n = min(args.fid_samples, len(test))
    accuracy = clf.accuracy(test.to(device), data.labelled["test_labels"].to(device))
    priors = priors or {prior_name(vae.prior): vae.prior}
    samples = {}
    for name, prior in priors.items():
        with using_prior(vae, prior):
            samples[name] = draw_samples(vae, n, seed=args.seed + 1)
    with evaluating(vae):
        recons = torch.cat([vae.reconstruct(x.to(device)).float() for x in test[:n].split(500)])
    feats = feature_fn(clf, device)
    real = feats(test[:n])
    by_prior = {name: vk.metrics.fid(real, feats(x)) for name, x in samples.items()}
    return {
        "classifier": str(path),
        "classifier_test_accuracy": accuracy,
        "images_per_side": n,
        "fd_samples": by_prior[prior_name(vae.prior)],
        "fd_samples_by_prior": by_prior,
        "fd_reconstructions": vk.metrics.fid(real, feats(recons)),
        "fd_floor_train_vs_test": vk.metrics.fid(
            real, feats(training_subset(data.labelled["train_images"], n, args.seed))
        ),
    }


# -- summary.md ------------------------------------------------------------------------------------
def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def _label(prior: str) -> str:
    return "N(0, I)" if prior == "standard_normal" else prior


def write_summary(
    path: Path,
    *,
    title: str,
    facts: dict,
    metrics: dict,
    pictures: list[str],
    notes: tuple[str, ...] | list[str] = (),
) -> None:
    """summary.md: the facts of the run, a "Notes" section when there is something that
    qualifies the numbers (skipped files, a random perceptual backbone), metrics, pictures."""
    lines = [f"# {title}", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in facts.items()]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    split, count = metrics.get("eval_split", "?"), metrics.get("eval_images", "?")
    lines += ["", f"## Metrics ({split} set, {count} images, best checkpoint)", ""]
    lines += ["| metric | value |", "|---|---|"]
    gap = metrics.get("posterior_gap", {})
    rows = [
        ("PSNR (dB)", metrics.get("psnr")),
        ("SSIM", metrics.get("ssim")),
        ("objective at final β (recon + β·KL/D)", metrics.get("objective", {}).get("total")),
        ("-ELBO (nats/dim)", metrics.get("neg_elbo_nats_per_dim")),
        ("-ELBO (bits/dim)", metrics.get("neg_elbo_bits_per_dim")),
        (f"IWAE NLL, K={metrics.get('iwae_k')} (nats/dim)", metrics.get("iwae_nll_nats_per_dim")),
        ("IWAE (bits/dim)", metrics.get("iwae_bits_per_dim")),
        ("KL (nats/image)", metrics.get("kl_nats_per_image")),
        ("active units", f"{metrics.get('active_units')} of {metrics.get('latent_dims')}"),
        ("aggregate posterior KL/dim", gap.get("kl_per_dim")),
        ("aggregate posterior MMD (noise level)",
         f"{_fmt(gap.get('mmd'))} ({_fmt(gap.get('mmd_noise'))})" if gap else None),
        *[(f"{'posterior means' if g.get('target') == 'means' else 'aggregate posterior'} "
           f"MMD to the {name} prior (noise level)",
           f"{_fmt(g['mmd'])} ({_fmt(g['mmd_noise'])})")
          for name, g in metrics.get("posterior_gap_by_prior", {}).items()
          if name != "standard_normal"],
    ]  # fmt: skip
    fid = metrics.get("fid")
    if fid:
        by_prior = fid.get("fd_samples_by_prior", {})
        own = _label(next(iter(by_prior), "prior"))
        rows += [
            (f"FD {own} samples vs test (classifier features)", fid["fd_samples"]),
            *[
                (f"FD {_label(name)} samples vs test", fd)
                for name, fd in list(by_prior.items())[1:]
            ],
            ("FD reconstructions vs test", fid["fd_reconstructions"]),
            ("FD floor: train vs test", fid["fd_floor_train_vs_test"]),
            ("FID classifier test accuracy", fid["classifier_test_accuracy"]),
        ]
    stats = metrics.get("samples", {})
    rows += [
        (f"contrast of {_label(name)} samples (real images: {_fmt(stats['real']['contrast'])})",
         value["contrast"])
        for name, value in stats.items() if name not in ("images", "real")
    ]  # fmt: skip
    for key in ("sharpness", "contrast"):
        ratios = metrics.get(f"{key}_ratio")
        if not ratios:
            continue
        what = f"{key} ratio to the real test images"
        rows.append((f"{what}: reconstructions", ratios["reconstructions"]))
        rows += [(f"{what}: {_label(name)} samples", r) for name, r in ratios["samples"].items()]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in rows if v is not None]
    if metrics.get("likelihood"):
        lines += ["", f"Likelihood: {metrics['likelihood']}."]
    lines += ["", "## Pictures", ""]
    lines += [f"![{Path(p).stem}]({p})" for p in pictures]
    path.write_text("\n".join(lines) + "\n")
