"""The trainer's command line, ``--config`` JSON files and ``--resume`` merging.

Precedence, lowest first: built-in defaults < ``--config FILE.json`` < the ``config.json`` of
the run being resumed (``--resume DIR``) < options given on the command line. A config file
uses the long option names with ``_`` for ``-`` (``"batch_size": 128``); keys starting with
``_`` are comments. ``loss``, ``beta`` and ``adversarial`` may also be JSON objects (see
:mod:`trainlib.specs`).
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
from pathlib import Path
from typing import Any

from vaekit._validation import check_int, check_number

from . import runtime, specs

NOT_IN_CONFIG = ("config", "resume")  # options a config file cannot set
DICT_OK = ("loss", "beta", "adversarial")  # options whose config value may be a JSON object


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:  # "(default: None)" says nothing
            return action.help
        return super()._get_help_string(action)


def _bool_or_auto(text: str) -> bool | None:
    return None if text == "auto" else {"on": True, "off": False}[text]


def build_parser(description: str = "", *, with_defaults: bool = True) -> argparse.ArgumentParser:
    """The trainer's parser; ``with_defaults=False`` gives one that returns only given options."""
    p = argparse.ArgumentParser(
        prog="train.py",
        description=description,
        formatter_class=_Formatter,
        argument_default=None if with_defaults else argparse.SUPPRESS,
    )

    def add(group, *flags, default=None, **kw):
        group.add_argument(*flags, default=default if with_defaults else argparse.SUPPRESS, **kw)

    g = p.add_argument_group("data")
    add(
        g,
        "--data",
        help="'fashion-mnist' or a folder of images (searched recursively for "
        "png/jpg/jpeg/bmp/tif)",
    )
    add(
        g,
        "--data-root",
        help="folder with the Fashion-MNIST IDX .gz files (default: "
        "/usr/share/datasets/fashion-mnist, or $VAEKIT_FASHION_MNIST)",
    )
    add(
        g,
        "--image-size",
        type=int,
        help="image side in pixels; overrides the model config. "
        "Folders: centre-crop + resize to it; Fashion-MNIST: 28 (native) or pad to it (>= 28)",
    )
    add(
        g,
        "--channels",
        type=int,
        choices=(1, 3),
        help="convert folder images to 1 (grayscale) "
        "or 3 (RGB) channels; default: the model's in_channels, and images that differ are an "
        "error",
    )
    add(
        g,
        "--hflip",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="random horizontal flips of training images (not for X-rays: it swaps left/right)",
    )
    add(
        g,
        "--clahe",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="contrast-limited adaptive histogram equalisation (skimage), e.g. for X-rays",
    )
    add(
        g,
        "--val-fraction",
        type=float,
        default=0.1,
        help="held-out validation share of the "
        "training images (seeded); Fashion-MNIST keeps its test split for the final metrics",
    )
    add(g, "--limit", type=int, help="use only the first N images (before the validation split)")
    add(
        g,
        "--eval-limit",
        type=int,
        help="use only the first N test (or validation) images for the final metrics",
    )
    add(
        g,
        "--workers",
        type=int,
        help="DataLoader worker processes (default: 0 for "
        "Fashion-MNIST, which sits in memory; up to 4 for image folders)",
    )

    g = p.add_argument_group("model (one of)")
    add(g, "--preset", help="a vk.presets name, e.g. fmnist32, celeba64, xray256-spatial")
    add(g, "--model-config", help="a JSON file in VAEConfig.to_dict() format")

    g = p.add_argument_group("objective")
    add(
        g,
        "--loss",
        default="bce",
        help="reconstruction terms NAME[(KEY=VALUE,...)][=WEIGHT],"
        " e.g. 'l1=1,ssim=0.5,fft=0.1' or 'gaussian_nll(sigma=0.1)'",
    )
    add(
        g,
        "--multiscale",
        type=int,
        default=1,
        help="evaluate the whole reconstruction loss on "
        "an N-level image pyramid (vk.losses.MultiScale)",
    )
    add(
        g,
        "--free-bits",
        type=float,
        default=0.0,
        help="free bits λ in nats per latent dim (Kingma et al. 2016)",
    )
    add(
        g,
        "--beta",
        default="1",
        help="KL weight schedule: 0.8, linear:0->0.5@40ep, "
        "cosine:0->1@10000,delay=2000, cyclical:0->1@100ep,cycles=4, two-phase:0@50ep->0.001@50ep",
    )
    add(
        g,
        "--perceptual-weights",
        default="imagenet",
        help="VGG/LPIPS backbone for perceptual "
        "terms: imagenet (cached torchvision file), none (random: tests only) or a .pth path",
    )

    g = p.add_argument_group("adversarial term (sharper images)")
    add(
        g,
        "--adversarial",
        metavar="SPEC",
        help="a discriminator (vk.discriminators: patchgan, or your own via --import) and an "
        "adversarial term with its own optimiser: NAME[:KEY=VALUE,...], e.g. patchgan or "
        "'patchgan:weight=0.5,start=0.3ep,width=32'. Term: weight=0.5 (adaptive: relative to "
        "the reconstruction's gradient at the decoder's last layer), start=0 (steps or ep), "
        "loss=hinge (non_saturating, least_squares), adaptive=true, r1=0 (R1 gamma), "
        "max_weight=1e4; discriminator optimiser: AdamW lr=2e-4, betas=(0.5,0.9), "
        "weight_decay=0; other keys go to the discriminator (patchgan: width=64, layers=3, "
        "norm=batch, act=leaky_relu, spectral_norm=false). Default: none",
    )

    g = p.add_argument_group("prior p(z)")
    add(
        g,
        "--prior",
        help="a prior learned with the VAE instead of N(0, I): mog:COMPONENTS (a mixture of "
        "Gaussians) or vamp:PSEUDO_INPUTS (VampPrior), e.g. mog:16, vamp:64",
    )
    add(
        g,
        "--fit-prior",
        help="after training, fit a prior on the posterior means of the training images and "
        "save it into best.safetensors: auto (vk.priors.select chooses by held-out "
        "log-likelihood), gmm:10, gmm:10:diag, flow, diffusion; fit options as KEY=VALUE, "
        "e.g. flow:iterations=500 (samples and metrics then cover both priors)",
    )

    g = p.add_argument_group("optimisation")
    add(g, "--batch-size", type=int, default=64, help="images per step and process")
    add(g, "--lr", type=float, default=1e-3, help="AdamW learning rate")
    add(g, "--weight-decay", type=float, default=1e-4, help="AdamW weight decay")
    add(g, "--clip-grad", type=float, default=5.0, help="clip the gradient norm (0: off)")
    add(
        g,
        "--lr-schedule",
        choices=("none", "cosine", "plateau"),
        default="none",
        help="cosine decay to 0 over the run (needs --epochs or --max-steps) or halve on a "
        "validation plateau",
    )

    g = p.add_argument_group("length and evaluation")
    add(g, "--epochs", type=int, help="stop after this many epochs")
    add(g, "--max-steps", type=int, help="stop after this many optimiser steps")
    add(
        g,
        "--minutes",
        type=float,
        help="stop after this much wall-clock training time (the final metrics come after it)",
    )
    add(
        g,
        "--patience",
        type=int,
        default=0,
        help="early stopping: stop after N evaluations without a better validation total (0: off)",
    )
    add(g, "--eval-every", default="1ep", help="validation interval: steps (500) or epochs (1ep)")
    add(
        g, "--image-every", type=int, default=5, help="pictures every N epochs (0: only at the end)"
    )
    add(
        g,
        "--log-every",
        type=int,
        default=50,
        help="a history.csv train row (the mean since the last row) at least every N steps; "
        "also at step 1, at every evaluation and at the last step",
    )
    add(
        g,
        "--log-seconds",
        type=float,
        default=30.0,
        help="also a train row, and a log line when there is no progress bar, once this many "
        "seconds of wall-clock time have passed since the last one (0: rows at fixed steps only)",
    )

    g = p.add_argument_group("final metrics")
    add(
        g,
        "--final-metrics",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="compute metrics.json and summary.md at the end",
    )
    add(
        g,
        "--fid-samples",
        type=int,
        default=5000,
        help="Fashion-MNIST: images per side for the classifier-feature Fréchet distances (0: off)",
    )
    add(
        g,
        "--fid-train-images",
        type=int,
        help="train the FID classifier on a random subset "
        "of N training images (default: all; it is cached, so this matters once)",
    )
    add(g, "--iwae-k", type=int, default=16, help="importance samples of the IWAE bound")
    add(g, "--iwae-images", type=int, default=500, help="images for the IWAE bound")
    add(
        g,
        "--cache-dir",
        help="where the FID classifier is cached (default: $VAEKIT_CACHE or ~/.cache/vaekit)",
    )

    g = p.add_argument_group("runtime")
    add(g, "--seed", type=int, default=0, help="seed of weights, data order, noise")
    add(g, "--device", choices=("auto", "cpu", "cuda"), default="auto")
    add(
        g,
        "--amp",
        choices=("auto", "bf16", "fp16", "none"),
        default="auto",
        help="autocast dtype; auto: bf16 on CUDA (fp16 where bf16 is missing), none on CPU",
    )
    add(
        g,
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="torch.compile the model",
    )
    add(
        g,
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="channels_last memory layout (faster convolutions on CPU and tensor cores)",
    )
    add(g, "--threads", type=int, help="torch CPU threads per process (default: torch's choice)")
    add(
        g,
        "--import",
        dest="imports",
        metavar="MODULES",
        help="comma-separated module names or .py files imported before the model is built "
        "or loaded, e.g. the file that registers your own block with vk.blocks.register",
    )
    add(
        g,
        "--progress",
        type=_bool_or_auto,
        default="auto",
        metavar="{auto,on,off}",
        help="tqdm progress bar (auto: only on a terminal)",
    )

    g = p.add_argument_group("output")
    add(g, "--out", default="runs", help="parent folder of the run folders")
    add(g, "--name", help="run name (default: the preset or model-config name)")
    add(
        g,
        "--tensorboard",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also write TensorBoard events into the run folder (`tensorboard --logdir runs`): "
        "every loss term, beta and lr with each train row, validation terms, val PSNR/SSIM, "
        "active units, KL per latent dimension (histogram) and image grids (reconstructions, "
        "samples, a traversal), at least --log-seconds apart and at the last step; the same "
        "tags as examples/lightning. Needs the tensorboard package (the lightning extra)",
    )
    add(g, "--config", help="JSON file of options (keys: long option names with _), e.g. a recipe")
    add(g, "--resume", help="a run folder: continue it from last.safetensors + trainer_state.pt")
    return p


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.dest != "help"}


