"""Sharp images at equal budget: the recipes with and without an FFT term and an adversarial
(PatchGAN) term, against diffusers' AutoencoderKL (issue 18).

Part ``sharpness``: each system of :func:`systems` is trained exactly as in the quality part
(same data, seed, batch and both budgets, one process reuses the quality part's weights for
the systems they share) and scored on the test images at each budget:

- PSNR, SSIM and reconstruction FD (:func:`quality.evaluate`, the quality table's numbers);
- the FD of samples from the system's *best prior*, by a fixed rule (:data:`BEST_PRIOR`):
  ``GaussianMixture(10, "full")`` on flat latents, ``GaussianMixture(10, "diag")`` on spatial
  ones, fitted on posterior means as in the priors part (:func:`priors.vaekit_priors`). The
  full mixture is the best ex-post prior under 30 s on 32-d latents, but its fit takes about
  6 min per model on 4×8×8 latents on two cores, where the diagonal one takes 8 s (the
  published priors table); every spatial system, AutoencoderKL included, gets the same rule;
- the sharpness ratio (mean variance of the Laplacian, ``vk.metrics.image_stats``, over that
  of the real test images) and contrast ratio (mean pixel standard deviation, the same way)
  of reconstructions and of those samples, all on the 28x28 content the quality part scores;
- the milliseconds of a training step at batch 64, fresh models, timed interleaved
  (:func:`common.interleaved_seconds`): an adversarial system with and without its
  discriminator's step and the same recipe without the adversarial term, so the D step's
  cost is a ratio measured in the same run.

Part ``sharpness-levers``: one change at a time to the ``fmnist32`` recipe (:data:`LEVERS`),
trained to a short images budget (``--lever-images``): PSNR, SSIM, reconstruction FD and the
sharpness and contrast ratios of reconstructions. The perceptual lever needs torchvision's
ImageNet VGG16 file; the benchmark never downloads, so without it the row says which file is
missing (a random backbone would measure nothing).
"""

from __future__ import annotations

import priors
import quality
import torch
from common import crop28, interleaved_seconds, peer_status
from peers import crop_to, fmnist_spatial_config, vaekit_contender
from report import sharpness_targets

import vaekit as vk

# The adversarial term (issue 18's reference: a 3-layer PatchGAN with batch norm, hinge loss,
# adaptive weight x 0.5 at the decoder's last conv, AdamW 2e-4, betas (0.5, 0.9), started at
# 30% of its one-epoch run). Here ``start`` is that fraction of the images budget, in steps
# of batch 64: 141 steps of 30,000 images, 56 of the levers' 12,000.
ADVERSARIAL = {
    "weight": 0.5,
    "loss": "hinge",
    "start": 0.3,
    "width": 32,
    "layers": 3,
    "norm": "batch",
    "lr": 2e-4,
    "betas": (0.5, 0.9),
}
# the ex-post prior whose samples are scored, by latent kind (see the module docstring)
BEST_PRIOR = {"flat": "gmm-full", "spatial": "gmm-diag"}
# adversarial system -> the same recipe without the adversarial term
REFERENCE = {
    "vaekit-fmnist32-adv": "vaekit-fmnist32",
    "vaekit-fmnist32-fft-adv": "vaekit-fmnist32-fft",
    "vaekit-spatial-adv": "vaekit-spatial",
}
BATCH = 64


def adversarial_start(budget_images: int) -> int:
    """The step the adversarial term starts at: ``ADVERSARIAL["start"]`` of the budget."""
    return round(ADVERSARIAL["start"] * budget_images / BATCH)


def _adversarial(start: int) -> dict:
    return {**ADVERSARIAL, "start": start}


def _fmnist32(name: str, recipe: str, adversarial: dict | None = None):
    config = vk.presets.config("fmnist32")
    return lambda: vaekit_contender(name, config, recipe, adversarial=adversarial)


def systems(start: int) -> dict:
    """The part's systems, shaped like :data:`quality.SYSTEMS`; the adversarial term starts
    at step ``start``. The recipes without it are the quality part's own entries."""
    q, adv = quality.SYSTEMS, _adversarial(start)
    d = ADVERSARIAL
    gan = (f"PatchGAN (width {d['width']}, {d['layers']} layers, {d['norm']} norm), "
           f"{d['loss']}, adaptive weight × {d['weight']:g}, from step {start}")  # fmt: skip
    spatial = lambda: vaekit_contender(
        "vaekit-spatial-adv", fmnist_spatial_config(), "l1-ssim-spatial", adversarial=adv
    )
    return {
        "vaekit-fmnist32": q["vaekit-fmnist32"],
        "vaekit-fmnist32-fft": (
            _fmnist32("vaekit-fmnist32-fft", "bce-fft-beta0.8"),
            "`vaekit-fmnist32` with reconstruction BCE + 0.1 FFT (|ΔF|, orthonormal)",
            None,
            "flat",
        ),
        "vaekit-fmnist32-adv": (
            _fmnist32("vaekit-fmnist32-adv", "bce-beta0.8", adv),
            f"`vaekit-fmnist32` + {gan}",
            None,
            "flat",
        ),
        "vaekit-fmnist32-fft-adv": (
            _fmnist32("vaekit-fmnist32-fft-adv", "bce-fft-beta0.8", adv),
            f"`vaekit-fmnist32-fft` + {gan}",
            None,
            "flat",
        ),
        "vaekit-spatial": q["vaekit-spatial"],
        "vaekit-spatial-adv": (spatial, f"`vaekit-spatial` + {gan}", None, "spatial"),
        "diffusers-kl": q["diffusers-kl"],
    }


