"""The maximum-likelihood / denoising training loop shared by the flow and diffusion priors,
and the whole fit of a diffusion prior's denoiser (:func:`fit_denoiser`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn

from .._validation import check_int, check_positive
from ._progress import progress_bar

__all__ = ["fit_denoiser", "fit_loop", "randn_like_on", "seeded_build"]


def randn_like_on(
    shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """N(0, 1) noise drawn on ``generator``'s device (so a CPU generator seeds a GPU fit)."""
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


def seeded_build(make: Callable[[], nn.Module], generator: torch.Generator | None) -> nn.Module:
    """Build a network with its usual initialisation, seeded from ``generator``.

    The global RNG is forked, so the caller's random state is left as it was.
    """
    if generator is None:
        return make()
    device = generator.device
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=device))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def _batches(
    n: int, batch_size: int, generator: torch.Generator | None, device: torch.device
) -> Iterator[torch.Tensor]:
    """Indices of shuffled minibatches, epoch after epoch (the last partial batch dropped)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    while True:
        perm = torch.randperm(n, generator=generator, device=gen_device).to(device)
        for start in range(0, n - batch_size + 1, batch_size):
            yield perm[start : start + batch_size]


def fit_loop(
    module: nn.Module,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    data: torch.Tensor,
    *,
    iterations: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator | None,
    progress: bool,
    desc: str,
    ema: float | None = None,
    max_grad_norm: float = 1.0,
) -> list[float]:
    """Adam on ``loss_fn(minibatch)`` with a cosine learning-rate decay; returns the losses.

    Args:
        module: the parameters to train (all of them).
        loss_fn: minibatch of ``data`` -> scalar loss.
        iterations: optimiser steps.
        lr: peak learning rate (1% linear warm-up, then cosine decay to 0).
        batch_size: minibatch size (capped at ``len(data)``).
        ema: if given, an exponential moving average of the weights with this decay
            (warmed up as ``min(ema, (1 + t) / (10 + t))``) replaces them at the end.
    """
    check_int(iterations, "iterations")
    check_positive(lr, "lr")
    check_int(batch_size, "batch_size")
    if ema is not None and not 0.0 <= ema < 1.0:
        raise ValueError(f"ema must be in [0, 1) or None, got {ema!r}")
    batch_size = min(batch_size, data.shape[0])
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    warmup = max(1, iterations // 100)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, iterations - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    averages = [p.detach().clone() for p in params] if ema is not None else None
    history: list[float] = []
    bar = progress_bar(iterations, desc, progress)
    batches = _batches(data.shape[0], batch_size, generator, data.device)
    try:
        for step in range(iterations):
            loss = loss_fn(data[next(batches)])
            if not torch.isfinite(loss.detach()):
                raise ValueError(
                    f"{desc}: the loss became {float(loss.detach())} at iteration {step}; lower lr "
                    f"(now {lr:g}) or check the latents"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, max_grad_norm)
            opt.step()
            sched.step()
            if averages is not None:
                decay = min(ema, (1.0 + step) / (10.0 + step))
                with torch.no_grad():
                    torch._foreach_lerp_(averages, [p.detach() for p in params], 1.0 - decay)
            history.append(float(loss.detach()))
            bar.update(1)
            if step % 50 == 0 or step == iterations - 1:
                bar.set_postfix_str(f"loss={history[-1]:.4f}")
    finally:
        bar.close()
    if averages is not None:
        with torch.no_grad():
            for p, a in zip(params, averages):
                p.copy_(a)
    return history


def fit_denoiser(
    prior,
    latents: torch.Tensor,
    standardise: Callable[[torch.Tensor], torch.Tensor],
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    generator: torch.Generator | None,
    desc: str,
    **loop: object,
):
    """A diffusion prior's ``fit``: check the latents, a fresh ``prior.denoiser`` (from
    ``prior._make_denoiser``, seeded from ``generator``), ``standardise(latents)`` (sets the
    prior's buffers, returns the training data; under ``no_grad``), :func:`fit_loop` on
    ``loss_fn`` with ``loop``'s options into ``prior.history``, then the fit's record.
    Returns ``prior``."""
    t0 = time.perf_counter()
    data = prior._check_fit_latents(latents).to(prior.dtype)
    shape = prior.latent_shape
    prior.fitted.fill_(False)
    prior.denoiser = seeded_build(lambda: prior._make_denoiser(shape), generator).to(
        device=prior.device, dtype=prior.dtype
    )
    with torch.no_grad():
        data = standardise(data)
    prior.history = fit_loop(prior.denoiser, loss_fn, data, generator=generator, desc=desc, **loop)
    prior._set_fitted()
    prior._report_fit(data, None, time.perf_counter() - t0)  # no density: size and time
    return prior