def _convert(action: argparse.Action, key: str, value: Any, source: str) -> Any:
    """A config-file value through the same type/choices checks as the command line."""
    if value is None:
        return None
    where = f"{source}: {key}"
    if isinstance(action, argparse.BooleanOptionalAction) or action.nargs == 0:
        if not isinstance(value, bool):
            raise TypeError(f"{where} must be true or false, got {value!r}")
        return value
    if key in DICT_OK and isinstance(value, dict):
        return value
    kind = action.type
    if isinstance(value, str) and kind not in (None, str):
        try:
            value = kind(value)
        except (ValueError, KeyError, TypeError):
            raise ValueError(
                f"{where} must be {getattr(kind, '__name__', kind)}, got {value!r}"
            ) from None
    elif kind is int:
        value = check_int(value, where, minimum=None)  # bounds: validate(), after merging
    elif kind is float:
        value = check_number(value, where, finite=False)
    elif kind in (None, str) and not isinstance(value, str):
        raise TypeError(f"{where} must be a string, got {type(value).__name__} {value!r}")
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"{where} must be one of {list(action.choices)}, got {value!r}")
    return value


def read_config_file(path: str | Path, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Options from a JSON file, checked like command-line values."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {str(path)!r}: no such file")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"--config {str(path)!r} is not valid JSON: {err}") from None
    if not isinstance(raw, dict):
        raise ValueError(
            f"--config {str(path)!r} must hold a JSON object, got {type(raw).__name__}"
        )
    return check_options(raw, parser, f"--config {path.name}")


