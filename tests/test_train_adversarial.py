"""examples/train.py --adversarial: the spec, the discriminator's step, history.csv, exact resume,
a user's discriminator, DDP and errors.

Runs happen in this process (``main(argv)``) on fake Fashion-MNIST (86 train images, 5 steps
per epoch at batch 16) with an 8-wide PatchGAN; the DDP run and the command-line error use
subprocesses.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from trainer_utils import TRAIN, fake_fashion_mnist, trainer

import vaekit as vk

train = trainer()  # examples/train.py; also puts examples/ on sys.path for trainlib
from trainlib import options, specs  # noqa: E402

SMALL = "patchgan:width=8"  # 44 k parameters: milliseconds per step at 32 px


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    return fake_fashion_mnist(tmp_path_factory.mktemp("fmnist"))


def run_args(tmp_path, root, *extra: str) -> list[str]:
    return ["--out", str(tmp_path / "runs"), "--batch-size", "16", "--log-every", "1",
            "--preset", "fmnist32", "--data", "fashion-mnist", "--data-root", str(root),
            "--no-final-metrics", "--image-every", "0", *extra]  # fmt: skip


def read_history(run) -> list[dict]:
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def _state(run) -> dict:
    return torch.load(run / "trainer_state.pt", weights_only=True)


# -- the spec -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "disc_kwargs", "options_", "start_step"),
    [
        ("patchgan", {}, {"weight": 0.5, "loss": "hinge", "lr": 2e-4, "betas": (0.5, 0.9),
                          "weight_decay": 0.0, "adaptive": True, "r1": 0.0}, 0),
        ("patchgan:weight=0.5,start=0.3ep,loss=hinge,lr=2e-4,width=32,layers=3,norm=batch,r1=0,"
         "spectral_norm=false",
         {"width": 32, "layers": 3, "norm": "batch", "spectral_norm": False},
         {"weight": 0.5, "lr": 2e-4, "r1": 0.0}, 3),  # 0.3 of 10 steps per epoch
        ("PatchGAN:start=1000,loss=non_saturating,betas=(0.0,0.99),norm=none,r1_gamma=10",
         {"norm": None}, {"loss": "non_saturating", "betas": (0.0, 0.99), "r1": 10.0}, 1000),
        ({"name": "patchgan", "start": "2ep", "width": 8, "adaptive": False, "weight": 0.1},
         {"width": 8}, {"adaptive": False, "weight": 0.1}, 20),
    ],
)  # fmt: skip
def test_adversarial_specs_parse(text, disc_kwargs, options_, start_step):
    spec = specs.parse_adversarial(text)
    assert spec.name == "patchgan" and spec.discriminator_kwargs == disc_kwargs
    assert {k: spec.options[k] for k in options_} == options_
    assert spec.start_step(10) == start_step
    disc = spec.build_discriminator(1)
    assert isinstance(disc, vk.discriminators.PatchGAN) and disc.in_channels == 1
    assert specs.parse_adversarial("none") is None and specs.parse_adversarial(None) is None


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("patchgun", ValueError, r"--adversarial 'patchgun': unknown discriminator 'patchgun': "
         r"expected one of \['patchgan'\]; did you mean 'patchgan'\?"),
        ("patchgan:wieght=1", ValueError, r"unknown option 'wieght'; did you mean 'weight'\? "
         r"\(adversarial term and optimiser: weight, start, loss.*; patchgan: width, layers, "
         r"norm, act, spectral_norm\)"),
        ("patchgan:weight=-1", ValueError, r"weight must be >= 0, got -1"),
        ("patchgan:weight=true", TypeError, r"weight must be a number, got bool"),
        ("patchgan:loss=bce", ValueError, r"loss must be one of \['hinge', 'non_saturating', "
         r"'least_squares'\], got 'bce'"),
        ("patchgan:lr=0", ValueError, r"lr must be > 0, got 0"),
        ("patchgan:betas=(0.5,1)", ValueError, r"betas must be >= 0 and < 1, got 1"),
        ("patchgan:betas=0.5", ValueError, r"betas must be two numbers like \(0.5,0.9\)"),
        ("patchgan:start=3eps", ValueError, r"start must be a length like 1000"),
        ("patchgan:adaptive=1", TypeError, r"adaptive must be true or false"),
        ("patchgan:in_channels=3", ValueError, r"in_channels is set from the model's channels"),
        ("patchgan:width", ValueError, r"expected NAME\[:KEY=VALUE,...\], got 'width'"),
        ("patchgan:width=8,width=16", ValueError, r"'width' is given twice"),
        ({"width": 8}, ValueError, r"a dict needs the discriminator's name"),
        ("", TypeError, r"--adversarial must be a discriminator name with options"),
    ],
)  # fmt: skip
def test_bad_adversarial_specs_say_what_is_expected(text, error, message):
    with pytest.raises(error, match=message):
        specs.parse_adversarial(text)


def test_adversarial_option_is_parsed_with_the_others_and_documented(tmp_path):
    argv = ["--preset", "fmnist32", "--data", str(tmp_path / "nowhere")]
    with pytest.raises(ValueError, match=r"--adversarial 'patchgun'.*did you mean 'patchgan'"):
        options.parse([*argv, "--adversarial", "patchgun"])
    args = options.parse([*argv, "--adversarial", SMALL])
    assert args.adversarial_spec.discriminator_kwargs == {"width": 8}
    assert options.to_json(args)["adversarial"] == SMALL  # what a resumed run reads back
    assert options.parse(argv).adversarial_spec is None  # off by default
    cfg = tmp_path / "recipe.json"
    cfg.write_text(json.dumps({"adversarial": {"name": "patchgan", "start": "0.3ep"}}))
    assert options.parse([*argv, "--config", str(cfg)]).adversarial_spec.options["start"] == (
        specs.parse_length("0.3ep", "x")
    )
    text = " ".join(options.build_parser().format_help().split())
    for default in ("weight=0.5", "start=0", "loss=hinge", "lr=2e-4", "betas=(0.5,0.9)",
                    "weight_decay=0", "--import"):  # fmt: skip
        assert default in text, default


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("patchgan:width=0", r"--adversarial 'patchgan:width=0': width must be >= 1, got 0"),
        ("patchgan:norm=bogus", r"unknown norm 'bogus'; valid names are \['group', 'batch'"),
        ("patchgan:layers=4", r"the patchgan discriminator needs images of at least 48x48 "
         r"pixels, the model's are 32x32; use fewer layers \(layers=3 needs 24\)"),
    ],
)  # fmt: skip
def test_bad_discriminators_fail_before_the_data(tmp_path, spec, message):
    # the data root does not exist: the discriminator is built and tried first
    with pytest.raises(train.UsageError, match=message):
        train.main(run_args(tmp_path, tmp_path / "nowhere", "--adversarial", spec))


# -- training -----------------------------------------------------------------------------------
def _equal_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_adversarial_trains_logs_and_resumes_exactly(tmp_path, fmnist):
    """The discriminator trains from its start on, history.csv logs its terms, validation only
    reports them, and N steps == N/2 + --resume N/2 (VAE, discriminator, its optimiser and
    every logged number, bit for bit)."""
    common = ["--adversarial", f"{SMALL},start=0.4ep", "--eval-every", "3", "--hflip",
              "--epochs", "3"]  # fmt: skip
    straight = train.main(run_args(tmp_path / "a", fmnist, *common, "--max-steps", "6"))

    config = json.loads((straight / "config.json").read_text())
    assert config["args"]["adversarial"] == f"{SMALL},start=0.4ep"
    adv = config["adversarial"]
    assert (adv["discriminator"], adv["discriminator_kwargs"], adv["start_step"]) == (
        "patchgan",
        {"width": 8},
        2,  # 0.4 of 5 steps per epoch
    )
    assert adv["optimizer"] == {"name": "AdamW", "lr": 2e-4, "betas": [0.5, 0.9],
                                "weight_decay": 0.0}  # fmt: skip
    assert adv["parameters"] == sum(
        p.numel() for p in vk.discriminators.PatchGAN(1, 8).parameters()
    )

    rows = read_history(straight)
    train_rows = [r for r in rows if r["split"] == "train"]
    assert [int(r["step"]) for r in train_rows] == [1, 2, 3, 4, 5, 6]
    columns = ("adv", "adv_weight", "d_loss", "logits_real", "logits_fake")
    for row in train_rows:
        values = {k: float(row[k]) for k in columns}
        if int(row["step"]) <= 2:  # steps 0 and 1: before the start, nothing runs
            assert all(v == 0 for v in values.values()), row
        else:
            assert all(math.isfinite(v) for v in values.values()), row
            assert values["adv_weight"] > 0 and values["d_loss"] > 0, row
            # the term is in the VAE's objective: total = recon + β·KL/D_x + λ·L_G
            expected = (float(row["recon"]) + float(row["kl"]) / 1024
                        + values["adv_weight"] * values["adv"])  # fmt: skip
            assert float(row["total"]) == pytest.approx(expected, rel=1e-5), row
    # validation reports the generator loss with weight 0: its total is recon + β·KL/D_x,
    # the number best.safetensors and early stopping compare, as without the term
    val_rows = [r for r in rows if r["split"] == "val"]
    assert [int(r["step"]) for r in val_rows] == [3, 6]
    for row in val_rows:
        assert float(row["adv_weight"]) == 0 and math.isfinite(float(row["adv"]))
        assert row["d_loss"] == ""  # the discriminator's loss is a training number
        expected = float(row["recon"]) + float(row["kl"]) / 1024
        assert float(row["total"]) == pytest.approx(expected, rel=1e-6)

    state = _state(straight)
    assert {"discriminator", "d_optimizer", "d_scaler"} <= set(state)
    adam = state["d_optimizer"]["state"][0]
    assert int(adam["step"]) == 4  # steps 2..5 trained the discriminator
    torch.manual_seed(0)  # the trainer's seed: the initial discriminator
    initial = vk.discriminators.PatchGAN(1, width=8).state_dict()
    assert not _equal_state(state["discriminator"], initial)

    half = train.main(run_args(tmp_path / "b", fmnist, *common, "--max-steps", "3"))
    resumed = train.main(["--resume", str(half), "--max-steps", "6"])
    assert resumed == half
    a = vk.VAE.load(straight / "last.safetensors").state_dict()
    b = vk.VAE.load(resumed / "last.safetensors").state_dict()
    assert _equal_state(a, b), "resumed VAE weights differ"
    resumed_state = _state(resumed)
    assert _equal_state(state["discriminator"], resumed_state["discriminator"])
    exp_avg = [s["exp_avg"] for s in state["d_optimizer"]["state"].values()]
    assert all(torch.equal(x, s["exp_avg"]) for x, s in
               zip(exp_avg, resumed_state["d_optimizer"]["state"].values()))  # fmt: skip
    keys = ("step", "total", "adv", "adv_weight", "d_loss", "logits_real", "logits_fake")
    assert [tuple(r[k] for k in keys) for r in read_history(straight)] == [
        tuple(r[k] for k in keys) for r in read_history(resumed)
    ]

    # a discriminator of another shape cannot continue this run
    with pytest.raises(train.UsageError, match=r"the saved discriminator does not fit "
                       r"--adversarial 'patchgan:width=16'.*size mismatch"):  # fmt: skip
        train.main(["--resume", str(half), "--max-steps", "7", "--adversarial",
                    "patchgan:width=16"])  # fmt: skip


USER_DISCRIMINATOR = """
import torch
import vaekit as vk


