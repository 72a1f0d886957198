"""Choose an ex-post prior by a held-out criterion instead of guessing.

:func:`select` fits each candidate on the same share of the latents and scores it on the
rest. The criterion is the **mean held-out log-likelihood per latent dimension** (nats,
higher is better): a proper scoring rule, so a density cannot raise it by memorising its fit
latents (a mixture with more components than the data support loses on the held-out ones),
and it needs no decoder, classifier or images. It only ranks priors with a density; a prior
without one (:class:`~vaekit.priors.LatentDiffusion`) takes part when you pass ``score=``,
a lower-is-better function of a fitted prior that every candidate is then ranked by (e.g. the
Fréchet distance of its decoded samples in your classifier's features).
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .._validation import check_finite, check_float_tensor, check_number
from .base import ExPostPrior, heldout_split, mean_log_prob_per_dim
from .registry import build, name_of

__all__ = ["Selection", "default_candidates", "select"]

Candidate = str | Mapping[str, Any] | ExPostPrior


def default_candidates(
    latent_shape: Sequence[int], num_latents: int, *, diffusion: bool = False
) -> list[dict[str, Any]]:
    """The candidates :func:`select` fits when given none, for ``num_latents`` fit latents of
    ``latent_shape`` (``D`` dims): Gaussian mixtures over a range of component counts ``K`` —
    diagonal ones with 1, 10, 30, 100 and 300 components while ``N >= 10 K``, full ones with 1
    to 20 (50 too for ``D <= 64``) while ``N >= K D``, the latents per component a ``D×D``
    covariance needs — and the RealNVP :class:`~vaekit.priors.Flow` (from 256 latents, one
    of its batches).

    ``diffusion=True`` (what :func:`select` uses when given a ``score``: a diffusion prior has
    no density to rank by) adds the diffusion prior for the latent shape, from 256 latents:
    :class:`~vaekit.priors.EDMDiffusion` (U-Net) for spatial latents ``(C, h, w)``,
    :class:`~vaekit.priors.LatentDiffusion` (MLP) for flat ones — the best of each in
    benchmarks/priors.py.

    Example:
        >>> import vaekit as vk
        >>> [(c["name"], c.get("components")) for c in vk.priors.default_candidates((32,), 600)]
        [('gmm', 1), ('gmm', 10), ('gmm', 30), ('gmm', 1), ('gmm', 5), ('gmm', 10), ('flow', None)]
    """
    d = math.prod(latent_shape)
    full = (1, 5, 10, 20, 50) if d <= 64 else (1, 5, 10, 20)
    out = [
        {"name": "gmm", "components": k, "covariance": "diag"}
        for k in (1, 10, 30, 100, 300)
        if num_latents >= 10 * k
    ]
    out += [
        {"name": "gmm", "components": k, "covariance": "full"}
        for k in full
        if num_latents >= max(k * d, 10 * k)
    ]
    if num_latents >= 256:
        out.append({"name": "flow"})
        if diffusion:
            out.append({"name": "edm" if len(latent_shape) == 3 else "diffusion"})
    return out


def _label(prior: ExPostPrior) -> str:
    """``gmm:30:diag``, ``flow``: the trainer's ``--fit-prior`` spelling of a prior."""
    name = name_of(prior) or type(prior).__name__
    cfg = prior.config()
    if name == "gmm":
        return f"gmm:{cfg['components']}:{cfg['covariance']}"
    return name


def _settings(prior: ExPostPrior) -> dict[str, Any]:
    return {k: v for k, v in prior.config().items() if k != "latent_shape"}


def _build(candidate: object) -> tuple[ExPostPrior, dict[str, Any]]:
    """A fresh prior and the keywords of its ``fit`` from one candidate."""
    if isinstance(candidate, ExPostPrior):
        return candidate, {}
    if isinstance(candidate, str):
        candidate = {"name": candidate}
    if not isinstance(candidate, Mapping) or not isinstance(candidate.get("name"), str):
        raise TypeError(
            "a candidate is a prior name ('flow'), a dict {'name': 'gmm', 'components': 30, "
            "..., 'fit': {...}} or an unfitted ExPostPrior, got "
            f"{type(candidate).__name__} {candidate!r}"
        )
    kwargs = {k: v for k, v in candidate.items() if k not in ("name", "fit")}
    prior = build(candidate["name"], **kwargs)
    if not isinstance(prior, ExPostPrior):
        raise ValueError(
            f"{candidate['name']!r} is not fitted on latents (it is learned with the VAE or "
            "fixed); select chooses among ex-post priors such as 'gmm', 'flow', 'diffusion'"
        )
    fit = candidate.get("fit", {})
    if not isinstance(fit, Mapping):
        raise TypeError(f"a candidate's 'fit' must be a dict of fit() keywords, got {fit!r}")
    return prior, dict(fit)


