"""The trainer's mini-languages: ``--loss``, ``--beta``, ``--prior``/``--fit-prior``, lengths.

Lengths (``--eval-every``, ramp lengths in ``--beta``): ``1000`` is optimiser steps,
``40ep`` (or ``2.5ep``) is epochs, converted with the number of steps per epoch of the run
(per process under DDP: ``len(train_loader)``).

``--loss``: comma-separated terms ``NAME[(KEY=VALUE,...)][=WEIGHT]`` with names from the
``vk.losses`` registry (aliases work) and weight 1 when omitted::

    bce
    l1=1,ssim=0.5,fft=0.1
    gaussian_nll(sigma=0.1)
    gaussian_nll(sigma=learned,init_sigma=0.1)=1
    l1(scales=3)=1,ssim(scales=3)=1,fft=0.1      # scales=N: that term on an N-level pyramid

Keyword values are Python literals (``0.1``, ``true``, ``('relu1_2','relu2_2')``) or bare
words (``optimal``). In a JSON config the loss may also be a dict
``{"l1": 1.0, "gaussian_nll": {"weight": 1.0, "sigma": 0.1}}``.

``--beta`` (the KL weight as a function of the step, mapped to ``vk.schedules``)::

    0.8 | constant:0.8                  Constant(0.8)
    linear:0->0.5@40ep[,delay=5ep]      Linear: 0 (for the delay), ramp to 0.5 over 40 epochs
    cosine:0->1@10000[,delay=2000]      Cosine: the same with a half-cosine ramp
    cyclical:0->1@100ep[,cycles=4,ratio=0.5,shape=linear]
                                        Cyclical (Fu et al. 2019) over 100 epochs
    two-phase:0@50ep->0.001@50ep[,shape=cosine]
                                        Sequence: 0 for 50 epochs, then ramp to 0.001 over
                                        50 epochs, then hold 0.001

A JSON config may also give ``beta`` as a ``vk.schedules`` ``to_dict()`` (lengths in steps).

``--prior`` (learned with the VAE) and ``--fit-prior`` (fitted on the latents after training),
names from the ``vk.priors`` registry, positional values and ``KEY=VALUE`` options after
colons (constructor arguments, or options of an ex-post prior's ``fit``)::

    mog:16                              MixtureOfGaussians(components=16)
    vamp:64                             VampPrior(pseudo_inputs=64)
    gmm:10 | gmm:10:diag                GaussianMixture(10, "full" | "diag")
    flow | flow:layers=4:iterations=500 Flow(layers=4), fit(..., iterations=500)
    diffusion:sample_steps=25           LatentDiffusion(sample_steps=25)

``--adversarial`` (a discriminator from the ``vk.discriminators`` registry and a
``vk.losses.Adversarial`` term; Esser et al. 2021, Rombach et al. 2022)::

    patchgan                            PatchGAN(in_channels=C), hinge, weight 0.5, adaptive,
                                        from step 0; the discriminator's AdamW lr 2e-4,
                                        betas (0.5, 0.9), no weight decay
    patchgan:weight=0.5,start=0.3ep,loss=hinge,lr=2e-4,width=32,layers=3,norm=batch,r1=0

``weight``, ``start`` (a length; ``0``: from the first step), ``loss``, ``adaptive``, ``r1``
(R1 γ), ``max_weight``, ``lr``, ``betas`` and ``weight_decay`` set the term and the
discriminator's optimiser; any other key is a keyword of the discriminator's constructor
(``in_channels`` comes from the model). In a JSON config: ``{"name": "patchgan", ...}``.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

import vaekit as vk
from vaekit import schedules as S
from vaekit._validation import check_int, check_number, is_number

BETA_KINDS = ("constant", "linear", "cosine", "cyclical", "two-phase")
BETA_EXAMPLES = (
    "0.8, constant:0.8, linear:0->0.5@40ep, cosine:0->1@10000,delay=2000, "
    "cyclical:0->1@100ep,cycles=4, two-phase:0@50ep->0.001@50ep"
)
# keyword arguments of a loss term that the trainer handles itself
TRAINER_KWARGS = ("scales",)
LIKELIHOOD_TERMS = {"bce": "bernoulli", "gaussian_nll": "gaussian", "laplace_nll": "laplace"}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_LENGTH = re.compile(r"^\s*(\d+\.?\d*|\.\d+)\s*(ep|epoch|epochs|steps?)?\s*$")


# -- lengths ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Length:
    """A duration in optimiser steps or epochs (``1000`` or ``40ep``)."""

    value: float
    unit: str  # "steps" or "epochs"

    def to_steps(self, steps_per_epoch: int) -> int:
        """Whole optimiser steps (at least 1)."""
        if self.unit == "steps":
            return max(1, int(self.value))
        return max(1, round(self.value * steps_per_epoch))

    def __str__(self) -> str:
        if self.unit == "steps":
            return str(int(self.value))
        return f"{self.value:g}ep"


def parse_length(text: object, what: str) -> Length:
    """``"1000"``/``1000`` -> 1000 steps; ``"40ep"`` -> 40 epochs. ``what`` names the option."""
    if isinstance(text, bool):
        raise TypeError(f"{what} must be a length like 1000 (steps) or 40ep, got {text!r}")
    if isinstance(text, int):
        text = str(text)
    if not isinstance(text, str):
        raise TypeError(
            f"{what} must be a length like 1000 (steps) or 40ep (epochs), got "
            f"{type(text).__name__} {text!r}"
        )
    m = _LENGTH.match(text)
    if not m:
        raise ValueError(
            f"{what} must be a length like 1000 (optimiser steps) or 40ep (epochs), got {text!r}"
        )
    value, unit = float(m.group(1)), m.group(2) or "steps"
    unit = "steps" if unit.startswith("step") else "epochs"
    if unit == "steps" and value != int(value):
        raise ValueError(
            f"{what}: a number of steps must be whole, got {text!r} (use 'ep' for epochs)"
        )
    if value <= 0:
        raise ValueError(f"{what} must be > 0, got {text!r}")
    return Length(value, unit)


# -- beta ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BetaPlan:
    """A parsed ``--beta``; :meth:`schedule` turns epoch lengths into steps."""

    kind: str
    start: float = 0.0
    end: float = 1.0
    length: Length | None = None  # ramp (linear/cosine), total (cyclical), phase 2 (two-phase)
    hold: Length | None = None  # delay (linear/cosine) or phase 1 (two-phase)
    options: dict[str, Any] = field(default_factory=dict)
    schedule_dict: dict[str, Any] | None = None  # a vk.schedules to_dict() from a JSON config
    text: str = ""

    def schedule(self, steps_per_epoch: int) -> S.Schedule:
        """The ``vk.schedules`` object for this run."""
        spe = steps_per_epoch
        if self.schedule_dict is not None:
            return S.from_dict(self.schedule_dict)
        if self.kind == "constant":
            return S.Constant(self.end)
        if self.kind in ("linear", "cosine"):
            cls = S.Linear if self.kind == "linear" else S.Cosine
            delay = self.hold.to_steps(spe) if self.hold else 0
            return cls(self.start, self.end, steps=self.length.to_steps(spe), delay=delay)
        if self.kind == "cyclical":
            return S.Cyclical(
                total_steps=self.length.to_steps(spe), start=self.start, end=self.end,
                **self.options,
            )  # fmt: skip
        # two-phase: hold `start` for phase 1, then ramp to `end` over phase 2 (then hold it)
        ramp_cls = S.Cosine if self.options.get("shape") == "cosine" else S.Linear
        hold, ramp = self.hold.to_steps(spe), self.length.to_steps(spe)
        return S.Sequence(
            [(hold, S.Constant(self.start)), (ramp, ramp_cls(self.start, self.end, steps=ramp))]
        )

    def final_value(self) -> float:
        """β once every ramp is over: the value the validation total is computed at."""
        return float(self.schedule(10_000)(10**12))


def _number(text: str, what: str) -> float:
    if not re.fullmatch(_NUMBER, text.strip()):
        raise ValueError(f"{what} must be a number, got {text.strip()!r}")
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {text.strip()!r}")
    return value


def _split_options(body: str, allowed: dict[str, type], what: str) -> tuple[str, dict[str, Any]]:
    """``"0->1@10ep,cycles=4"`` -> (``"0->1@10ep"``, {"cycles": 4}) with checked keys."""
    head, *rest = body.split(",")
    options: dict[str, Any] = {}
    for item in rest:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in allowed:
            raise ValueError(
                f"{what}: unknown option {item.strip()!r}; expected "
                + (", ".join(f"{k}=..." for k in allowed) or "no options")
            )
        kind = allowed[key]
        if kind is Length:
            options[key] = parse_length(value, f"{what} option {key}")
        elif kind is int:
            if not value.isdigit():
                raise ValueError(f"{what}: {key} must be a whole number, got {value!r}")
            options[key] = int(value)
        elif kind is float:
            options[key] = _number(value, f"{what}: {key}")
        else:
            options[key] = value
    return head, options


def parse_beta(spec: object) -> BetaPlan:
    """Parse a ``--beta`` value (module docstring); a ``ValueError`` shows the syntax."""
    what = f"--beta {spec!r}"
    if isinstance(spec, Mapping):
        try:
            S.from_dict(dict(spec))
        except (TypeError, ValueError, KeyError) as err:
            raise ValueError(f"{what} is not a vk.schedules dict: {err}") from None
        return BetaPlan(kind="dict", schedule_dict=dict(spec), text=str(dict(spec)))
    if is_number(spec):
        spec = repr(float(spec))
    if not isinstance(spec, str) or not spec.strip():
        raise TypeError(
            f"--beta must be a string such as {BETA_EXAMPLES}, got {type(spec).__name__} {spec!r}"
        )
    text = spec.strip()
    kind, sep, body = text.partition(":")
    kind = kind.strip().lower()
    if not sep:  # a bare number
        if re.fullmatch(_NUMBER, kind):
            return BetaPlan("constant", end=_number(kind, what), text=text)
        raise ValueError(
            f"{what}: expected a number or KIND:ARGS with KIND one of {list(BETA_KINDS)}, e.g. "
            f"{BETA_EXAMPLES}"
        )
    if kind not in BETA_KINDS:
        raise ValueError(
            f"{what}: unknown schedule {kind!r}; expected one of {list(BETA_KINDS)}, e.g. "
            f"{BETA_EXAMPLES}"
        )
    if kind == "constant":
        return BetaPlan("constant", end=_number(body, what), text=text)
    if kind in ("linear", "cosine", "cyclical"):
        allowed: dict[str, type] = (
            {"delay": Length}
            if kind != "cyclical"
            else {"cycles": int, "ratio": float, "shape": str}
        )
        head, options = _split_options(body, allowed, what)
        m = re.fullmatch(rf"\s*({_NUMBER})\s*->\s*({_NUMBER})\s*@\s*(\S+)\s*", head)
        if not m:
            raise ValueError(f"{what}: expected {kind}:START->END@LENGTH (e.g. {kind}:0->0.5@40ep)")
        start, end = _number(m.group(1), what), _number(m.group(2), what)
        length = parse_length(m.group(3), f"{what} length")
        hold = options.pop("delay", None)
        if kind == "cyclical":
            if "shape" in options and options["shape"] not in S.SHAPES:
                raise ValueError(f"{what}: shape must be one of {list(S.SHAPES)}")
            if "ratio" in options and not 0 < options["ratio"] <= 1:
                raise ValueError(f"{what}: ratio must be in (0, 1], got {options['ratio']}")
        plan = BetaPlan(kind, start, end, length, hold, options, text=text)
    else:  # two-phase
        head, options = _split_options(body, {"shape": str}, what)
        m = re.fullmatch(rf"\s*({_NUMBER})\s*@\s*(\S+?)\s*->\s*({_NUMBER})\s*@\s*(\S+)\s*", head)
        if not m:
            raise ValueError(
                f"{what}: expected two-phase:START@LENGTH1->END@LENGTH2, e.g. "
                "two-phase:0@50ep->0.001@50ep (β = 0 for 50 epochs, then a 50-epoch ramp)"
            )
        if options.get("shape", "linear") not in ("linear", "cosine"):
            raise ValueError(f"{what}: shape must be 'linear' or 'cosine'")
        plan = BetaPlan(
            "two-phase", _number(m.group(1), what), _number(m.group(3), what),
            length=parse_length(m.group(4), f"{what} ramp length"),
            hold=parse_length(m.group(2), f"{what} first phase"), options=options, text=text,
        )  # fmt: skip
    plan.schedule(10_000)  # let vk.schedules check the numbers now, not after loading data
    return plan


# -- loss ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LossTerm:
    name: str  # canonical registry name
    weight: float
    kwargs: dict[str, Any]
    scales: int = 1


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split at ``sep`` outside brackets and quotes."""
    parts, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced brackets in {text!r}")
        elif ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    if depth or quote:
        raise ValueError(f"unbalanced brackets or quotes in {text!r}")
    parts.append("".join(cur))
    return parts


