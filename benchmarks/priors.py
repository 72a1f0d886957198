"""Priors at equal budget: how far an ex-post prior closes the gap between samples and
reconstructions, against pythae's own samplers on its ResNet VAE.

Each system of ``--prior-systems`` is trained exactly as in the quality part (same data, seed,
batch and budgets; when both parts run in one process the quality part's weights are reused,
not trained twice). At each budget it is scored on the test images:

- PSNR and the Fréchet distance (FD) of reconstructions, and FD of samples from N(0, I):
  :func:`quality.evaluate`, the numbers of the quality table;
- vaekit systems: each ex-post prior of :data:`EX_POST` fitted on the posterior means of the
  first ``--prior-fit-images`` training images (``vk.priors.encode_dataset(use="mean")``):
  ``GaussianMixture`` (10 components, full and diagonal covariances), ``Flow`` and
  ``LatentDiffusion`` at their defaults but for the number of optimiser steps
  (``--flow-iterations``, ``--diffusion-iterations``); FD of as many samples (temperature 1)
  as test images, the fit time and the sampling time of those latents;
- ``pythae-resnet``: pythae's ``GaussianMixtureSampler`` (10 components, full covariance,
  scikit-learn, fitted on sampled z: its defaults) and ``TwoStageVAESampler`` (its default
  second-stage VAE; pythae's ``BaseTrainer`` defaults, Adam 1e-4 and batch 64, for
  ``--two-stage-epochs`` epochs), fitted on the same training images.

Times are wall-clock seconds with ``--threads`` torch threads; a fit that fails is a row that
says why, never a missing row.
"""

from __future__ import annotations

import logging
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable

import numpy as np
import torch
from common import pad32
from peers import crop_to

import vaekit as vk

# name -> (prior builder from the latents' dimension D, fit keyword arguments from the options)
EX_POST: dict[str, tuple[Callable[[int], vk.priors.Prior], Callable[..., dict]]] = {
    "gmm-full": (lambda d: vk.priors.GaussianMixture(10, "full"), lambda a: {}),
    # the EM before issue 19: float64 arithmetic, stopped when the log-likelihood per latent
    # (not per dimension) changes by less than 1e-4 nats; its time and log-likelihood
    "gmm-full-f64": (
        lambda d: vk.priors.GaussianMixture(10, "full", precision="float64", tol=1e-4 / d),
        lambda a: {},
    ),
    "gmm-diag": (lambda d: vk.priors.GaussianMixture(10, "diag"), lambda a: {}),
    "flow": (lambda d: vk.priors.Flow(), lambda a: {"iterations": a.flow_iterations}),
    "diffusion": (
        lambda d: vk.priors.LatentDiffusion(),
        lambda a: {"iterations": a.diffusion_iterations},
    ),
    "edm": (lambda d: vk.priors.EDMDiffusion(), lambda a: {"iterations": a.edm_iterations}),
}
# vk.priors.select with its default candidates, diffusion included, ranked by the FD of their
# decoded samples against training images (not the test images the rows are scored on): the
# winner's row, every candidate's figures in "candidates"
SELECT = "select"
PRIOR_NAMES = (*EX_POST, SELECT)  # --prior-names choices
PEER_SAMPLERS = ("pythae-gmm", "pythae-two-stage")
SYSTEMS = ("vaekit-fmnist32", "vaekit-spatial", "pythae-resnet")  # the choices


def _decode_samples(vae: vk.VAE, z: torch.Tensor, device) -> torch.Tensor:
    """Latents -> [0, 1] images with the 2-px zero border of the FD classifier's inputs."""
    with torch.no_grad():
        images = torch.cat([vae.decode(b.to(device)).float().cpu() for b in z.split(500)])
    return pad32(images.clamp(0, 1))


def _since(t: float) -> float:
    return round(time.perf_counter() - t, 2)