@dataclass
class Selection:
    """What :func:`select` found.

    Attributes:
        best: the winning prior, fitted (on the fit share of the latents): ready for
            ``vae.prior = sel.best``.
        name: its ``--fit-prior`` spelling, e.g. ``"gmm:30:diag"``.
        table: one dict per candidate, in the order fitted: ``name``, ``settings``,
            ``score`` (the criterion, ``nan`` for a candidate that failed), ``heldout_log_prob``
            and ``fit_log_prob`` (nats per dim, where there is a density), ``fit_seconds``,
            ``note`` (an error or warning of its fit).
        criterion: ``"heldout_log_prob"`` (higher is better) or ``"score"`` (yours, lower is
            better).
        num_fit, num_heldout: the latents of the two shares.
        priors: every candidate that fitted, by name, fitted: to judge a few by their images
            (``vk.metrics.sample_report(vae, features, x_test, priors=sel.priors)``).
    """

    best: ExPostPrior
    name: str
    table: list[dict[str, Any]] = field(repr=False)
    criterion: str
    num_fit: int
    num_heldout: int
    priors: dict[str, ExPostPrior] = field(default_factory=dict, repr=False)

    def to_markdown(self) -> str:
        """The table as Markdown, the winner first in bold."""
        head = self.criterion + (" (higher is better)" if self.higher_is_better else " (lower)")
        lines = [
            f"| prior | {head} | held-out log p / dim | fit log p / dim | fit s | note |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for row in self.table:
            name = f"**{row['name']}**" if row["name"] == self.name else row["name"]
            cells = [_fmt(row.get(k)) for k in ("score", "heldout_log_prob", "fit_log_prob")]
            lines.append(
                f"| {name} | {' | '.join(cells)} | {row['fit_seconds']:.1f} | {row['note']} |"
            )
        return "\n".join(lines)

    @property
    def higher_is_better(self) -> bool:
        return self.criterion == "heldout_log_prob"

    def __str__(self) -> str:
        return f"Selection(best={self.name!r}, {len(self.table)} candidates)\n{self.to_markdown()}"


def _fmt(value: object) -> str:
    return "—" if not isinstance(value, float) or math.isnan(value) else f"{value:.4f}"


def select(
    latents: torch.Tensor,
    candidates: Iterable[Candidate] | None = None,
    *,
    val_fraction: float = 0.1,
    score: Callable[[ExPostPrior], float] | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> Selection:
    """Fit each candidate prior on the latents and keep the one that generalises best.

    A seeded ``val_fraction`` of the latents is held out; every candidate is fitted on the
    rest (with ``val_fraction=0`` of its own) and ranked by its mean log-likelihood per
    dimension on the held-out latents (see the module docstring for why), or by ``score``.

    Args:
        latents: ``(N, D)`` or ``(N, C, h, w)``, e.g. posterior means from
            :func:`vaekit.priors.encode_dataset`.
        candidates: names (``"flow"``), dicts of a name and constructor keywords (``{"name":
            "gmm", "components": 30, "covariance": "diag", "fit": {...}}``) or unfitted
            ex-post priors; ``None``: :func:`default_candidates` (with a diffusion prior when
            ``score`` is given).
        val_fraction: the share held out, in (0, 1).
        score: lower-is-better score of a fitted prior, ranking every candidate instead of
            the held-out log-likelihood (needed for priors without a density).
        generator: seeds the split and every fit (any device), for a reproducible choice.
        progress: a line per candidate.

    Returns:
        :class:`Selection` (``best``, ``name``, ``table``, ...).

    Example:
        >>> import torch, vaekit as vk
        >>> g = torch.Generator().manual_seed(0)
        >>> latents = torch.cat([torch.randn(300, 2, generator=g) - 3,
        ...                      torch.randn(300, 2, generator=g) + 3])
        >>> sel = vk.priors.select(latents, ["gmm", {"name": "gmm", "components": 2}],
        ...                        generator=g, progress=False)
        >>> sel.name, [row["name"] for row in sel.table]
        ('gmm:2:full', ['gmm:10:full', 'gmm:2:full'])
    """
    latents = check_float_tensor(latents, "latents")
    if latents.ndim not in (2, 4):
        raise ValueError(
            "latents must be (N, D) flat or (N, C, h, w) spatial, as returned by "
            f"vk.priors.encode_dataset, got shape {tuple(latents.shape)}"
        )
    check_finite(latents, "latents")
    check_number(val_fraction, "val_fraction", above=0)
    if not val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if score is not None and not callable(score):
        raise TypeError(f"score must be a function of a fitted prior, got {type(score).__name__}")
    n = latents.shape[0]
    n_val = round(val_fraction * n)
    if n_val < 2 or n - n_val < 2:
        raise ValueError(
            f"select needs latents on both sides of the split: {n} latents with "
            f"val_fraction={val_fraction} leave {n - n_val} to fit and {n_val} to score"
        )
    fit_part, heldout = heldout_split(latents, n_val, generator)
    if candidates is None:
        candidates = default_candidates(
            tuple(latents.shape[1:]), n - n_val, diffusion=score is not None
        )
    built = [_build(c) for c in candidates]  # a bad candidate fails before any fit
    if not built:
        raise ValueError("candidates is empty: give at least one prior to choose from")
    if score is None:
        no_density = [type(p).__name__ for p, _ in built if not getattr(p, "has_log_prob", False)]
        if no_density:
            raise ValueError(
                f"{sorted(set(no_density))} have no density, so the held-out log-likelihood "
                "cannot rank them: pass score= (a lower-is-better function of a fitted prior, "
                "e.g. the FD of its decoded samples) or leave them out"
            )
    table: list[dict[str, Any]] = []
    fitted: list[ExPostPrior | None] = []
    for prior, fit_kwargs in built:
        prior = prior.to(latents.device)
        row: dict[str, Any] = {
            "name": _label(prior), "settings": _settings(prior), "score": math.nan,
            "heldout_log_prob": math.nan, "fit_log_prob": math.nan, "fit_seconds": 0.0,
            "note": "",
        }  # fmt: skip
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                kwargs = {"generator": generator, "progress": False, **fit_kwargs}
                if "val_fraction" in inspect.signature(prior.fit).parameters:
                    kwargs["val_fraction"] = 0.0  # select holds its own latents out
                prior.fit(fit_part, **kwargs)
            except (ValueError, RuntimeError) as err:  # e.g. a singular covariance
                row["note"] = f"failed: {' '.join(str(err).split())}"
                prior = None
        row["fit_seconds"] = time.perf_counter() - t0
        if prior is not None:
            row["name"], row["settings"] = _label(prior), _settings(prior)
            if getattr(prior, "has_log_prob", False):
                row["heldout_log_prob"] = mean_log_prob_per_dim(prior, heldout)
                row["fit_log_prob"] = prior.fit_report.get("fit_log_prob", math.nan)
                # its record says what select held out of its fit
                prior.fit_report.update(n_heldout=n_val, heldout_log_prob=row["heldout_log_prob"])
            row["score"] = row["heldout_log_prob"] if score is None else float(score(prior))
            notes = sorted({str(w.message).split(";")[0] for w in caught})
            row["note"] = "; ".join(notes)
        table.append(row)
        fitted.append(prior)
        if progress:
            print(f"select: {row['name']:<14} score {row['score']:.4f}  "
                  f"({row['fit_seconds']:.1f} s){'  ' + row['note'] if row['note'] else ''}")  # fmt: skip
    scores = [r["score"] if not math.isnan(r["score"]) else None for r in table]
    valid = [i for i, s in enumerate(scores) if s is not None]
    if not valid:
        raise ValueError(
            "every candidate failed to fit: "
            + "; ".join(f"{r['name']}: {r['note']}" for r in table)
        )
    pick = max if score is None else min
    i = pick(valid, key=lambda j: scores[j])
    return Selection(
        best=fitted[i], name=table[i]["name"], table=table,
        criterion="heldout_log_prob" if score is None else "score",
        num_fit=n - n_val, num_heldout=n_val,
        priors={r["name"]: p for r, p in zip(table, fitted, strict=True) if p is not None},
    )  # fmt: skip