def _literal(text: str) -> Any:
    word = text.strip()
    low = word.lower()
    if low in ("true", "false", "none", "null"):
        return {"true": True, "false": False}.get(low)
    try:
        return ast.literal_eval(word)
    except (ValueError, SyntaxError):
        return word  # a bare word such as `optimal` or `vgg`


def _term(name: object, weight: object, kwargs: Mapping[str, Any], what: str) -> LossTerm:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what}: every term needs a loss name, got {name!r}")
    name = name.strip()
    if name == "kl":
        raise ValueError(
            f"{what}: the KL term is added by the trainer; set its weight with --beta and "
            "--free-bits instead of listing 'kl' in --loss"
        )
    try:
        factory = vk.losses.get(name)  # unknown names: the registry lists the known ones
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    canonical = next(n for n in vk.losses.available() if vk.losses.get(n) is factory)
    weight = check_number(weight, f"{what}: the weight of {name!r}", at_least=0)
    kwargs = dict(kwargs)
    scales = check_int(kwargs.pop("scales", 1), f"{what}: scales of {name!r}")
    return LossTerm(canonical, weight, kwargs, scales)


def parse_loss(spec: object) -> list[LossTerm]:
    """Parse ``--loss`` (string or JSON dict) into terms; unknown names list the registry."""
    what = f"--loss {spec!r}"
    terms: list[LossTerm] = []
    if isinstance(spec, Mapping):
        for name, value in spec.items():
            if isinstance(value, Mapping):
                value = dict(value)
                weight = value.pop("weight", 1.0)
                terms.append(_term(name, weight, value, what))
            else:
                terms.append(_term(name, value, {}, what))
    elif isinstance(spec, str) and spec.strip():
        try:
            items = _split_top(spec)
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None
        for item in items:
            m = re.fullmatch(
                r"\s*([A-Za-z_][\w-]*)\s*(?:\((.*)\))?\s*(?:=\s*(\S+))?\s*", item, re.S
            )
            if not m:
                raise ValueError(
                    f"{what}: cannot read term {item.strip()!r}; expected NAME, NAME=WEIGHT or "
                    "NAME(KEY=VALUE,...)=WEIGHT, e.g. 'l1=1,ssim=0.5' or 'gaussian_nll(sigma=0.1)'"
                )
            name, args, weight_text = m.groups()
            kwargs: dict[str, Any] = {}
            for arg in _split_top(args) if args and args.strip() else []:
                key, sep, value = arg.partition("=")
                if not sep or not key.strip().isidentifier():
                    raise ValueError(f"{what}: expected KEY=VALUE inside {name}(...), got {arg!r}")
                kwargs[key.strip()] = _literal(value)
            weight: object = 1.0
            if weight_text is not None:
                if not re.fullmatch(_NUMBER, weight_text):
                    raise ValueError(
                        f"{what}: the weight of {name!r} must be a number, got {weight_text!r}"
                    )
                weight = float(weight_text)
            terms.append(_term(name, weight, kwargs, what))
    else:
        raise TypeError(
            f"--loss must be a string like 'l1=1,ssim=0.5' (or a dict in a JSON config), got "
            f"{type(spec).__name__} {spec!r}"
        )
    names = [t.name for t in terms]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what}: each loss may appear once, got {dupes} more than once")
    if not any(t.weight > 0 for t in terms):
        raise ValueError(f"{what}: at least one term needs a weight > 0")
    return terms