def _fit(name: str, latents: torch.Tensor, gen: torch.Generator, args, row: dict, score=None):
    """The fitted prior ``name`` (:data:`EX_POST` or :data:`SELECT`); its record into ``row``.
    ``score``: lower-is-better function of a fitted prior that ranks :data:`SELECT`'s
    candidates."""
    with warnings.catch_warnings():  # an EM that hits max_iter is reported, not raised
        warnings.simplefilter("ignore", RuntimeWarning)
        if name == SELECT:
            n_fit = latents.shape[0] - round(0.1 * latents.shape[0])
            cands = vk.priors.default_candidates(
                tuple(latents.shape[1:]), n_fit, diffusion=score is not None
            )
            for cand in cands:  # the run's optimiser steps (full runs: the priors' defaults)
                if cand["name"] in EX_POST:
                    cand["fit"] = EX_POST[cand["name"]][1](args)
            sel = vk.priors.select(latents, cands, score=score, generator=gen, progress=False)
            row["chosen"] = sel.name
            row["criterion"] = sel.criterion
            row["heldout_log_prob"] = next(r for r in sel.table if r["name"] == sel.name)[
                "heldout_log_prob"
            ]
            row["candidates"] = [
                {k: r[k] for k in ("name", "score", "heldout_log_prob", "fit_seconds", "note")}
                for r in sel.table
            ]
            if score is not None:  # sampling times, in the order of the candidates that fitted
                fitted = [c for c in row["candidates"] if c["name"] in sel.priors]
                for c, secs in zip(fitted, score.sample_seconds, strict=True):
                    c["sample_seconds"] = secs
            return sel.best
        build, fit_kwargs = EX_POST[name]
        prior = build(latents[0].numel()).to(latents.device)
        return prior.fit(latents, generator=gen, progress=False, **fit_kwargs(args))


