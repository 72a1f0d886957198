"""Train a vaekit VAE with Lightning, configured by Hydra, watched in TensorBoard.

    python examples/lightning/train.py                                  # fmnist32 on Fashion-MNIST
    python examples/lightning/train.py model=fmnist32 loss.beta=0.8
    python examples/lightning/train.py -m schedule=constant,cyclical    # a sweep: one run each
    python examples/lightning/train.py trainer.gradient_clip_val=0.1 trainer.precision=bf16-mixed
    python examples/lightning/train.py trainer.strategy=ddp trainer.devices=2 trainer.accelerator=cpu
    python examples/lightning/train.py data=folder data.root=~/celeba model=celeba64 loss=l1_ssim
    python examples/lightning/train.py fit_prior='{name: gmm, components: 10}'
    tensorboard --logdir tb_logs
    python -m vaekit.explore runs/<run folder>                          # or a sweep's folder

Configs live in conf/ (groups data, model, loss, schedule, trainer; ``--help`` lists them,
``--cfg job`` prints the composed one). Each run writes runs/<YYYYmmdd-HHMMSS>-<name>/ (a
sweep: runs/<stamp>-sweep/<job>-<name>/): config.json, history.csv, best.safetensors and
last.safetensors (``vae.save``, what the explorer opens), metrics.json and Hydra's .hydra/;
TensorBoard events go to tb_logs/<the same name>/. See docs/lightning.md.

Needs the ``lightning`` extra: ``pip install -e ".[lightning]"`` (lightning, hydra-core,
tensorboard).
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONF = HERE / "conf"
EXTRA = ("lightning", "hydra", "tensorboard")  # modules of the lightning extra's packages


def fail(message: str, status: int = 2) -> None:
    """One line on stderr, then exit with ``status``."""
    print(f"train.py: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    sys.exit(status)


def check_extra() -> None:
    """The lightning extra's packages are installed, else one line saying how to get them."""
    missing = [name for name in EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        fail(
            f"examples/lightning needs the lightning extra ({', '.join(missing)} missing): "
            'pip install -e ".[lightning]" (from the vaekit clone), or pip install lightning '
            "hydra-core tensorboard"
        )


check_extra()
sys.path.insert(0, str(HERE))  # for vae_module, data_module, run_folder

import hydra  # noqa: E402  (Lightning and torch come later, in training.py)
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from omegaconf.errors import OmegaConfBaseException  # noqa: E402

# what a user can fix: one line, no traceback (VAEKIT_DEBUG=1 shows it)
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, KeyError, OmegaConfBaseException)


# -- checking the command line before Hydra ------------------------------------------------------
def _groups() -> dict[str, list[str]]:
    return {
        d.name: sorted(p.stem for p in d.glob("*.yaml"))
        for d in sorted(CONF.iterdir())
        if d.is_dir()
    }


def _explain(override: str, err: Exception, compose) -> str:
    """A Hydra composition error as one line that says what to write instead."""
    text = " ".join(str(err).split())
    key, _, value = override.lstrip("+~").partition("=")
    groups = _groups()
    if key in groups and "Could not find" in text:
        close = difflib.get_close_matches(value, groups[key], n=1)
        hint = f"; did you mean {key}={close[0]}?" if close else ""
        return (
            f"{override}: no config {value!r} in group {key!r}{hint} (choose from "
            f"{', '.join(groups[key])}; files in examples/lightning/conf/{key}/)"
        )
    if "not in struct" in text or "Could not override" in text or "Key '" in text:
        parent, _, leaf = key.rpartition(".")
        known = _keys_at(parent, compose)
        if known is not None and leaf not in known:
            close = difflib.get_close_matches(leaf, known, n=1)
            hint = f"; did you mean {(parent + '.' if parent else '') + close[0]}?" if close else ""
            where = f"in {parent}" if parent else "at the top level"
            return (
                f"{override}: no key {leaf!r} {where}{hint} (keys: {', '.join(known)}; a new "
                f"key needs a leading +, e.g. +{key}=...)"
            )
    return f"{override}: {text} (python examples/lightning/train.py --cfg job prints the config)"


def _keys_at(path: str, compose) -> list[str] | None:
    """The keys of the default config at ``path`` (dotted), or None."""
    cfg = compose("config")
    node = OmegaConf.select(cfg, path) if path else cfg
    return sorted(node.keys()) if isinstance(node, DictConfig) else None


def check_overrides(argv: list[str]) -> None:
    """Compose the config with the command line's overrides (each value of a sweep in turn),
    so a mistyped group, option or key is one line naming what exists, not Hydra's page."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = [a for a in argv if not a.startswith("-") and "=" in a]
    overrides = [o for o in overrides if not o.lstrip("+~").startswith("hydra.")]
    if not overrides or any(a in ("--help", "-h", "--hydra-help") for a in argv):
        return
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
    except HydraException as err:
        fail(f"cannot read the overrides {' '.join(overrides)}: {err}")
    firsts: list[str] = []
    choices: list[str] = []  # the other values of sweeps, tried one at a time
    for text, o in zip(overrides, parsed):
        if o.is_sweep_override():
            try:
                values = list(o.sweep_string_iterator())
            except Exception:  # a sweep kind without a finite list (intervals): left to Hydra
                values = []
            if not values:
                continue
            prefix = text.split("=", 1)[0]
            firsts.append(f"{prefix}={values[0]}")
            choices += [f"{prefix}={v}" for v in values[1:]]
        else:
            firsts.append(text)
    with initialize_config_dir(str(CONF), version_base="1.3"):
        for trial in [None, *choices]:
            given = firsts if trial is None else [
                trial if f.split("=", 1)[0] == trial.split("=", 1)[0] else f for f in firsts
            ]  # fmt: skip
            try:
                compose("config", overrides=given)
            except (HydraException, OmegaConfBaseException) as err:
                fail(_explain(trial or _culprit(given, err), err, compose))


def _culprit(overrides: list[str], err: Exception) -> str:
    """The override that Hydra's message is about (else all of them)."""
    text = str(err)
    split = [(o, *o.lstrip("+~").partition("=")[::2]) for o in overrides]
    for test in (
        lambda key, value: f"{key}/{value}" in text,  # a group's missing option
        lambda key, value: f"'{key}'" in text,  # a key, by its full name
        lambda key, value: f"'{key.split('.')[-1]}'" in text and "." in key,
    ):
        for o, key, value in split:
            if test(key, value):
                return o
    return " ".join(overrides)


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    try:
        from training import train  # Lightning, torch and vaekit: only once the config is good

        return train(cfg)
    except USER_ERRORS as err:
        if os.environ.get("VAEKIT_DEBUG"):
            raise
        fail(str(err))


if __name__ == "__main__":
    check_overrides(sys.argv[1:])
    main()