def format_loss(terms: list[LossTerm]) -> str:
    """The canonical string form of parsed terms (for logs and summaries)."""
    out = []
    for t in terms:
        kw = dict(t.kwargs)
        if t.scales > 1:
            kw["scales"] = t.scales
        args = "(" + ",".join(f"{k}={v}" for k, v in kw.items()) + ")" if kw else ""
        out.append(f"{t.name}{args}={t.weight:g}")
    return ",".join(out)


def build_recon(
    terms: list[LossTerm], *, multiscale: int = 1, perceptual_weights: str | None = "imagenet"
):
    """The reconstruction loss module: a ``vk.losses.Weighted`` of the terms (each optionally
    on a pyramid), wrapped in ``vk.losses.MultiScale`` when ``multiscale > 1``.

    ``perceptual_weights`` (``"imagenet"``, ``None`` or a file) goes to ``perceptual`` and
    ``lpips`` terms that do not set ``weights=`` themselves.
    """
    parts = {}
    for t in terms:
        kwargs = dict(t.kwargs)
        if t.name in ("perceptual", "lpips"):
            kwargs.setdefault("weights", perceptual_weights)
        try:
            module = vk.losses.build(t.name, **kwargs)
        except TypeError as err:  # unexpected keyword argument
            raise ValueError(f"--loss term {t.name!r}: {err}") from None
        except vk.losses.WeightsNotFoundError as err:
            raise ValueError(
                f"--loss term {t.name!r}: {err}\nTo run without ImageNet weights (a random "
                "backbone: for tests only) pass --perceptual-weights none; or pass "
                "--perceptual-weights /path/to/vgg16-397923af.pth"
            ) from None
        if t.scales > 1:
            module = vk.losses.MultiScale(module, scales=t.scales)
        parts[t.name] = (module, t.weight)
    recon = vk.losses.Weighted(parts)
    if multiscale > 1:
        recon = vk.losses.MultiScale(recon, scales=multiscale)
    return recon