def vaekit_priors(
    c,
    x_fit,
    n_samples: int,
    fd,
    args,
    seed: int,
    device,
    log,
    names=None,
    stats=None,
    select_fd=None,
) -> dict:
    """Fit the ex-post priors ``names`` (default: ``args.prior_names``, else all of
    :data:`PRIOR_NAMES`) on the posterior means of ``x_fit``; FD of their samples, and
    ``stats(images)`` merged into each row when given (the sharpness part's image statistics
    of the same samples). ``select_fd``: FD of images against training images, the score of
    :data:`SELECT`'s candidates (``None``: the held-out log-likelihood ranks them)."""
    names = names or getattr(args, "prior_names", None) or PRIOR_NAMES
    vae = c.eval_vae().to(device).eval()
    t = time.perf_counter()
    latents = vk.priors.encode_dataset(vae, x_fit, use="mean", batch_size=500, progress=False)
    out = {"encode_seconds": _since(t), "latents": list(latents.shape)}

    def score(prior) -> float:  # FD of decoded samples (a seed of their own), sampling timed
        gen = torch.Generator(device=device).manual_seed(seed + 2)
        t = time.perf_counter()
        with torch.no_grad():
            z = prior.sample(n_samples, generator=gen)
        score.sample_seconds.append(_since(t))
        return select_fd(_decode_samples(vae, z, device))

    score.sample_seconds = []

    for name in names:
        row: dict = {}
        out[name] = row
        try:
            gen = torch.Generator(device=device).manual_seed(seed)
            t = time.perf_counter()
            prior = _fit(name, latents.to(device), gen, args, row,
                         score if select_fd is not None else None)  # fmt: skip
            row["fit_seconds"] = _since(t)
            if isinstance(prior, vk.priors.GaussianMixture):
                row["em_iterations"], row["converged"] = prior.n_iter, prior.converged
            for key in ("fit_log_prob", "heldout_log_prob"):
                if key in prior.fit_report:
                    row[key] = prior.fit_report[key]
            gen = torch.Generator(device=device).manual_seed(seed + 1)
            t = time.perf_counter()
            with torch.no_grad():
                z = prior.sample(n_samples, generator=gen)
            row["sample_seconds"] = _since(t)
            images = _decode_samples(vae, z, device)
            row["fd_samples"] = fd(images)
            if stats is not None:
                row.update(stats(images))
        except Exception as err:  # a failing fit is a row, the others still run
            traceback.print_exc()
            row["error"] = f"{type(err).__name__}: {err}"
        log(f"[priors] {c.name} + {name}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    return out


def pythae_priors(c, x_fit, n_samples: int, fd, args, seed: int, device, log) -> dict:
    """pythae's GaussianMixtureSampler and TwoStageVAESampler at their defaults."""
    from pythae.samplers import (
        GaussianMixtureSampler,
        GaussianMixtureSamplerConfig,
        TwoStageVAESampler,
        TwoStageVAESamplerConfig,
    )
    from pythae.trainers import BaseTrainerConfig

    for name in [n for n in logging.root.manager.loggerDict if n.startswith("pythae")]:
        logging.getLogger(name).setLevel(logging.WARNING)  # INFO banners on stdout
    x_in = c.to_input(x_fit)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        makers = {
            "pythae-gmm": lambda: (
                GaussianMixtureSampler(c.model, GaussianMixtureSamplerConfig()), {}
            ),
            "pythae-two-stage": lambda: (
                TwoStageVAESampler(c.model, TwoStageVAESamplerConfig()),
                {"training_config": BaseTrainerConfig(
                    output_dir=tmp, num_epochs=args.two_stage_epochs, seed=seed,
                    no_cuda=device.type != "cuda",
                )},
            ),
        }  # fmt: skip
        for name, make in makers.items():
            row: dict = {}
            out[name] = row
            try:
                # scikit-learn's mixture and pythae's noise draw from the global generators
                np.random.seed(seed)  # noqa: NPY002
                torch.manual_seed(seed)
                sampler, kwargs = make()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t = time.perf_counter()
                    sampler.fit(x_in, **kwargs)
                    row["fit_seconds"] = _since(t)
                    np.random.seed(seed + 1)  # noqa: NPY002
                    torch.manual_seed(seed + 1)
                    t = time.perf_counter()
                    with torch.no_grad():
                        images = sampler.sample(num_samples=n_samples, batch_size=500)
                    row["sample_seconds"] = _since(t)
                row["fd_samples"] = fd(pad32(images.float().cpu().clamp(0, 1)))
            except Exception as err:
                traceback.print_exc()
                row["error"] = f"{type(err).__name__}: {err}"
            log(f"[priors] {c.name} + {name}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    return out


def run_priors(args, device, log) -> dict:
    """Train (or reuse) each system of ``args.prior_systems`` and score its priors."""
    import quality
    from report import prior_targets

    seed = args.seed
    sc = quality.scoring(args, device, log, "priors")
    x_train, n_test = sc.x_train, len(sc.x_test)
    x_fit = x_train[: args.prior_fit_images] if args.prior_fit_images else x_train
    section = {
        "classifier": sc.classifier,
        "train_images": len(x_train),
        "fit_images": len(x_fit),
        "test_images": n_test,
        "samples": n_test,
        "threads": args.threads,
        "budget": {"images": args.budget_images, "seconds": args.budget_seconds,
                   "batch_size": 64, "seed": seed},
        "settings": {"gmm_components": 10, "flow_iterations": args.flow_iterations,
                     "diffusion_iterations": args.diffusion_iterations,
                     "edm_iterations": args.edm_iterations,
                     "two_stage_epochs": args.two_stage_epochs},
        "systems": {},
    }  # fmt: skip
    budget = quality.Budget(args.budget_images, args.budget_seconds, args.max_train_seconds)
    reference = sc.features(x_train[:n_test])  # select's score: FD against training images

    def select_fd(images: torch.Tensor) -> float:
        return vk.metrics.fid(reference, sc.features(images))

    for name in args.prior_systems:
        trained = quality.train_or_skip(name, section, x_train, budget, seed, device, log, "priors")
        if trained is None:
            continue
        row, c, watch = trained
        row.update(params=c.params, stopped=watch.stopped, at=watch.at, results={})
        score = pythae_priors if c.peer == "pythae" else vaekit_priors
        kwargs = {} if c.peer == "pythae" else {"select_fd": select_fd}
        for which, state in watch.snapshots.items():
            c.model.load_state_dict(state)
            base = quality.evaluate(c, sc, seed)
            result = {k: base[k] for k in ("psnr", "ssim", "fd_recon")}
            result["priors"] = {"standard_normal": {"fd_samples": base["fd_samples"]}}
            x = crop_to(x_fit, c.input_shape[-1])
            extra = score(c, x, n_test, sc.fd, args, seed, device, log, **kwargs)
            for key in ("encode_seconds", "latents"):
                if key in extra:
                    result[key] = extra.pop(key)
            result["priors"].update(extra)
            row["results"][which] = result
    section["targets"] = prior_targets(section)
    return section
