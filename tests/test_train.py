"""examples/train.py: option mini-languages, data checks, outputs, exact resume, DDP, errors.

Most runs happen in this process (``main(argv)``) on fake Fashion-MNIST IDX files or a few
PNGs in tmp_path; the DDP run and the command-line error path use subprocesses.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch
from trainer_utils import TRAIN, fake_fashion_mnist, trainer, write_images

import vaekit as vk
from vaekit import schedules as S

train = trainer()  # examples/train.py; also puts examples/ on sys.path for trainlib
from trainlib import checkpoint, evaluate, options, runtime, specs  # noqa: E402


@pytest.fixture
def fmnist(tmp_path):
    return fake_fashion_mnist(tmp_path / "fmnist")


def run_args(tmp_path, *extra: str, root=None) -> list[str]:
    base = ["--out", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"),
            "--batch-size", "16", "--log-every", "1", "--iwae-images", "4", "--iwae-k", "2",
            "--fid-samples", "24"]  # fmt: skip
    if root is not None:
        base += ["--preset", "fmnist32", "--data", "fashion-mnist", "--data-root", str(root)]
    return base + list(extra)


def read_history(run) -> list[dict]:
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


# -- the mini-languages -----------------------------------------------------------------------
def test_lengths_are_steps_or_epochs():
    assert specs.parse_length("40ep", "x").to_steps(10) == 400
    assert specs.parse_length("2.5ep", "x").to_steps(10) == 25
    assert specs.parse_length("1000", "x").to_steps(10) == 1000
    assert specs.parse_length(7, "x").to_steps(3) == 7
    for bad in ("40 eps", "1.5", "0", "-3", "ep"):
        with pytest.raises(ValueError, match=r"x"):
            specs.parse_length(bad, "x")
    with pytest.raises(TypeError, match="length like 1000"):
        specs.parse_length(1.5, "x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.8", S.Constant(0.8)),
        ("constant:0.25", S.Constant(0.25)),
        ("linear:0->0.5@40ep", S.Linear(0.0, 0.5, steps=400)),
        ("linear:0->1@100,delay=2ep", S.Linear(0.0, 1.0, steps=100, delay=20)),
        ("cosine:0.1->1@5ep", S.Cosine(0.1, 1.0, steps=50)),
        ("cyclical:0->1@8ep,cycles=2,ratio=0.25,shape=cosine",
         S.Cyclical(total_steps=80, cycles=2, ratio=0.25, start=0.0, end=1.0, shape="cosine")),
        ("two-phase:0@50ep->0.001@50ep",
         S.Sequence([(500, S.Constant(0.0)), (500, S.Linear(0.0, 0.001, steps=500))])),
        ("two-phase:0@3->1@4,shape=cosine",
         S.Sequence([(3, S.Constant(0.0)), (4, S.Cosine(0.0, 1.0, steps=4))])),
        ({"name": "linear", "start": 0.0, "end": 2.0, "steps": 7, "delay": 0},
         S.Linear(0.0, 2.0, steps=7)),
    ],
)  # fmt: skip
def test_beta_strings_map_to_schedules(text, expected):
    plan = specs.parse_beta(text)
    assert plan.schedule(10) == expected  # 10 steps per epoch
    assert plan.final_value() == expected(10**12)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sigmoid:0->1@10", r"unknown schedule 'sigmoid'; expected one of \['constant', 'linear'"),
        ("linear:0-1@10", r"expected linear:START->END@LENGTH"),
        ("linear:0->1@10,dely=3", r"unknown option 'dely=3'; expected delay="),
        ("cyclical:0->1@10,cycles=x", r"cycles must be a whole number"),
        ("two-phase:0->1@10", r"two-phase:START@LENGTH1->END@LENGTH2"),
        ("constant:-1", r"must be a number|>= 0"),
        ("beta", r"expected a number or KIND:ARGS"),
        ("linear:0->1@3eps", r"length like 1000"),
    ],
)
def test_bad_beta_strings_say_what_is_expected(text, message):
    with pytest.raises(ValueError, match=message):
        specs.parse_beta(text)


def test_loss_specs_parse_and_build():
    terms = specs.parse_loss("mae=1,ssim(win_size=7)=0.5,fft=0.1,gaussian(sigma=optimal)")
    assert [(t.name, t.weight) for t in terms] == [
        ("l1", 1.0), ("ssim", 0.5), ("fft", 0.1), ("gaussian_nll", 1.0)
    ]  # fmt: skip
    assert terms[1].kwargs == {"win_size": 7} and terms[3].kwargs == {"sigma": "optimal"}
    assert specs.parse_loss({"l1": 2, "gaussian_nll": {"weight": 0.5, "sigma": 0.1}})[1] == (
        specs.LossTerm("gaussian_nll", 0.5, {"sigma": 0.1})
    )
    # per-term pyramids and a whole-loss pyramid
    terms = specs.parse_loss("l1(scales=3)=1,fft=0.1")
    recon = specs.build_recon(terms)
    assert isinstance(recon.losses["l1"], vk.losses.MultiScale) and recon.losses["l1"].scales == 3
    x, y = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    expected = vk.losses.MultiScale("l1", scales=3)(x, y) + 0.1 * vk.functional.fft_loss(x, y)
    torch.testing.assert_close(recon(x, y), expected)
    wrapped = specs.build_recon(specs.parse_loss("l1"), multiscale=2)
    torch.testing.assert_close(wrapped(x, y), vk.losses.MultiScale("l1", scales=2)(x, y))
    assert specs.format_loss(terms) == "l1(scales=3)=1,fft=0.1"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("l1=1,ssmi=0.5", r"unknown loss 'ssmi': expected one of \['bce'.*did you mean 'ssim'"),
        ("l1,kl=1", r"the KL term is added by the trainer.*--beta and --free-bits"),
        ("l1=1,mae=2", r"each loss may appear once"),
        ("l1=0", r"at least one term needs a weight > 0"),
        ("l1=x", r"the weight of 'l1' must be a number, got 'x'"),
        ({"l1": "x"}, r"the weight of 'l1' must be a number, got str \('x'\)"),
        ("l1=-1", r"the weight of 'l1' must be >= 0, got -1"),
        ("l1(scales=0)=1", r"scales of 'l1' must be >= 1, got 0"),
        ("l1(scales=1.5)=1", r"scales of 'l1' must be an int, got float \(1\.5\)"),
        ("l1(=1", r"unbalanced brackets"),
        ("", r"must be a string like 'l1=1,ssim=0.5'"),
    ],
)
def test_bad_loss_specs_say_what_is_expected(spec, message):
    with pytest.raises((ValueError, TypeError), match=message):
        specs.parse_loss(spec)


def test_loss_keywords_are_checked_when_built():
    with pytest.raises(ValueError, match=r"--loss term 'l1'.*sigma"):
        specs.build_recon(specs.parse_loss("l1(sigma=2)"))


def test_random_perceptual_backbones_are_named():
    terms = specs.parse_loss("l1,perceptual=0.1,lpips(weights=None)=0.1")
    assert specs.random_backbones(terms, "imagenet") == ["lpips"]
    assert specs.random_backbones(terms, None) == ["perceptual", "lpips"]
    assert specs.random_backbones(specs.parse_loss("l1,ssim"), None) == []


def test_likelihood_is_reported_only_for_one_likelihood_term():
    lik = lambda s, ms=1, var="none": specs.likelihood_of(specs.parse_loss(s), ms, var)[0]
    assert lik("bce") == {"likelihood": "bernoulli"}
    assert lik("gaussian_nll(sigma=0.1)") == {"likelihood": "gaussian", "sigma": 0.1}
    assert lik("gaussian_nll") == {"likelihood": "gaussian", "sigma": 1.0}
    assert lik("gaussian_nll", var="pixel") == {"likelihood": "gaussian"}
    assert lik("laplace_nll(scale=learned)") == {"likelihood": "laplace", "scale": "learned"}
    for not_an_elbo in ("l1", "bce=0.5", "bce,ssim=0.1", "gaussian_nll(sigma=optimal)"):
        assert lik(not_an_elbo) is None, not_an_elbo
    assert lik("bce", ms=2) is None


# -- options ------------------------------------------------------------------------------------
def test_config_file_then_resumed_run_then_command_line(tmp_path):
    cfg = tmp_path / "recipe.json"
    recipe = {"_comment": "ignored", "preset": "fmnist32", "data": "fashion-mnist",
              "batch_size": 32, "lr": "0.01", "hflip": True, "loss": {"bce": 1}}  # fmt: skip
    cfg.write_text(json.dumps(recipe))
    args = options.parse(["--config", str(cfg), "--batch-size", "8", "--no-hflip"])
    assert (args.batch_size, args.lr, args.hflip, args.epochs) == (8, 0.01, False, None)
    assert args.loss_terms == [specs.LossTerm("bce", 1.0, {})]
    # a resumed run's config.json sits between the file and the command line
    run = tmp_path / "run"
    run.mkdir()
    saved = options.to_json(args) | {"lr": 0.5, "epochs": 3}
    (run / "config.json").write_text(json.dumps({"args": saved}))
    args = options.parse(["--config", str(cfg), "--resume", str(run), "--epochs", "9"])
    assert (args.lr, args.epochs, args.batch_size) == (0.5, 9, 8)


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        ({"batchsize": 3}, ValueError, r"unknown option 'batchsize'; did you mean 'batch_size'"),
        ({"epochs": 1.5}, TypeError, r"epochs must be an int, got float \(1\.5\)"),
        ({"lr": "fast"}, ValueError, r"lr must be float, got 'fast'"),
        ({"lr": True}, TypeError, r"lr must be a number, got bool"),
        ({"hflip": "yes"}, TypeError, r"hflip must be true or false"),
        ({"amp": "fp8"}, ValueError, r"amp must be one of \['auto', 'bf16', 'fp16', 'none'\]"),
        ({"resume": "x"}, ValueError, r"unknown option 'resume'"),
        ([1, 2], ValueError, r"must hold a JSON object"),
    ],
)
def test_bad_config_files(tmp_path, content, error, message):
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps(content))
    with pytest.raises(error, match=message):
        options.parse(["--config", str(cfg), "--preset", "fmnist32", "--data", "x"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preset", "fmnist32"], r"no data given: pass --data fashion-mnist or --data PATH"),
        (["--data", "x"], r"exactly one of --preset NAME or --model-config FILE.json, got neither"),
        (["--data", "x", "--preset", "a", "--model-config", "b"], r"got both"),
        (["--data", "x", "--preset", "a", "--val-fraction", "1"], r"--val-fraction must be in"),
        (["--data", "x", "--preset", "a", "--lr", "0"], r"--lr must be a finite number > 0"),
        (["--data", "x", "--preset", "a", "--lr-schedule", "cosine", "--minutes", "1"],
         r"cosine needs the run's length"),
        (["--data", "x", "--preset", "a", "--eval-every", "often"],
         r"--eval-every must be a length"),
    ],
)  # fmt: skip
def test_bad_option_combinations(argv, message):
    with pytest.raises(ValueError, match=message):
        options.parse(argv)


def test_autocast_choice_per_device():
    cpu = torch.device("cpu")
    assert runtime.amp_dtype("auto", cpu) is None and runtime.amp_dtype("none", cpu) is None
    with pytest.raises(ValueError, match=r"--amp fp16 needs a CUDA device"):
        runtime.amp_dtype("fp16", cpu)
    with pytest.warns(UserWarning, match=r"--amp bf16 on CPU"):
        assert runtime.amp_dtype("bf16", cpu) is torch.bfloat16


# -- data ---------------------------------------------------------------------------------------
def test_missing_fashion_mnist_says_how_to_get_it(tmp_path):
    with pytest.raises(train.UsageError) as err:
        train.main(run_args(tmp_path, root=tmp_path / "nowhere"))
    assert "apt-get install dataset-fashion-mnist" in str(err.value)
    assert "--data PATH" in str(err.value) and "--data-root" in str(err.value)


@pytest.mark.parametrize(
    ("setup", "extra", "message"),
    [
        ("empty", [], r"no images in .*: expected files ending in \.png, \.jpg"),
        ("missing", [], r"no such folder; expected 'fashion-mnist' or a folder of images"),
        ("mixed", [], r"different sizes: 16x16 \(4\), 16x20 \(1\); pass --image-size N"),
        ("rgb", [], r"4 of 4 images do not have the model's 1 channel\(s\).*--channels 1"),
        ("small", [], r"are 16x16 but the model expects 32x32; pass --image-size 32"),
        ("all-bad", [], r"none of the 3 image files .* could be read"),
        ("many-bad", [], r"2 of 6 image files .* could not be read \(more than 10%\)"),
        ("small", ["--channels", "3"], r"--channels 3 but the model expects 1"),
        ("small", ["--image-size", "20"], r"Downsample|does not fit|image_size"),
    ],
)
@pytest.mark.filterwarnings("ignore::vaekit.data.DataWarning")  # many-bad: warned, then refused
def test_bad_image_folders(tmp_path, setup, extra, message):
    folder = tmp_path / setup
    folder.mkdir()
    if setup == "mixed":
        write_images(folder, 4, (16, 16))
        write_images(folder / "other", 1, (16, 20))
    elif setup == "rgb":
        write_images(folder, 4, (32, 32), "RGB")
    elif setup == "small":
        write_images(folder, 4, (16, 16))
    elif setup in ("all-bad", "many-bad"):
        for i in range(3 if setup == "all-bad" else 2):
            (folder / f"broken{i}.jpg").write_bytes(b"not an image")
        if setup == "many-bad":
            write_images(folder, 4, (32, 32))
    elif setup == "missing":
        folder.rmdir()
    argv = run_args(tmp_path, "--preset", "fmnist32", "--data", str(folder), *extra)
    if "--image-size" in extra:  # fmnist32 has no attention: every size fits; xray256 does not
        argv[argv.index("fmnist32")] = "xray256-spatial"
    with pytest.raises(train.UsageError, match=message):
        train.main(argv)


def test_a_few_unreadable_files_are_skipped_with_one_warning(tmp_path):
    folder = write_images(tmp_path / "imgs", 20, (32, 32))
    (folder / "broken.png").write_bytes(b"\x89PNG but not really")
    argv = run_args(tmp_path, "--preset", "fmnist32", "--data", str(folder), "--max-steps", "1",
                    "--batch-size", "4", "--val-fraction", "0.25", "--workers", "0")  # fmt: skip
    with pytest.warns(vk.data.DataWarning, match=r"skipped 1 of 21 image files") as record:
        run = train.main(argv)
    assert len([w for w in record if issubclass(w.category, vk.data.DataWarning)]) == 1
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["train"] + config["data"]["val"] == 20
    assert "skipped 1 of 21" in config["data"]["notes"][0]
    summary = (run / "summary.md").read_text()  # the report says so too, next to the metrics
    notes = summary.split("## Notes\n", 1)[1].split("\n## ", 1)[0]
    assert "- skipped 1 of 21 image files that could not be read (broken.png" in notes
    assert "backbone" not in notes


def test_evaluation_gives_every_submodule_its_own_mode_back(tmp_path, tiny_cfg):
    """The trainer evaluates under vaekit's ``evaluating`` (one context manager for the library
    and the trainer): a model with submodules in mixed modes comes back exactly as it was."""
    from vaekit._inference import evaluating

    assert evaluate.evaluating is evaluating
    vae = vk.VAE(tiny_cfg).train()
    vae.decoder.eval()  # e.g. a frozen decoder inside a training model
    modes = {name: m.training for name, m in vae.named_modules()}
    assert vae.training and not vae.decoder.training and vae.encoder.training
    x = torch.rand(4, 1, 16, 16)
    rt = runtime.Runtime(device=torch.device("cpu"))
    loss_fn = vk.losses.VAELoss("mse", beta=1.0)
    terms = evaluate.validation_terms(vae, loss_fn, [x], rt, channels_last=False, seed=0)
    assert math.isfinite(terms["total"])
    assert {name: m.training for name, m in vae.named_modules()} == modes
    evaluate.save_pictures(vae, x, tmp_path, "t-", seed=0)
    assert {name: m.training for name, m in vae.named_modules()} == modes
    assert (tmp_path / "t-reconstructions.png").is_file()


class _Copier(torch.nn.Module):
    """A stand-in VAE: reconstructs exactly; its "prior" draws blurred real images."""

    def __init__(self, images):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.images = images
        self.prior = vk.priors.StandardNormal()

    def reconstruct(self, x):
        return x.clone()

    def sample(self, n, generator=None):
        pick = torch.randint(len(self.images), (n,), generator=generator)
        blur = 1 + 2 * isinstance(self.prior, vk.priors.StandardNormal)  # N(0, I): 3x3 box
        return torch.nn.functional.avg_pool2d(self.images[pick], blur, 1, blur // 2,
                                              count_include_pad=False)  # fmt: skip


def test_sharpness_stats_are_ratios_to_the_real_images(tmp_path):
    images = torch.rand(30, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    vae = _Copier(images)
    priors = {"standard_normal": vae.prior, "other": vk.priors.GaussianMixture(2)}
    out = evaluate.sharpness_stats(vae, images, priors, seed=3, n=20, spectrum=tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0 and isinstance(
        vae.prior, vk.priors.StandardNormal
    )
    assert out["samples"]["images"] == 20
    assert out["samples"]["real"] == vk.metrics.image_stats(images[:20]).mean()
    for key in ("sharpness", "contrast"):
        ratios = out[f"{key}_ratio"]
        assert ratios["reconstructions"] == pytest.approx(1.0)  # exact copies: as sharp as real
        assert ratios["samples"]["other"] == pytest.approx(
            out["samples"]["other"][key] / out["samples"]["real"][key]
        )
    # the blurred "samples" are blurrier and fainter; the unblurred ones are not
    assert out["sharpness_ratio"]["samples"]["standard_normal"] < 0.5
    assert out["contrast_ratio"]["samples"]["standard_normal"] < 1
    assert out["sharpness_ratio"]["samples"]["other"] == pytest.approx(1.0, rel=0.2)
    # a blank test set has no sharpness to compare with: no ratio rather than a division by 0
    blank = evaluate.sharpness_stats(_Copier(images * 0), images * 0, {"standard_normal": vae.prior},
                                     seed=0, n=4)  # fmt: skip
    assert blank["sharpness_ratio"] == {"reconstructions": None,
                                        "samples": {"standard_normal": None}}  # fmt: skip


def test_run_folders_are_never_reused(tmp_path):
    first = checkpoint.make_run_dir(tmp_path, "same")
    second = checkpoint.make_run_dir(tmp_path, "same")
    assert first != second and first.is_dir() and second.is_dir()
    assert re.fullmatch(r"\d{8}-\d{6}-same", first.name)


# -- a full run ---------------------------------------------------------------------------------
def test_fashion_mnist_run_writes_everything(tmp_path, fmnist):
    argv = run_args(tmp_path, "--max-steps", "6", "--eval-every", "3", "--image-every", "1",
                    "--beta", "linear:0->0.8@1ep", "--hflip", "--lr-schedule", "plateau",
                    root=fmnist)  # fmt: skip
    run = train.main(argv)
    for name in ("config.json", "history.csv", "best.safetensors", "last.safetensors",
                 "trainer_state.pt", "samples.png", "reconstructions.png", "interpolations.png",
                 "spectrum.png", "loss.png", "metrics.json", "summary.md"):  # fmt: skip
        assert (run / name).stat().st_size > 0, name
    assert (run / "images" / "epoch-0001-samples.png").is_file()  # 5 steps per epoch

    config = json.loads((run / "config.json").read_text())
    assert config["args"]["max_steps"] == 6 and config["args"]["beta"] == "linear:0->0.8@1ep"
    assert config["model"] == vk.presets.config("fmnist32").to_dict()
    assert config["steps_per_epoch"] == 5  # 86 train images // 16, drop_last
    assert S.from_dict(config["beta_schedule"]) == S.Linear(0.0, 0.8, steps=5)

    rows = read_history(run)
    train_rows = [r for r in rows if r["split"] == "train"]
    val_rows = [r for r in rows if r["split"] == "val"]
    assert [int(r["step"]) for r in train_rows] == [1, 2, 3, 4, 5, 6]
    assert [int(r["step"]) for r in val_rows] == [3, 6]
    assert {"time", "lr", "beta", "total", "recon", "kl", "kl_raw", "bce", "epoch"} <= set(rows[0])
    assert [float(r["beta"]) for r in train_rows] == pytest.approx([0, 0.16, 0.32, 0.48, 0.64, 0.8])
    assert all(float(r["beta"]) == 0.8 for r in val_rows)  # validation at the final beta

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["run"]["steps"] == 6 and metrics["run"]["stopped_because"] == "max steps"
    assert metrics["run"]["images_seen"] == 96 and metrics["eval_split"] == "test"
    best_val = min(float(r["total"]) for r in val_rows)
    assert metrics["run"]["best_val_total"] == pytest.approx(best_val)
    for key in ("psnr", "ssim", "neg_elbo_nats_per_dim", "neg_elbo_bits_per_dim",
                "iwae_nll_nats_per_dim", "kl_nats_per_image"):  # fmt: skip
        assert math.isfinite(metrics[key]), key
    # Bernoulli: bits/dim is nats/dim / ln 2, and IWAE is at most the ELBO (up to noise)
    assert metrics["neg_elbo_bits_per_dim"] == pytest.approx(
        metrics["neg_elbo_nats_per_dim"] / math.log(2)
    )
    assert 0 <= metrics["active_units"] <= metrics["latent_dims"] == 32
    assert len(metrics["kl_per_dim"]["values"]) == 32
    assert {"kl", "mmd", "mmd_noise", "eig_min"} <= set(metrics["posterior_gap"])
    fid = metrics["fid"]
    assert fid["images_per_side"] == 24 and 0 <= fid["classifier_test_accuracy"] <= 1
    assert fid["fd_samples"] >= 0 and fid["fd_floor_train_vs_test"] >= 0
    # blur and contrast against the 40 real test images: an undertrained model's
    # reconstructions and samples are far smoother than noisy real images
    stats = metrics["samples"]
    assert stats["images"] == 40 and set(stats) == {"images", "real", "standard_normal"}
    for key in ("sharpness", "contrast"):
        ratios = metrics[f"{key}_ratio"]
        assert set(ratios) == {"reconstructions", "samples"}
        assert list(ratios["samples"]) == ["standard_normal"]
        assert ratios["samples"]["standard_normal"] == pytest.approx(
            stats["standard_normal"][key] / stats["real"][key]
        )
        for value in (ratios["reconstructions"], ratios["samples"]["standard_normal"]):
            assert math.isfinite(value) and value > 0, (key, ratios)
    assert metrics["sharpness_ratio"]["reconstructions"] < 0.5
    summary = (run / "summary.md").read_text()
    assert "![samples](samples.png)" in summary and f"{metrics['psnr']:.4g}" in summary
    assert "![spectrum](spectrum.png)" in summary
    recon_ratio = metrics["sharpness_ratio"]["reconstructions"]
    assert f"| sharpness ratio to the real test images: reconstructions | {recon_ratio:.4g} |" in (
        summary
    )
    assert "| contrast ratio to the real test images: N(0, I) samples |" in summary
    assert "## Notes" not in summary  # nothing to say: no section
    # pictures of 32-px images are enlarged to 96-px tiles (2 px of padding)
    from PIL import Image

    assert Image.open(run / "samples.png").size == (8 * 98 + 2, 3 * 98 + 2)
    assert Image.open(run / "reconstructions.png").size == (8 * 98 + 2, 4 * 98 + 2)

    vae = vk.VAE.load(run / "best.safetensors", expected_config=vk.presets.config("fmnist32"))
    assert vae(torch.rand(2, 1, 32, 32)).recon.shape == (2, 1, 32, 32)

    # the FID classifier was trained once and is reused from the cache
    cached = list((tmp_path / "cache").glob("fashion-mnist-classifier-32px-*.safetensors"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    run2 = train.main(run_args(tmp_path, "--max-steps", "1", "--eval-limit", "8", root=fmnist))
    assert run2 != run and cached[0].stat().st_mtime_ns == stamp
    assert json.loads((run2 / "metrics.json").read_text())["fid"]["classifier"] == str(cached[0])


def test_fashion_mnist_at_native_28px(tmp_path, fmnist):
    cfg = tmp_path / "model.json"
    cfg.write_text(json.dumps(vk.presets.config("fmnist32", image_size=28).to_dict()))
    argv = run_args(tmp_path, "--model-config", str(cfg), "--data", "fashion-mnist",
                    "--data-root", str(fmnist), "--epochs", "1", "--no-final-metrics")  # fmt: skip
    run = train.main(argv)
    assert json.loads((run / "config.json").read_text())["data"]["image_size"] == 28
    state = torch.load(run / "trainer_state.pt", weights_only=True)
    assert (state["stop_reason"], state["step"], state["batch_in_epoch"]) == ("epochs", 5, 5)
    assert [r["step"] for r in read_history(run) if r["split"] == "val"] == ["5"]
    assert vk.VAE.load(run / "last.safetensors").config.image_size == (28, 28)
    assert not (run / "metrics.json").exists()


def test_bf16_autocast_on_cpu(tmp_path, fmnist):
    argv = run_args(
        tmp_path, "--amp", "bf16", "--max-steps", "2", "--no-final-metrics", root=fmnist
    )
    with pytest.warns(UserWarning, match=r"--amp bf16 on CPU"):
        run = train.main(argv)
    rows = read_history(run)
    assert len(rows) == 3 and all(math.isfinite(float(r["total"])) for r in rows)
    vae = vk.VAE.load(run / "last.safetensors")
    assert all(p.dtype == torch.float32 for p in vae.parameters())  # autocast, not a cast


def test_random_perceptual_backbone_is_noted_in_the_summary(tmp_path, fmnist, capsys):
    argv = run_args(tmp_path, "--loss", "bce=1,perceptual(layers=('relu1_2',))=0.1",
                    "--perceptual-weights", "none", "--max-steps", "1", "--fid-samples", "0",
                    root=fmnist)  # fmt: skip
    run = train.main(argv)
    summary = (run / "summary.md").read_text()
    notes = summary.split("## Notes\n", 1)[1].split("\n## ", 1)[0]
    assert "- the perceptual term's backbone is random (--perceptual-weights none" in notes
    assert "note: the perceptual term's backbone is random" in capsys.readouterr().out


def test_train_rows_at_fixed_steps_hold_the_mean_since_the_last_row(tmp_path, fmnist):
    """Rows at step 1, every --log-every steps, at every evaluation and at the last step; each
    the mean of the steps since the row before (compared with a run that logs every step)."""
    common = ["--max-steps", "7", "--eval-every", "3", "--no-final-metrics", "--image-every", "0"]
    every = train.main(run_args(tmp_path / "a", *common, root=fmnist))  # --log-every 1
    sparse = train.main(run_args(tmp_path / "b", *common, "--log-every", "5", "--log-seconds",
                                 "0", root=fmnist))  # fmt: skip
    per_step = {int(r["step"]): r for r in read_history(every) if r["split"] == "train"}
    assert sorted(per_step) == list(range(1, 8))
    rows = [r for r in read_history(sparse) if r["split"] == "train"]
    assert [int(r["step"]) for r in rows] == [1, 3, 5, 6, 7]
    previous = 0
    for row in rows:
        steps = range(previous + 1, int(row["step"]) + 1)
        for key in ("total", "recon", "kl_raw"):
            mean = sum(float(per_step[s][key]) for s in steps) / len(steps)
            assert float(row[key]) == pytest.approx(mean, rel=1e-5), (row["step"], key)
        previous = int(row["step"])


def test_log_seconds_adds_rows_and_log_lines_between_fixed_steps(tmp_path, fmnist, capsys):
    # a budget far below one step's time: a row and a log line after every step
    argv = run_args(tmp_path, "--max-steps", "4", "--eval-every", "100", "--log-every", "100",
                    "--log-seconds", "1e-9", "--no-final-metrics", root=fmnist)  # fmt: skip
    run = train.main(argv)
    assert [r["step"] for r in read_history(run) if r["split"] == "train"] == ["1", "2", "3", "4"]
    out = capsys.readouterr().out
    assert all(f"[train] step {s} (epoch" in out for s in (1, 2, 3, 4)), out
    assert re.search(r"step 1 \(epoch 0\.\d+\) \| total [\d.]+, recon [\d.]+, kl_raw", out)
    with pytest.raises(ValueError, match=r"--log-seconds must be a finite number >= 0"):
        options.parse(["--preset", "fmnist32", "--data", "x", "--log-seconds", "-1"])


def test_resume_continues_exactly(tmp_path, fmnist):
    """N steps in one go == N/2 steps, then --resume for N/2 more: the same weights, bit for bit
    (mid-epoch stop, an epoch boundary, flips, cosine LR and a beta ramp on the way)."""
    common = ["--hflip", "--lr-schedule", "cosine", "--epochs", "3", "--eval-every", "3",
              "--beta", "linear:0->0.8@1ep", "--no-final-metrics",
              "--image-every", "0"]  # fmt: skip
    straight = train.main(run_args(tmp_path / "a", *common, "--max-steps", "8", root=fmnist))
    half = train.main(run_args(tmp_path / "b", *common, "--max-steps", "4", root=fmnist))
    state = torch.load(half / "trainer_state.pt", weights_only=True)
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (4, 0, 4)
    resumed = train.main(["--resume", str(half), "--max-steps", "8"])
    assert resumed == half
    a = vk.VAE.load(straight / "last.safetensors").state_dict()
    b = vk.VAE.load(resumed / "last.safetensors").state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ"
    # --log-every 1: a train row per step whatever --log-seconds decides, so each row is one
    # step's loss and the rows of both runs are comparable
    rows_a = [r for r in read_history(straight) if r["split"] == "train"]
    rows_b = [r for r in read_history(resumed) if r["split"] == "train"]
    assert [(r["step"], r["lr"], r["total"]) for r in rows_a] == [
        (r["step"], r["lr"], r["total"]) for r in rows_b
    ]
    # the resumed config records the new limit; a missing state file is a clear error
    assert json.loads((resumed / "config.json").read_text())["args"]["max_steps"] == 8
    (half / "trainer_state.pt").unlink()
    with pytest.raises(train.UsageError, match=r"no trainer_state.pt in .*--resume needs"):
        train.main(["--resume", str(half)])


def test_early_stopping_and_time_budget(tmp_path, fmnist):
    # GroupNorm (no running statistics) and a vanishing learning rate: validation never
    # improves after the first evaluation, so patience 1 stops at the second
    cfg = tmp_path / "model.json"
    cfg.write_text(json.dumps(vk.presets.config("fmnist32", norm="group", widths=(8, 8)).to_dict()))
    argv = run_args(tmp_path, "--model-config", str(cfg), "--data", "fashion-mnist",
                    "--data-root", str(fmnist), "--lr", "1e-30", "--weight-decay", "0",
                    "--eval-every", "2", "--patience", "1", "--epochs", "10",
                    "--no-final-metrics")  # fmt: skip
    run = train.main(argv)
    state = torch.load(run / "trainer_state.pt", weights_only=True)
    assert state["stop_reason"] == "early stopping (patience)"
    assert (state["step"], state["best_step"], state["bad_evals"]) == (4, 2, 1)
    run = train.main(run_args(tmp_path, "--minutes", "1e-6", "--no-final-metrics", root=fmnist))
    state = torch.load(run / "trainer_state.pt", weights_only=True)
    assert state["stop_reason"] == "time budget (--minutes)" and state["step"] == 1


def test_a_non_finite_loss_stops_with_the_step(tmp_path, fmnist):
    @vk.losses.register("test_nan_after_2")
    class NanAfter2(torch.nn.Module):
        reduction = "mean"
        calls = 0

        def forward(self, input, target):
            NanAfter2.calls += 1
            scale = float("nan") if NanAfter2.calls > 2 else 1.0
            return (input - target).abs().mean() * scale

    try:
        with pytest.raises(FloatingPointError, match=r"not finite at step 3.*--resume"):
            train.main(run_args(tmp_path, "--loss", "test_nan_after_2", "--max-steps", "5",
                                "--eval-every", "100", root=fmnist))  # fmt: skip
    finally:
        vk.losses.unregister("test_nan_after_2")


def test_command_line_errors_are_one_line(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("VAEKIT_DEBUG", None)
    cmd = [sys.executable, str(TRAIN), "--preset", "fmnist32", "--data", "fashion-mnist",
           "--loss", "l1=1,ssmi=0.5"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 2
    assert res.stderr.startswith("train.py: error: --loss 'l1=1,ssmi=0.5': unknown loss 'ssmi'")
    assert "Traceback" not in res.stderr and "did you mean 'ssim'" in res.stderr


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path, fmnist):
    """torchrun with 2 gloo processes: both finish, rank 0 writes a loadable checkpoint."""
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(TRAIN), "--preset", "fmnist32", "--data", "fashion-mnist", "--data-root",
           str(fmnist), "--batch-size", "8", "--max-steps", "4", "--eval-every", "2",
           "--minutes", "10", "--out", str(out), "--no-final-metrics",
           "--device", "cpu"]  # fmt: skip
    # TMPDIR: torchrun's agent leaves a torchelastic_* folder in the temp folder
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log
    assert "[train] rank 0 finished at step 4" in log
    assert "[train] rank 1 finished at step 4" in log
    (run,) = out.iterdir()
    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2 and config["global_batch_size"] == 16
    assert config["steps_per_epoch"] == 5  # 86 images -> 43 per rank -> 5 batches of 8
    state = torch.load(run / "trainer_state.pt", weights_only=True)
    assert state["step"] == 4 and len(state["rng"]) == 2  # both ranks' RNG states
    assert not torch.equal(state["rng"][0]["cpu"], state["rng"][1]["cpu"])  # noise per rank
    vae = vk.VAE.load(run / "best.safetensors")
    assert vae.config == vk.presets.config("fmnist32")
    val_rows = [r for r in read_history(run) if r["split"] == "val"]
    assert [int(r["step"]) for r in val_rows] == [2, 4]
    assert all(math.isfinite(float(r["total"])) for r in val_rows)


# -- priors: --prior (learned with the VAE) and --fit-prior (fitted after training) ----------------
@pytest.mark.parametrize(
    ("text", "option", "name", "kwargs", "fit_kwargs"),
    [
        ("mog:16", "--prior", "mog", {"components": 16}, {}),
        ("vamp:64", "--prior", "vamp", {"pseudo_inputs": 64}, {}),
        ("VampPrior:8", "--prior", "vamp", {"pseudo_inputs": 8}, {}),  # an alias, any case
        ("gmm:10", "--fit-prior", "gmm", {"components": 10}, {}),
        ("gmm:10:diag", "--fit-prior", "gmm", {"components": 10, "covariance": "diag"}, {}),
        ("gmm:3:reg=0.001:max_iter=50", "--fit-prior", "gmm",
         {"components": 3, "reg": 0.001, "max_iter": 50}, {}),
        ("flow", "--fit-prior", "flow", {}, {}),
        ("flow:layers=4:iterations=50:lr=0.002", "--fit-prior", "flow", {"layers": 4},
         {"iterations": 50, "lr": 0.002}),
        ("diffusion:sample_steps=20:iterations=100:ema=none", "--fit-prior", "diffusion",
         {"sample_steps": 20}, {"iterations": 100, "ema": None}),
    ],
)  # fmt: skip
def test_prior_specs_parse(text, option, name, kwargs, fit_kwargs):
    spec = specs.parse_prior(text, option)
    assert (spec.name, spec.kwargs, spec.fit_kwargs) == (name, kwargs, fit_kwargs)
    prior = spec.build()
    assert vk.priors.name_of(prior) == name and prior.latent_shape is None  # bound later
    for key, value in kwargs.items():
        assert prior.config()[key] == value


@pytest.mark.parametrize(
    ("text", "option", "error", "message"),
    [
        ("gmn:10", "--fit-prior", ValueError,
         r"--fit-prior 'gmn:10': unknown prior 'gmn'; --fit-prior takes a prior fitted after "
         r"training, one of \['diffusion', 'edm', 'flow', 'gmm'\]; did you mean 'gmm'\?"),
        ("mgo:16", "--prior", ValueError, r"one of \['mog', 'standard_normal', 'vamp'\]; did you "
         r"mean 'mog'\?"),
        ("gmm:10", "--prior", ValueError,
         r"'gmm' is fitted after training, so it goes to --fit-prior \(e.g. --fit-prior gmm:10\)"),
        ("vamp:64", "--fit-prior", ValueError, r"'vamp' is learned with the VAE, so it goes to "
         r"--prior"),
        ("gmm:10:diag:3", "--fit-prior", ValueError,
         r"too many values; expected gmm\[:COMPONENTS\[:COVARIANCE\]\]\[:KEY=VALUE...\]"),
        ("gmm:0", "--fit-prior", ValueError, r"'gmm:0': components must be >= 1, got 0"),
        ("gmm:2.5", "--fit-prior", TypeError, r"components must be an int, got float \(2\.5\)"),
        ("gmm:10:dag", "--fit-prior", ValueError, r"covariance must be one of \['full', 'diag'\]"),
        ("flow:iteratons=5", "--fit-prior", ValueError,
         r"unknown option 'iteratons'; did you mean 'iterations'\? \(valid: batch_size, hidden, "
         r"iterations, layers, lr, val_fraction\)"),
        ("flow:iterations=0", "--fit-prior", ValueError, r"iterations must be >= 1, got 0"),
        ("flow:lr=-1", "--fit-prior", ValueError, r"lr must be > 0, got -1"),
        ("diffusion:ema=1", "--fit-prior", ValueError, r"ema must be >= 0 and < 1, got 1"),
        ("mog:4:iterations=5", "--prior", ValueError, r"unknown option 'iterations'"),
        ("flow:=3", "--fit-prior", ValueError, r"expected KEY=VALUE, got '=3'"),
        ("gmm:components=2:components=3", "--fit-prior", ValueError, r"given twice"),
        ("", "--prior", TypeError, r"--prior must be a non-empty string such as mog:16"),
    ],
)  # fmt: skip
def test_bad_prior_specs_say_what_is_expected(text, option, error, message):
    with pytest.raises(error, match=message):
        specs.parse_prior(text, option)


def test_prior_options_are_checked_before_any_data(tmp_path):
    argv = ["--preset", "fmnist32", "--data", str(tmp_path / "nowhere")]
    with pytest.raises(ValueError, match=r"--fit-prior 'gmn:10'.*did you mean 'gmm'"):
        options.parse([*argv, "--fit-prior", "gmn:10"])
    args = options.parse([*argv, "--prior", "mog:4", "--fit-prior", "gmm:2:diag"])
    assert args.prior_spec.name == "mog" and args.fit_prior_spec.kwargs["covariance"] == "diag"
    assert options.to_json(args)["fit_prior"] == "gmm:2:diag"  # a resumed run reads it back


def _pixels(path):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(path).convert("L"), dtype=np.int16)


def _same_picture(a, b) -> bool:
    """Equal up to one 8-bit level (a channels_last model may round a pixel the other way)."""
    pa, pb = _pixels(a), _pixels(b)
    return pa.shape == pb.shape and int(abs(pa - pb).max()) <= 1


def _sample_rows(vae, path=None) -> torch.Tensor:
    """What samples*.png show: 8 seeded draws of vae.prior at each temperature (seed 0)."""
    with torch.no_grad():
        rows = torch.cat([vae.sample(8, temperature=t, generator=torch.Generator().manual_seed(0))
                          for t in (0.5, 0.8, 1.0)])  # fmt: skip
    if path is not None:
        vk.viz.save_image(vk.viz.make_grid(rows, nrow=8, upscale="auto"), path)
    return rows


def test_fit_prior_saves_it_into_best_and_reports_both_priors(tmp_path, fmnist):
    run = train.main(run_args(tmp_path, "--max-steps", "3", "--fit-prior", "gmm:2", root=fmnist))
    for name in ("samples.png", "samples-gmm.png", "best.safetensors", "metrics.json"):
        assert (run / name).stat().st_size > 0, name
    assert not list(run.glob("best-*.safetensors"))  # N(0, I) needs no file of its own
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["prior"]["trained"] == {"name": "standard_normal",
                                           "config": {"latent_shape": [32]}}  # fmt: skip
    fitted = metrics["prior"]["fitted"]
    assert (fitted["spec"], fitted["name"], fitted["use"]) == ("gmm:2", "gmm", "mean")
    assert fitted["latents"] == 86 and fitted["latent_shape"] == [32]  # the training images
    assert fitted["config"]["components"] == 2 and fitted["em_iterations"] >= 1
    assert fitted["fit_seconds"] >= 0 and fitted["encode_seconds"] >= 0
    fid = metrics["fid"]
    assert list(fid["fd_samples_by_prior"]) == ["standard_normal", "gmm"]
    assert fid["fd_samples"] == fid["fd_samples_by_prior"]["standard_normal"]
    assert all(math.isfinite(v) and v >= 0 for v in fid["fd_samples_by_prior"].values())
    assert set(metrics["samples"]) == {"images", "real", "standard_normal", "gmm"}
    gaps = metrics["posterior_gap_by_prior"]
    assert list(gaps) == ["standard_normal", "gmm"]
    assert gaps["standard_normal"] == metrics["posterior_gap"]  # N(0, I): the same numbers
    assert gaps["gmm"]["num_samples"] == 40 and math.isfinite(gaps["gmm"]["mmd"])
    assert 0 <= metrics["samples"]["gmm"]["contrast"] <= 1
    for key in ("sharpness_ratio", "contrast_ratio"):  # one ratio per prior sampled from
        assert list(metrics[key]["samples"]) == ["standard_normal", "gmm"]
        assert all(math.isfinite(v) and v > 0 for v in metrics[key]["samples"].values())
    assert (run / "spectrum.png").stat().st_size > 0
    summary = (run / "summary.md").read_text()
    assert re.search(r"\| prior \| N\(0, I\); fitted after training: `gmm:2` on 86 posterior "
                     r"means in [\d.]+ s", summary)  # fmt: skip
    assert "FD gmm samples vs test" in summary and "![samples-gmm](samples-gmm.png)" in summary
    assert "posterior means MMD to the gmm prior" in summary  # an ex-post prior: the means
    assert gaps["gmm"]["target"] == "means" and gaps["standard_normal"]["target"] == "samples"
    assert "| sharpness ratio to the real test images: gmm samples |" in summary

    # best.safetensors carries the fitted mixture and draws the picture the run drew
    vae = vk.VAE.load(run / "best.safetensors").eval()
    assert isinstance(vae.prior, vk.priors.GaussianMixture) and vae.prior.is_fitted
    assert vae.prior.components == 2 and vae.prior.latent_shape == (32,)
    again = tmp_path / "again.png"
    fitted_rows = _sample_rows(vae, again)
    assert _same_picture(again, run / "samples-gmm.png")
    # ... and the N(0, I) model is one line away: the same decoder, the default prior
    vae.prior = vk.priors.StandardNormal()
    assert not torch.allclose(_sample_rows(vae, again), fitted_rows)
    assert _same_picture(again, run / "samples.png")
    # the best checkpoint's weights are the trained ones (last = best here: 3 steps, one eval)
    last = vk.VAE.load(run / "last.safetensors")
    assert isinstance(last.prior, vk.priors.StandardNormal)
    best = vae.state_dict()
    assert all(torch.equal(v, best[k]) for k, v in last.state_dict().items())


@pytest.mark.parametrize(
    "spec",
    ["flow:layers=2:hidden=8:iterations=3",
     "diffusion:steps=10:sample_steps=2:hidden=8:depth=1:iterations=3"],
)  # fmt: skip
def test_fit_prior_flow_and_diffusion(tmp_path, fmnist, spec):
    run = train.main(run_args(tmp_path, "--max-steps", "2", "--fit-prior", spec,
                              "--no-final-metrics", root=fmnist))  # fmt: skip
    name = spec.split(":")[0]
    vae = vk.VAE.load(run / "best.safetensors").eval()
    assert vk.priors.name_of(vae.prior) == name and vae.prior.is_fitted
    again = tmp_path / "again.png"
    _sample_rows(vae, again)
    assert _same_picture(again, run / f"samples-{name}.png")


def test_learned_prior_trains_resumes_exactly_and_survives_a_fit(tmp_path, fmnist):
    """--prior mog: the mixture learns with the model (MC KL), resumes bit for bit, and a
    --fit-prior afterwards keeps it in best-mog.safetensors."""
    common = ["--prior", "mog:3", "--eval-every", "2", "--no-final-metrics", "--image-every", "0"]
    straight = train.main(run_args(tmp_path / "a", *common, "--max-steps", "4", root=fmnist))
    half = train.main(run_args(tmp_path / "b", *common, "--max-steps", "2", root=fmnist))
    resumed = train.main(["--resume", str(half), "--max-steps", "4"])
    a = vk.VAE.load(straight / "last.safetensors")
    b = vk.VAE.load(resumed / "last.safetensors")
    assert isinstance(a.prior, vk.priors.MixtureOfGaussians) and a.prior.components == 3
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    torch.manual_seed(0)  # the trainer's seed: the same initial means
    fresh = vk.VAE(vk.presets.config("fmnist32"), prior=vk.priors.MixtureOfGaussians(3))
    assert not torch.equal(a.prior.means, fresh.prior.means)  # the prior learned
    rows = read_history(straight)
    assert all(math.isfinite(float(r["kl_raw"])) for r in rows)

    run = train.main(run_args(tmp_path / "c", *common, "--max-steps", "2", "--fit-prior",
                              "gmm:2:diag", root=fmnist))  # fmt: skip
    kept = vk.VAE.load(run / "best-mog.safetensors")
    fitted = vk.VAE.load(run / "best.safetensors")
    assert isinstance(kept.prior, vk.priors.MixtureOfGaussians)
    assert isinstance(fitted.prior, vk.priors.GaussianMixture)
    assert fitted.prior.covariance == "diag"
    # a resumed run that finishes again fits again, from the learned prior's model
    again = train.main(["--resume", str(run), "--max-steps", "3"])
    assert again == run
    assert isinstance(vk.VAE.load(run / "best.safetensors").prior, vk.priors.GaussianMixture)
    assert isinstance(vk.VAE.load(run / "best-mog.safetensors").prior, vk.priors.MixtureOfGaussians)


def test_vamp_prior_starts_from_training_images_and_is_reported(tmp_path, fmnist):
    run = train.main(run_args(tmp_path, "--prior", "vamp:4", "--max-steps", "2", root=fmnist))
    vae = vk.VAE.load(run / "last.safetensors")
    assert isinstance(vae.prior, vk.priors.VampPrior)
    u = vae.prior.pseudo_inputs.detach()
    assert u.shape == (4, 1, 32, 32) and bool((u[:, :, :2] < 0.05).all())  # the padding border
    assert json.loads((run / "config.json").read_text())["args"]["prior"] == "vamp:4"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["prior"]["trained"]["name"] == "vamp" and "fitted" not in metrics["prior"]
    assert list(metrics["fid"]["fd_samples_by_prior"]) == ["vamp"]
    assert list(metrics["posterior_gap_by_prior"]) == ["vamp"]
    assert math.isfinite(metrics["neg_elbo_nats_per_dim"])  # the ELBO with the VampPrior
    assert "| prior | `vamp:4` (vamp), learned with the VAE |" in (run / "summary.md").read_text()


def test_fit_prior_needs_enough_training_images(tmp_path, fmnist):
    with pytest.raises(train.UsageError, match=r"--fit-prior gmm:200 fits on the 86 training "
                       r"images' latents and needs at least 200"):  # fmt: skip
        train.main(run_args(tmp_path, "--max-steps", "1", "--fit-prior", "gmm:200", root=fmnist))


USER_BLOCK = """
import torch.nn as nn
import vaekit as vk


