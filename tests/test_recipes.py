"""examples/recipes: one per preset, each reproducing its system's loss and β schedule, a few
variants of them (a preset's recipe plus options, e.g. a fitted prior), and each running
through examples/train.py for two steps on synthetic images."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from trainer_utils import RECIPES, ROOT, fake_fashion_mnist, trainer, write_images

import vaekit as vk
from vaekit import schedules as S

train = trainer()
from trainlib import options, specs  # noqa: E402

RECIPE_FILES = sorted(RECIPES.glob("*.json"))
# variant -> (the preset recipe it extends, the options it adds)
SHARP = "patchgan:weight=0.5,start=0.3ep,width=32"
VARIANTS = {
    "fmnist32-gmm": ("fmnist32", {"fit_prior": "gmm:10"}),
    "fmnist32-sharp": ("fmnist32", {"adversarial": SHARP}),
    "fmnist32-spatial-sharp": ("fmnist32-spatial", {"adversarial": SHARP}),
}


def two_phase(spe: int) -> S.Schedule:
    return S.Sequence(
        [(50 * spe, S.Constant(0.0)), (50 * spe, S.Linear(0.0, 0.001, steps=50 * spe))]
    )


# what each described system uses: reconstruction loss, beta(steps per epoch), free bits
SYSTEMS = {
    "fmnist32": ("bce=1", lambda spe: S.Constant(0.8), 0.0),
    "fmnist32-spatial": ("l1=1,ssim=0.2", lambda spe: S.Constant(0.05), 0.0),
    "fmnist28-spatial": ("l1=1,ssim=0.2", lambda spe: S.Constant(0.05), 0.0),
    "cifar32": ("bce=1", lambda spe: S.Linear(0.0, 0.1, steps=15 * spe), 0.0),
    "celeba64": ("bce=1", lambda spe: S.Linear(0.0, 0.9, steps=2 * spe), 0.0),
    "celeba64-bottleneck": (
        "gaussian_nll(sigma=learned,init_sigma=0.1)=1",
        lambda spe: S.Linear(0.0, 1.0, steps=5 * spe),
        0.0,
    ),
    "celeba64-wide": (
        "mse=0.8,l1=0.2,perceptual=0.1",
        lambda spe: S.Linear(0.0, 1.0, steps=2 * spe),
        0.0,
    ),
    "xray128-spatial": ("l1=1,ssim=0.5,perceptual=0.1", two_phase, 0.0),
    "xray256-spatial": (
        "l1(scales=3)=1,ssim(scales=3)=1,fft=0.1",
        lambda spe: S.Linear(0.0, 0.5, steps=40 * spe),
        0.05,
    ),
}
SYSTEMS |= {variant: SYSTEMS[base] for variant, (base, _) in VARIANTS.items()}
# synthetic data: (PIL mode, (w, h) on disk, extra options); sizes other than the preset's
# exercise centre-crop + resize; xray256 trains at 64 px (its attention level still exists)
DATA = {
    "cifar32": ("RGB", (32, 32), []),
    "celeba64": ("RGB", (70, 80), []),
    "celeba64-bottleneck": ("RGB", (64, 64), []),
    "celeba64-wide": ("RGB", (64, 72), []),
    "xray128-spatial": ("L", (150, 130), []),
    "xray256-spatial": ("RGB", (90, 80), ["--image-size", "64"]),  # RGB-saved X-rays -> 1 ch
}
SLOW = {"celeba64-wide", "xray128-spatial", "xray256-spatial"}  # 100 M parameters; 128-256 px


def _options(name: str) -> dict:
    recipe = json.loads((RECIPES / f"{name}.json").read_text())
    return {k: v for k, v in recipe.items() if not k.startswith("_")}


def test_one_recipe_per_preset_and_all_documented():
    names = [p.stem for p in RECIPE_FILES]
    assert sorted(set(names) - set(VARIANTS)) == sorted(vk.presets.available())
    assert sorted(names) == sorted(SYSTEMS)
    docs = (ROOT / "docs" / "recipes.md").read_text()
    readme = (RECIPES / "README.md").read_text()
    for name in names:
        command = f"python examples/train.py --config examples/recipes/{name}.json"
        assert command in docs and command in readme, name
        recipe = json.loads((RECIPES / f"{name}.json").read_text())
        base, extra = VARIANTS.get(name, (name, {}))
        assert recipe["preset"] == base and recipe["_about"].startswith(name)
        assert _options(name) == _options(base) | extra  # a variant only adds its options
        args = options.parse(["--config", str(RECIPES / f"{name}.json"), "--data", "x"])
        loss, _, free_bits = SYSTEMS[name]
        assert args.free_bits == free_bits
        assert specs.format_loss(args.loss_terms) == loss


@pytest.mark.parametrize(
    "recipe",
    [pytest.param(p, marks=pytest.mark.slow) if p.stem in SLOW else p for p in RECIPE_FILES],
    ids=lambda p: p.stem,
)
def test_recipe_runs_two_steps(recipe, tmp_path):
    name = recipe.stem
    preset = VARIANTS.get(name, (name,))[0]
    argv = ["--config", str(recipe), "--max-steps", "2", "--batch-size", "2", "--log-every", "1",
            "--eval-every", "2", "--perceptual-weights", "none", "--workers", "0",
            "--val-fraction", "0.25", "--iwae-images", "4", "--iwae-k", "2",
            "--out", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    cfg = vk.presets.config(preset)
    if preset.startswith(("fmnist32", "fmnist28")):
        argv += ["--data-root", str(fake_fashion_mnist(tmp_path / "fmnist")), "--fid-samples", "16"]
    else:
        mode, size, extra = DATA[name]
        folder = write_images(tmp_path / "images", 8, size, mode)
        argv += ["--data", str(folder), *extra]
        if "--image-size" in extra:
            cfg = cfg.replace(image_size=int(extra[1]))
    run = train.main(argv)

    config = json.loads((run / "config.json").read_text())
    loss, schedule, free_bits = SYSTEMS[name]
    spe = config["steps_per_epoch"]
    assert config["loss"] == loss
    assert S.from_dict(config["beta_schedule"]) == schedule(spe)
    assert config["args"]["free_bits"] == free_bits
    assert config["args"]["perceptual_weights"] == "none"  # the command line won
    assert config["model"] == cfg.to_dict()

    with open(run / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    first = next(r for r in rows if r["split"] == "train")
    assert float(first["beta"]) == schedule(spe)(0)
    for term in [t.name for t in specs.parse_loss(loss)]:  # every term of the recipe is logged
        assert math.isfinite(float(first[term])), term

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["run"]["steps"] == 2 and math.isfinite(metrics["psnr"])
    if preset in ("fmnist32", "cifar32", "celeba64", "celeba64-bottleneck"):  # likelihoods
        assert math.isfinite(metrics["neg_elbo_nats_per_dim"])
    else:
        assert math.isfinite(metrics["objective"]["total"])
    if name == "celeba64-bottleneck":  # the learned sigma was trained and used
        sigma = metrics["likelihood_params"]["sigma"]
        assert 0 < sigma < 1 and sigma != pytest.approx(0.1, abs=1e-9)
        # a continuous likelihood on k/255 pixels: discretised with bins 1/255 wide
        assert metrics["neg_elbo_bits_per_dim"] == pytest.approx(
            metrics["neg_elbo_nats_per_dim"] / math.log(2) + math.log2(255)
        )
    vae = vk.VAE.load(run / "best.safetensors", expected_config=cfg)
    x = torch.rand(1, cfg.in_channels, *cfg.image_size)
    assert vae.eval()(x).recon.shape == x.shape
    adversarial = VARIANTS.get(name, (name, {}))[1].get("adversarial")
    if adversarial is not None:  # the discriminator trained from its start step on
        assert config["adversarial"]["discriminator"] == "patchgan"
        start = specs.parse_length("0.3ep", "start").to_steps(spe)
        assert config["adversarial"]["start_step"] == start
        assert {"adv", "adv_weight", "d_loss", "logits_real", "logits_fake"} <= set(first)
    fit = VARIANTS.get(name, (name, {}))[1].get("fit_prior")
    if fit is not None:  # best.safetensors samples from the fitted prior; both are reported
        assert metrics["prior"]["fitted"]["spec"] == fit
        assert vk.priors.name_of(vae.prior) == fit.split(":")[0] and vae.prior.is_fitted
        assert (run / f"samples-{fit.split(':')[0]}.png").is_file()
        assert len(metrics["fid"]["fd_samples_by_prior"]) == 2