SYSTEMS = tuple(systems(0))  # the names (``--sharpness-systems``)

# lever -> (recipe in peers.RECIPES, adversarial term, what changes). A pixel loss's β is the
# likelihood scale it stands for at PSNR ≈ 20 dB (see peers.RECIPES)
LEVERS = {
    "bce": ("bce-beta0.8", False, "the `fmnist32` recipe: Bernoulli likelihood (BCE), β 0.8"),
    "l1": ("l1-beta0.05", False, "L1, β 0.05 (Laplace b ≈ 0.05)"),
    "mse": ("mse-beta0.02", False, "MSE, β 0.02 (Gaussian 2σ² ≈ 0.02)"),
    "l1-fft": ("l1-fft-beta0.05", False, "L1 + 0.1 FFT, β 0.05"),
    "multiscale": (
        "multiscale-beta0.05",
        False,
        "MultiScale(L1 + 0.5 SSIM + 0.1 FFT, scales=2), β 0.05 (docs/faq.md's remedy)",
    ),
    "perceptual": (
        "l1-perceptual-beta0.05",
        False,
        "L1 + 0.1 perceptual (VGG16 features, ImageNet weights), β 0.05",
    ),
    "low-beta": ("bce-beta0.1", False, "BCE, β 0.1 (lower β)"),
    "optimal-sigma": (
        "gaussian-optimal-beta0.8",
        False,
        "Gaussian NLL with the batch's optimal σ (σ-VAE), β 0.8",
    ),
    "adversarial": ("bce-beta0.8", True, "the recipe + the PatchGAN term of `ADVERSARIAL`"),
}


def lever_systems(start: int) -> dict:
    """:data:`LEVERS` as a table shaped like :data:`quality.SYSTEMS` (all flat, ours)."""
    adv = _adversarial(start)
    return {
        name: (_fmnist32(name, recipe, adv if gan else None), what, None, "flat")
        for name, (recipe, gan, what) in LEVERS.items()
    }


# -- scoring -----------------------------------------------------------------------------------
def image_ratios(images: torch.Tensor, real: dict, what: str) -> dict:
    """Sharpness and contrast of ``images`` (28x28 content) over the real images'."""
    s = vk.metrics.image_stats(crop28(images)).mean()
    return {f"{k}_{what}": s[k] / real[k] for k in ("sharpness", "contrast")}


def _real_stats(sc: quality.Scoring) -> dict:
    s = vk.metrics.image_stats(crop28(sc.x_test)).mean()
    return {"sharpness": s["sharpness"], "contrast": s["contrast"]}


def _score_recon(c, sc: quality.Scoring, real: dict, seed: int) -> dict:
    """The quality numbers of the current weights + sharpness/contrast of reconstructions."""
    recon = quality.reconstructions(c, sc.x_test, sc.device)
    base = quality.evaluate(c, sc, seed, recon=recon)
    out = {k: base[k] for k in ("psnr", "ssim", "fd_recon")}
    out["fd_samples_normal"] = base["fd_samples"]  # N(0, I), temperature 1
    return {**out, **image_ratios(recon, real, "recon")}


def _score(c, sc, real, prior: str, x_fit, args, seed, device, log) -> dict:
    out = _score_recon(c, sc, real, seed)
    stats = lambda images: image_ratios(images, real, "samples")
    fitted = priors.vaekit_priors(c, crop_to(x_fit, c.input_shape[-1]), len(sc.x_test), sc.fd,
                                  args, seed, device, log, names=(prior,), stats=stats)  # fmt: skip
    row = fitted[prior]
    out["prior"] = prior
    out["prior_fit_seconds"] = row.get("fit_seconds")
    for key in ("fd_samples", "sharpness_samples", "contrast_samples", "error"):
        if key in row:
            out[key] = row[key]
    return out