@vk.blocks.register("test_import_block")
class DoubleConv(nn.Module):
    residual = False
    changes_channels = True

    def __init__(self, in_ch, out_ch, *, norm="group", act="silu"):
        super().__init__()
        self.body = nn.Sequential(vk.blocks.ConvNormAct(in_ch, out_ch, norm=norm, act=act),
                                  vk.blocks.ConvNormAct(out_ch, out_ch, norm=norm, act=act))

    def forward(self, x):
        return self.body(x)
"""


def test_import_registers_a_user_block_for_training_and_resume(tmp_path, fmnist):
    # a model config naming a block from the user's own file: --import makes it buildable, and
    # the option is saved with the run, so --resume imports it again
    (tmp_path / "my_blocks.py").write_text(USER_BLOCK)
    cfg = vk.presets.config("fmnist32").to_dict() | {"block": "test_import_block"}
    (tmp_path / "model.json").write_text(json.dumps(cfg))
    common = ["--model-config", str(tmp_path / "model.json"), "--data", "fashion-mnist",
              "--data-root", str(fmnist), "--eval-every", "100", "--no-final-metrics"]  # fmt: skip
    try:
        with pytest.raises(train.UsageError, match="test_import_block"):
            train.main(run_args(tmp_path, *common, "--max-steps", "1"))  # not registered yet
        run = train.main(run_args(tmp_path, *common, "--max-steps", "2",
                                  "--import", str(tmp_path / "my_blocks.py")))  # fmt: skip
        assert json.loads((run / "config.json").read_text())["args"]["imports"].endswith(".py")
        vk.blocks.unregister("test_import_block")  # as in a fresh process
        resumed = train.main(["--resume", str(run), "--max-steps", "3"])
        assert torch.load(resumed / "trainer_state.pt", weights_only=True)["step"] == 3
        assert vk.VAE.load(resumed / "last.safetensors").config.block == "test_import_block"
        with pytest.raises(train.UsageError, match=r"--import 'no_such_module_xyz' failed"):
            train.main(run_args(tmp_path, *common, "--import", "no_such_module_xyz"))
    finally:
        if "test_import_block" in vk.blocks.available():
            vk.blocks.unregister("test_import_block")
        sys.modules.pop("my_blocks", None)


def test_fit_prior_auto_chooses_by_heldout_log_likelihood(tmp_path, fmnist):
    assert specs.parse_prior("AUTO", "--fit-prior").is_auto
    with pytest.raises(ValueError, match=r"--prior 'auto': unknown prior 'auto'"):
        specs.parse_prior("auto", "--prior")
    run = train.main(run_args(tmp_path, "--max-steps", "3", "--fit-prior", "auto",
                              "--fid-samples", "0", root=fmnist))  # fmt: skip
    fitted = json.loads((run / "metrics.json").read_text())["prior"]["fitted"]
    sel = fitted["select"]
    names = [row["name"] for row in sel["table"]]
    assert sel["chosen"] in names and sel["criterion"] == "heldout_log_prob"
    assert (sel["num_fit"], sel["num_heldout"]) == (77, 9)  # 86 training images' latents
    best = max((r for r in sel["table"] if r["score"] is not None), key=lambda r: r["score"])
    assert best["name"] == sel["chosen"]
    assert fitted["spec"] == "auto" and fitted["name"] == "gmm"  # 86 latents: mixtures only
    assert fitted["fit_report"]["heldout_log_prob"] == pytest.approx(best["heldout_log_prob"])
    assert (run / "samples-gmm.png").stat().st_size > 0
    saved = vk.VAE.load(run / "best.safetensors").prior
    assert saved.fit_report == fitted["fit_report"]


def test_fit_prior_auto_chooses_by_sample_fd_where_the_run_measures_fds(tmp_path, fmnist, capsys):
    run = train.main(run_args(tmp_path, "--max-steps", "3", "--fit-prior", "auto", root=fmnist))
    sel = json.loads((run / "metrics.json").read_text())["prior"]["fitted"]["select"]
    assert sel["criterion"] == "score"  # the FD of decoded samples: lower is better
    best = min((r for r in sel["table"] if r["score"] is not None), key=lambda r: r["score"])
    assert best["name"] == sel["chosen"] and all(r["score"] > 0 for r in sel["table"])
    assert "has the best sample FD (against training images) of" in capsys.readouterr().out