def random_backbones(terms: list[LossTerm], perceptual_weights: str | None) -> list[str]:
    """The ``perceptual``/``lpips`` terms whose backbone is random (``weights=None`` in the term,
    or ``--perceptual-weights none`` for terms that leave ``weights`` unset)."""
    return [
        t.name
        for t in terms
        if t.name in ("perceptual", "lpips") and t.kwargs.get("weights", perceptual_weights) is None
    ]


def likelihood_of(terms: list[LossTerm], multiscale: int, variance: str) -> tuple[dict | None, str]:
    """Which ``vk.metrics`` likelihood makes the trained objective an ELBO.

    Returns ``(kwargs for vk.metrics.elbo_nll/iwae_nll, note)``; ``kwargs`` is ``None`` when
    the reconstruction loss is not a single likelihood term (then there is no ELBO to report).
    ``{"sigma": "learned"}`` means: read σ from the trained loss module.
    """
    desc = format_loss(terms)
    if len(terms) != 1 or multiscale > 1 or terms[0].scales > 1 or terms[0].weight != 1.0:
        return None, (
            f"the reconstruction loss {desc!r} is not one likelihood with weight 1, so the "
            "objective is not an ELBO; metrics report the training objective instead"
        )
    t = terms[0]
    if t.name not in LIKELIHOOD_TERMS:
        return None, (
            f"{t.name!r} is not a likelihood (bce, gaussian_nll, laplace_nll), so there is no ELBO"
        )
    lik = LIKELIHOOD_TERMS[t.name]
    if lik == "bernoulli":
        return {"likelihood": "bernoulli"}, "Bernoulli likelihood (bce)"
    key = "sigma" if lik == "gaussian" else "scale"
    value = t.kwargs.get(key)
    if variance != "none" and value is None:
        return {"likelihood": lik}, f"{lik} likelihood with the decoder's variance ({variance})"
    if value == "optimal":
        return None, (
            f"{t.name}({key}=optimal) rescales σ every batch, so there is no fixed likelihood to "
            f"report; use {key}=learned or a number to get an ELBO"
        )
    if value == "learned":
        return {"likelihood": lik, key: "learned"}, f"{lik} likelihood with the learned {key}"
    value = 1.0 if value is None else float(value)
    return {"likelihood": lik, key: value}, f"{lik} likelihood with fixed {key}={value:g}"