def step_times(name: str, table: dict, x: torch.Tensor, start: int, args, device) -> dict:
    """Milliseconds per training step of ``name`` on batch ``x`` (fresh weights), with the
    discriminator's step; for an adversarial system also without it and of its reference
    recipe, all timed interleaved at a step where the term is on."""

    def build(system: str):
        torch.manual_seed(args.seed)
        c = table[system][0]()
        _, _, step = quality.training_step(c, device)
        xb = c.to_input(x.to(device))
        return lambda second=True: step(xb, start, second=second)

    step = build(name)
    steps = [step]
    ref = REFERENCE.get(name)
    if ref is not None:
        steps += [lambda: step(second=False), build(ref)]
    seconds = interleaved_seconds(steps, args.sharpness_repeats, device, warmup=args.warmup)
    ms = [round(1000 * s, 1) for s in seconds]
    out = {"batch": len(x), "step_ms": ms[0]}
    if ref is not None:
        out.update(step_ms_without_d=ms[1], reference=ref, reference_step_ms=ms[2],
                   ratio=round(seconds[0] / seconds[2], 3))  # fmt: skip
    return out


def _section(sc: quality.Scoring, args, budget: dict, settings: dict) -> dict:
    return {
        "classifier": sc.classifier,
        "train_images": len(sc.x_train),
        "test_images": len(sc.x_test),
        "threads": args.threads,
        "budget": {**budget, "batch_size": BATCH, "seed": args.seed},
        "settings": settings,
        "real": _real_stats(sc),
        "systems": {},
    }


def run_sharpness(args, device, log) -> dict:
    """Train (or reuse) each system of ``args.sharpness_systems`` and score it."""
    seed = args.seed
    sc = quality.scoring(args, device, log, "sharpness")
    x_fit = sc.x_train[: args.prior_fit_images] if args.prior_fit_images else sc.x_train
    start = adversarial_start(args.budget_images)
    table = systems(start)
    settings = {"adversarial": _adversarial(start), "best_prior": BEST_PRIOR,
                "timed_steps": args.sharpness_repeats}  # fmt: skip
    budgets = {"images": args.budget_images, "seconds": args.budget_seconds}
    section = _section(sc, args, budgets, settings)
    section.update(fit_images=len(x_fit), samples=len(sc.x_test))
    real = section["real"]
    budget = quality.Budget(args.budget_images, args.budget_seconds, args.max_train_seconds)
    for name in args.sharpness_systems:
        trained = quality.train_or_skip(name, section, sc.x_train, budget, seed, device, log,
                                        "sharpness", table)  # fmt: skip
        if trained is None:
            continue
        row, c, watch = trained
        peer = row["peer"]
        row.update(params=c.params, notes=c.notes, reference=REFERENCE.get(name),
                   version=peer_status(peer).version if peer else None,
                   stopped=watch.stopped, at=watch.at, results={})  # fmt: skip
        row["images_per_second"] = round(watch.images / max(watch.elapsed(), 1e-9), 1)
        prior = BEST_PRIOR[row["latent"]]
        for which, state in watch.snapshots.items():
            c.model.load_state_dict(state)
            r = _score(c, sc, real, prior, x_fit, args, seed, device, log)
            row["results"][which] = r
            log(f"[sharpness] {name} @ {which}: " + ", ".join(
                f"{k} {v:.4g}" for k, v in r.items() if isinstance(v, float)))  # fmt: skip
        del c, watch
        row["timing"] = step_times(name, table, sc.x_train[:BATCH], start, args, device)
        log(f"[sharpness] {name} step: {row['timing']}")
    section["targets"] = sharpness_targets(section)
    return section


def run_levers(args, device, log) -> dict:
    """Train each lever of ``args.levers`` to ``--lever-images`` images and score it."""
    seed = args.seed
    sc = quality.scoring(args, device, log, "sharpness-levers")
    start = adversarial_start(args.lever_images)
    table = lever_systems(start)
    settings = {"adversarial": _adversarial(start),
                "recipes": {name: LEVERS[name][0] for name in LEVERS}}  # fmt: skip
    section = _section(sc, args, {"images": args.lever_images}, settings)
    budget = quality.Budget(args.lever_images, None, args.max_train_seconds)
    for name in args.levers:
        trained = quality.train_or_skip(name, section, sc.x_train, budget, seed, device, log,
                                        "sharpness-levers", table)  # fmt: skip
        if trained is None:
            continue
        row, c, watch = trained
        row.update(params=c.params, notes=c.notes, stopped=watch.stopped, at=watch.at,
                   results={})  # fmt: skip
        for which, state in watch.snapshots.items():
            c.model.load_state_dict(state)
            row["results"][which] = r = _score_recon(c, sc, section["real"], seed)
            log(f"[sharpness-levers] {name}: " + ", ".join(
                f"{k} {v:.4g}" for k, v in r.items() if isinstance(v, float)))  # fmt: skip
        del c, watch
    return section