@vk.discriminators.register("test_user_disc")
class MeanDisc(torch.nn.Module):
    def __init__(self, in_channels, hidden=4):
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.head = torch.nn.Linear(hidden, 1)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))
"""


@pytest.mark.filterwarnings("ignore:--amp bf16 on CPU")
def test_a_user_discriminator_with_r1_under_bf16_autocast(tmp_path, fmnist, capsys):
    """--import registers it (before the spec is read), options go to its constructor, R1 and
    bf16 autocast work, and a plain run continued with --adversarial gets a fresh one."""
    (tmp_path / "my_disc.py").write_text(USER_DISCRIMINATOR)
    spec = "test_user_disc:hidden=6,loss=non_saturating,r1=1"
    try:
        run = train.main(run_args(tmp_path, fmnist, "--import", str(tmp_path / "my_disc.py"),
                                  "--adversarial", spec, "--amp", "bf16", "--max-steps", "2",
                                  "--eval-every", "2"))  # fmt: skip
        rows = [r for r in read_history(run) if r["split"] == "train"]
        assert all(math.isfinite(float(r[k])) and float(r[k]) != 0
                   for r in rows for k in ("d_loss", "r1", "adv_weight"))  # fmt: skip
        state = _state(run)
        assert state["discriminator"]["conv.weight"].shape == (6, 1, 3, 3)
        assert json.loads((run / "config.json").read_text())["adversarial"]["r1_gamma"] == 1.0
        vk.discriminators.unregister("test_user_disc")  # as in a fresh process
        resumed = train.main(["--resume", str(run), "--max-steps", "3"])
        assert _state(resumed)["step"] == 3
    finally:
        if "test_user_disc" in vk.discriminators.available():
            vk.discriminators.unregister("test_user_disc")
        sys.modules.pop("my_disc", None)

    plain = train.main(run_args(tmp_path / "plain", fmnist, "--max-steps", "1"))
    capsys.readouterr()
    train.main(["--resume", str(plain), "--max-steps", "2", "--adversarial", SMALL,
                "--final-metrics", "--fid-samples", "0", "--iwae-images", "4",
                "--iwae-k", "2"])  # fmt: skip
    assert "the resumed run had no discriminator" in capsys.readouterr().out
    assert "discriminator" in _state(plain)
    assert float(read_history(plain)[-2]["d_loss"]) > 0  # the train row of step 2
    summary = (plain / "summary.md").read_text()
    assert f"free bits 0, adversarial `{SMALL}` from step 0 |" in summary


def test_command_line_adversarial_error_is_one_line(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("VAEKIT_DEBUG", None)
    cmd = [sys.executable, str(TRAIN), "--preset", "fmnist32", "--data", "fashion-mnist",
           "--adversarial", "patchgun:width=8"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 2
    assert res.stderr.startswith(
        "train.py: error: --adversarial 'patchgun:width=8': unknown discriminator 'patchgun': "
        "expected one of ['patchgan']; did you mean 'patchgan'?"
    )
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1


@pytest.mark.slow
def test_adversarial_under_ddp_two_cpu_processes(tmp_path, fmnist):
    """torchrun with 2 gloo processes: the discriminator is a DDP module too (its two calls in
    the discriminator's step, R1's double backward), and both ranks finish."""
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(TRAIN), "--preset", "fmnist32", "--data", "fashion-mnist", "--data-root",
           str(fmnist), "--batch-size", "8", "--max-steps", "4", "--eval-every", "2",
           "--log-every", "1", "--out", str(out), "--no-final-metrics", "--image-every", "0",
           "--device", "cpu", "--adversarial", f"{SMALL},start=1,r1=1"]  # fmt: skip
    # TMPDIR: torchrun's agent leaves a torchelastic_* folder in the temp folder
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log
    assert "[train] rank 0 finished at step 4" in log
    assert "[train] rank 1 finished at step 4" in log
    (run,) = out.iterdir()
    state = _state(run)
    assert int(state["d_optimizer"]["state"][0]["step"]) == 3  # steps 1..3
    rows = [r for r in read_history(run) if r["split"] == "train"]
    assert all(math.isfinite(float(r["d_loss"])) and float(r["r1"]) > 0 for r in rows[1:])