# -- priors -------------------------------------------------------------------------------------
# ``--prior`` (learned with the VAE) and ``--fit-prior`` (fitted on the latents after training):
#
#     NAME[:ARG[:ARG]][:KEY=VALUE...]     e.g. mog:16, vamp:64, gmm:10, gmm:10:diag, flow,
#                                          diffusion:iterations=2000:sample_steps=25
#
# positional arguments fill the constructor parameters listed below, in order; KEY=VALUE sets
# any other constructor parameter, or (ex-post priors) an option of ``fit`` (``iterations``,
# ``lr``, ``batch_size``, ...). Values are Python literals or bare words, as in ``--loss``.
PRIOR_POSITIONAL = {
    "mog": ("components",),
    "vamp": ("pseudo_inputs",),
    "gmm": ("components", "covariance"),
}
PRIOR_OPTIONS = {
    "--prior": ("learned with the VAE", "mog:16, vamp:64"),
    "--fit-prior": ("fitted after training", "auto, gmm:10, gmm:10:diag, flow, diffusion, edm"),
}
# set by the trainer from the model, never by a spec
_PRIOR_BOUND = ("self", "latent_shape", "data_shape")
_FIT_BOUND = ("self", "latents", "generator", "progress")


@dataclass(frozen=True)
class PriorSpec:
    """A parsed ``--prior``/``--fit-prior``: a registry name, constructor and fit keywords."""

    name: str  # canonical registry name
    kwargs: dict[str, Any]
    fit_kwargs: dict[str, Any]
    text: str

    def build(self) -> vk.priors.Prior:
        """A fresh prior (unbound: the VAE or the fit gives it its latent shape)."""
        if self.is_auto:
            raise ValueError("--fit-prior auto is chosen by vk.priors.select, not built")
        return vk.priors.build(self.name, **self.kwargs)

    @property
    def is_auto(self) -> bool:
        """``--fit-prior auto``: :func:`vaekit.priors.select` chooses the prior."""
        return self.name == "auto"


def _prior_names(option: str) -> list[str]:
    """Registered priors (and aliases) that ``option`` accepts."""
    wanted = "learned_with_vae" if option == "--prior" else "needs_fit"
    out = []
    for name in vk.priors.available(aliases=True):
        cls = vk.priors.get(name)
        if getattr(cls, wanted, False) or (option == "--prior" and cls is vk.priors.StandardNormal):
            out.append(name)
    return out