def check_options(raw: dict[str, Any], parser: argparse.ArgumentParser, source: str) -> dict:
    actions = _actions(parser)
    out = {}
    for key, value in raw.items():
        if key.startswith("_"):
            continue  # a comment
        dest = key.replace("-", "_")
        if dest not in actions or dest in NOT_IN_CONFIG:
            valid = sorted(set(actions) - set(NOT_IN_CONFIG))
            close = difflib.get_close_matches(dest, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{source}: unknown option {key!r}{hint} (valid: {', '.join(valid)})")
        out[dest] = _convert(actions[dest], dest, value, source)
    return out


def parse(argv: list[str] | None, description: str = "") -> argparse.Namespace:
    """Resolve the options: defaults < --config < the resumed run < the command line; import
    the ``--import`` modules (user blocks, losses, priors, discriminators register there)."""
    parser = build_parser(description)
    full = vars(parser.parse_args(argv))  # also handles --help and bad flags
    explicit = vars(build_parser(description, with_defaults=False).parse_args(argv))
    merged = {key: value for key, value in full.items() if key not in explicit}  # defaults
    if explicit.get("config"):
        merged.update(read_config_file(explicit["config"], parser))
    if explicit.get("resume"):
        run = Path(explicit["resume"])
        cfg = run / "config.json"
        if not cfg.is_file():
            raise FileNotFoundError(
                f"--resume {str(run)!r}: no config.json there; expected a run folder written by "
                "train.py (with config.json, last.safetensors and trainer_state.pt)"
            )
        saved = json.loads(cfg.read_text())["args"]
        merged.update(check_options(saved, parser, f"{cfg}"))
    merged.update(explicit)
    args = argparse.Namespace(**merged)
    # --import first: the specs name blocks, losses, priors and discriminators that user code
    # registers
    runtime.import_user_code(args.imports)
    validate(args)
    return args


def validate(args: argparse.Namespace) -> None:
    """Checks that need more than one option, or values argparse cannot check."""
    if args.data is None:
        raise ValueError(
            "no data given: pass --data fashion-mnist or --data PATH (a folder of images), or "
            "a recipe with --config examples/recipes/NAME.json"
        )
    if (args.preset is None) == (args.model_config is None):
        raise ValueError(
            "give exactly one of --preset NAME or --model-config FILE.json, got "
            + ("both" if args.preset else "neither")
        )
    positive = {
        "batch_size": int,
        "epochs": int,
        "max_steps": int,
        "minutes": float,
        "log_every": int,
        "iwae_k": int,
        "iwae_images": int,
        "multiscale": int,
        "limit": int,
        "eval_limit": int,
        "threads": int,
        "image_size": int,
        "fid_train_images": int,
    }
    for key in positive:
        value = getattr(args, key)
        if value is not None and not value > 0:
            raise ValueError(f"--{key.replace('_', '-')} must be > 0, got {value}")
    for key in ("patience", "image_every", "fid_samples", "workers"):
        value = getattr(args, key)
        if value is not None and value < 0:
            raise ValueError(f"--{key.replace('_', '-')} must be >= 0, got {value}")
    for key in ("lr", "weight_decay", "clip_grad", "free_bits", "log_seconds"):
        value = getattr(args, key)
        if not (math.isfinite(value) and value >= (1e-300 if key == "lr" else 0)):
            raise ValueError(
                f"--{key.replace('_', '-')} must be a finite number "
                f"{'> 0' if key == 'lr' else '>= 0'}, got {value}"
            )
    if not 0 < args.val_fraction < 1:
        raise ValueError(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
    if args.lr_schedule == "cosine" and args.epochs is None and args.max_steps is None:
        raise ValueError(
            "--lr-schedule cosine needs the run's length: give --epochs or --max-steps "
            "(a --minutes budget alone does not say how many steps there will be)"
        )
    # the two mini-languages: fail now, before any data is loaded
    args.loss_terms = specs.parse_loss(args.loss)
    args.beta_plan = specs.parse_beta(args.beta)
    args.eval_every_length = specs.parse_length(args.eval_every, "--eval-every")
    args.prior_spec = None if args.prior is None else specs.parse_prior(args.prior, "--prior")
    args.fit_prior_spec = (
        None if args.fit_prior is None else specs.parse_prior(args.fit_prior, "--fit-prior")
    )
    args.adversarial_spec = specs.parse_adversarial(args.adversarial)
    if args.perceptual_weights in ("none", "None", "random"):
        args.perceptual_weights = None


def to_json(args: argparse.Namespace) -> dict[str, Any]:
    """The options as written to config.json (only what the command line can express)."""
    parser = build_parser()
    values = vars(args)
    out = {k: values[k] for k in _actions(parser) if k not in NOT_IN_CONFIG}  # parser order
    if out.get("perceptual_weights") is None:
        out["perceptual_weights"] = "none"
    if out.get("progress") is None:
        out["progress"] = "auto"
    elif isinstance(out.get("progress"), bool):
        out["progress"] = "on" if out["progress"] else "off"
    return out