def _parameters(fn: Any, bound: tuple[str, ...]) -> dict[str, inspect.Parameter]:
    return {
        n: p
        for n, p in inspect.signature(fn).parameters.items()
        if n not in bound and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _check_fit_value(key: str, value: Any, default: Any, what: str) -> Any:
    """A fit option checked now (not after training): counts, rates, the EMA decay."""
    name = f"{what}: {key}"
    if key == "ema":
        return None if value is None else check_number(value, name, at_least=0, below=1)
    if key == "val_fraction":
        return check_number(value, name, at_least=0, below=1)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        return check_int(value, name)
    if isinstance(default, float):
        return check_number(value, name, above=0)
    return value


def parse_prior(spec: object, option: str = "--prior") -> PriorSpec:
    """Parse ``--prior`` (learned with the VAE) or ``--fit-prior`` (fitted after training).

    The prior is built once here, so a bad value fails before any data is loaded; a
    ``ValueError``/``TypeError`` names the option, the spec and what was expected.
    """
    if option not in PRIOR_OPTIONS:
        raise ValueError(f"option must be one of {list(PRIOR_OPTIONS)}, got {option!r}")
    kind, examples = PRIOR_OPTIONS[option]
    if not isinstance(spec, str) or not spec.strip():
        raise TypeError(
            f"{option} must be a non-empty string such as {examples}, got "
            f"{type(spec).__name__} {spec!r}"
        )
    what = f"{option} {spec!r}"
    if option == "--fit-prior" and spec.strip().casefold() == "auto":
        return PriorSpec("auto", {}, {}, "auto")
    head, *items = [part.strip() for part in spec.strip().split(":")]
    allowed = _prior_names(option)
    canonical_allowed = sorted(n for n in allowed if n in vk.priors.available())
    if head.casefold() not in {n.casefold() for n in vk.priors.available(aliases=True)}:
        close = difflib.get_close_matches(head.lower(), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"{what}: unknown prior {head!r}; {option} takes a prior {kind}, one of "
            f"{canonical_allowed}{hint} (e.g. {examples})"
        )
    cls = vk.priors.get(head)
    name = next(n for n in vk.priors.available() if vk.priors.get(n) is cls)
    if head.casefold() not in {n.casefold() for n in allowed}:
        other = "--fit-prior" if option == "--prior" else "--prior"
        raise ValueError(
            f"{what}: {name!r} is {PRIOR_OPTIONS[other][0]}, so it goes to {other} "
            f"(e.g. {other} {spec.strip()}); {option} takes a prior {kind}, one of "
            f"{canonical_allowed}"
        )
    init = _parameters(cls.__init__, _PRIOR_BOUND)
    fit = _parameters(cls.fit, _FIT_BOUND) if getattr(cls, "needs_fit", False) else {}
    positional = PRIOR_POSITIONAL.get(name, ())
    usage = (
        name + "".join(f"[:{p.upper()}" for p in positional) + "]" * len(positional)
        + "[:KEY=VALUE...]"
    )  # fmt: skip
    kwargs: dict[str, Any] = {}
    fit_kwargs: dict[str, Any] = {}
    position = 0
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            if position >= len(positional):
                raise ValueError(f"{what}: too many values; expected {usage}, e.g. {examples}")
            key, text = positional[position], item
            position += 1
        if not key.isidentifier() or not text.strip():
            raise ValueError(f"{what}: expected KEY=VALUE, got {item!r} ({usage})")
        if key not in init and key not in fit:
            valid = sorted({*init, *fit})
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{what}: unknown option {key!r}{hint} (valid: {', '.join(valid)})")
        if key in kwargs or key in fit_kwargs:
            raise ValueError(f"{what}: {key!r} is given twice")
        value = _literal(text)
        if key in init:
            kwargs[key] = value
        else:
            fit_kwargs[key] = _check_fit_value(key, value, fit[key].default, what)
    parsed = PriorSpec(name, kwargs, fit_kwargs, spec.strip())
    try:
        parsed.build()  # the constructor checks its own values now
    except (TypeError, ValueError) as err:
        raise type(err)(f"{what}: {err}") from None
    return parsed


# -- adversarial term ---------------------------------------------------------------------------
# ``--adversarial NAME[:KEY=VALUE,...]``: a discriminator from the ``vk.discriminators`` registry
# (users' own via --import) and a ``vk.losses.Adversarial`` around it. The keys below set the
# adversarial term and the discriminator's optimiser; every other key goes to the
# discriminator's constructor (``in_channels`` comes from the model).
ADVERSARIAL_DEFAULTS: dict[str, Any] = {
    "weight": 0.5,  # adaptive: the adversarial gradient at the decoder's last layer, relative
    "start": 0,  # the first step with the term (steps or epochs: 2000, 0.3ep)
    "loss": "hinge",
    "adaptive": True,
    "r1": 0.0,  # R1 penalty gamma (Mescheder et al. 2018); 0: off
    "max_weight": 1e4,
    "lr": 2e-4,  # the discriminator's AdamW
    "betas": (0.5, 0.9),
    "weight_decay": 0.0,
}
_ADVERSARIAL_ALIASES = {"r1_gamma": "r1"}
ADVERSARIAL_EXAMPLES = "patchgan, patchgan:weight=0.5,start=0.3ep,width=32"


@dataclass(frozen=True)
class AdversarialSpec:
    """A parsed ``--adversarial``: the discriminator (registry name, constructor keywords), the
    adversarial term's options and the discriminator optimiser's."""

    name: str  # canonical registry name
    discriminator_kwargs: dict[str, Any]
    options: dict[str, Any]  # ADVERSARIAL_DEFAULTS, with what the spec sets
    text: str

    def start_step(self, steps_per_epoch: int) -> int:
        """The first step with the adversarial term (0: from the start)."""
        start = self.options["start"]
        return 0 if start == 0 else start.to_steps(steps_per_epoch)

    def build_discriminator(self, in_channels: int) -> torch.nn.Module:
        """A fresh discriminator for images of ``in_channels`` channels."""
        try:
            return vk.discriminators.build(
                self.name, in_channels=in_channels, **self.discriminator_kwargs
            )
        except (TypeError, ValueError) as err:
            raise type(err)(f"--adversarial {self.text!r}: {err}") from None

    def build(
        self, discriminator: torch.nn.Module, *, steps_per_epoch: int, last_layer: torch.Tensor
    ) -> vk.losses.Adversarial:
        """The adversarial term of the training loss (``VAELoss(..., adversarial=...)``)."""
        o = self.options
        return vk.losses.Adversarial(
            discriminator, loss=o["loss"], weight=o["weight"], adaptive=o["adaptive"],
            start=self.start_step(steps_per_epoch), r1_gamma=o["r1"],
            max_weight=o["max_weight"], last_layer=last_layer,
        )  # fmt: skip

    def optimizer(self, params, *, fused: bool = False) -> torch.optim.AdamW:
        """The discriminator's own AdamW (``lr``, ``betas``, ``weight_decay`` of the spec)."""
        o = self.options
        return torch.optim.AdamW(
            params, lr=o["lr"], betas=o["betas"], weight_decay=o["weight_decay"], fused=fused
        )

    def describe(self, steps_per_epoch: int) -> dict[str, Any]:
        """What config.json records: the spec and every resolved setting."""
        o = self.options
        return {
            "spec": self.text, "discriminator": self.name,
            "discriminator_kwargs": self.discriminator_kwargs, "loss": o["loss"],
            "weight": o["weight"], "adaptive": o["adaptive"], "max_weight": o["max_weight"],
            "start": str(o["start"]), "start_step": self.start_step(steps_per_epoch),
            "r1_gamma": o["r1"],
            "optimizer": {"name": "AdamW", "lr": o["lr"], "betas": list(o["betas"]),
                          "weight_decay": o["weight_decay"]},
        }  # fmt: skip


def _adversarial_option(key: str, value: Any, what: str) -> Any:
    """One adversarial/optimiser option, checked now (before any data is loaded)."""
    name = f"{what}: {key}"
    if key == "start":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
            return 0
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return parse_length(value, name)
    if key == "loss":
        if value not in vk.losses.ADVERSARIAL_LOSSES:
            raise ValueError(
                f"{name} must be one of {list(vk.losses.ADVERSARIAL_LOSSES)}, got {value!r}"
            )
        return value
    if key == "adaptive":
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be true or false, got {value!r}")
        return value
    if key == "betas":
        if not (isinstance(value, (tuple, list)) and len(value) == 2):
            raise ValueError(f"{name} must be two numbers like (0.5,0.9), got {value!r}")
        return tuple(check_number(b, f"{name}", at_least=0, below=1) for b in value)
    if key == "lr":
        return check_number(value, name, above=0)
    return check_number(value, name, at_least=0)  # weight, r1, max_weight, weight_decay


def _discriminator_parameters(factory: Any) -> tuple[dict[str, inspect.Parameter], bool]:
    """Constructor parameters a spec may set, and whether the factory takes ``**kwargs``."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}, True  # no signature to check against: let the constructor decide
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params.values())
    return _parameters(factory, ("self", "in_channels")), open_ended


def parse_adversarial(spec: object) -> AdversarialSpec | None:
    """Parse ``--adversarial`` (a string, or a dict ``{"name": ..., KEY: VALUE}`` in a JSON
    config); ``None``/``"none"``/``"off"`` mean no adversarial term.

    Names, keys and the adversarial options are checked here; the discriminator's own values
    when it is built (:meth:`AdversarialSpec.build_discriminator`, before any data is loaded).
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("none", "off")):
        return None
    items: list[tuple[str, Any]] = []
    if isinstance(spec, Mapping):
        raw = dict(spec)
        head = raw.pop("name", None)
        what = f"--adversarial {spec!r}"
        if not isinstance(head, str) or not head.strip():
            raise ValueError(
                f"{what}: a dict needs the discriminator's name, e.g. "
                '{"name": "patchgan", "weight": 0.5, "start": "0.3ep"}'
            )
        items = [(str(k), v) for k, v in raw.items()]
        text = ",".join([head.strip(), *(f"{k}={v}" for k, v in items)])
        text = text.replace(",", ":", 1) if items else text
    elif isinstance(spec, str) and spec.strip():
        text = spec.strip()
        what = f"--adversarial {text!r}"
        head, _, body = text.partition(":")
        try:
            parts = _split_top(body) if body.strip() else []
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None
        for part in parts:
            key, sep, value = part.partition("=")
            if not sep or not key.strip().isidentifier() or not value.strip():
                raise ValueError(
                    f"{what}: expected NAME[:KEY=VALUE,...], got {part.strip()!r} (e.g. "
                    f"{ADVERSARIAL_EXAMPLES})"
                )
            items.append((key.strip(), _literal(value)))
    else:
        raise TypeError(
            f"--adversarial must be a discriminator name with options, such as "
            f"{ADVERSARIAL_EXAMPLES}, got {type(spec).__name__} {spec!r}"
        )
    try:
        factory = vk.discriminators.get(head.strip())  # unknown: the registry lists the names
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    name = next(n for n in vk.discriminators.available() if vk.discriminators.get(n) is factory)
    params, open_ended = _discriminator_parameters(factory)
    options = dict(ADVERSARIAL_DEFAULTS)
    given: set[str] = set()
    disc_kwargs: dict[str, Any] = {}
    for key, value in items:
        key = _ADVERSARIAL_ALIASES.get(key, key)
        if key in given:
            raise ValueError(f"{what}: {key!r} is given twice")
        given.add(key)
        if key in ADVERSARIAL_DEFAULTS:
            options[key] = _adversarial_option(key, value, what)
        elif key == "in_channels":
            raise ValueError(f"{what}: in_channels is set from the model's channels; leave it out")
        elif key in params or open_ended:
            disc_kwargs[key] = value
        else:
            valid = sorted({*ADVERSARIAL_DEFAULTS, *params})
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"{what}: unknown option {key!r}{hint} (adversarial term and optimiser: "
                f"{', '.join(ADVERSARIAL_DEFAULTS)}; {name}: {', '.join(params) or 'none'})"
            )
    return AdversarialSpec(name, disc_kwargs, options, text)


def check_discriminator(
    disc: torch.nn.Module, spec: AdversarialSpec, in_channels: int, image_size: int,
    device: torch.device,
) -> None:  # fmt: skip
    """Run ``disc`` once on a blank image of the run's size, so a discriminator that cannot
    judge it (a PatchGAN with too many layers for small images) fails before training."""
    what = f"--adversarial {spec.text!r}"
    min_size = getattr(disc, "min_size", None)
    if isinstance(min_size, int) and image_size < min_size:
        layers = getattr(disc, "layers", None)
        fewer = (
            f"; use fewer layers (layers={layers - 1} needs {min_size // 2})"
            if isinstance(layers, int) and layers > 1 else ""
        )  # fmt: skip
        raise ValueError(
            f"{what}: the {spec.name} discriminator needs images of at least {min_size}x"
            f"{min_size} pixels, the model's are {image_size}x{image_size}{fewer}"
        )
    x = torch.zeros(1, in_channels, image_size, image_size, device=device)
    modes = [(m, m.training) for m in disc.modules()]
    disc.eval()  # no batch statistics or power iterations change
    try:
        with torch.no_grad():
            logits = disc(x)
    except (ValueError, TypeError) as err:
        raise type(err)(f"{what}: {err}") from None
    except RuntimeError as err:  # e.g. a conv kernel larger than its input
        raise ValueError(
            f"{what}: the discriminator fails on a {tuple(x.shape)} batch: {err}"
        ) from None
    finally:
        for m, mode in modes:
            m.training = mode
    if not (
        isinstance(logits, torch.Tensor) and logits.is_floating_point() and logits.ndim >= 1
        and logits.shape[0] == 1
    ):  # fmt: skip
        shown = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(
            f"{what}: the discriminator must return logits with the batch first (B, ...), got "
            f"{shown} for a batch of 1"
        )
