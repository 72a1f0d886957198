"""examples/lightning: Hydra configs, a LightningModule of vaekit parts, TensorBoard logs.

The script runs for a few steps on fake Fashion-MNIST files in subprocesses (one run, a Hydra
multirun of two schedules, a 2-process DDP run on CPU with gloo), and the event files are read
back with TensorBoard's own reader. The module's β is checked in this process. Errors (a bad
override, a missing extra, a bad value) are one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from tensorboard_utils import check_events, read_events
from trainer_utils import EXAMPLES, fake_fashion_mnist, write_images

import vaekit as vk

SCRIPT = EXAMPLES / "lightning" / "train.py"
for name in ("lightning", "hydra", "tensorboard"):
    pytest.importorskip(name, reason='examples/lightning needs pip install -e ".[lightning]"')
pytestmark = pytest.mark.xdist_group("lightning")  # subprocesses: one worker runs them all

LATENT = 8  # a small fmnist32: widths (8, 16), latent 8
SMALL = ["trainer=smoke", "model.config.widths=[8,16]", f"model.config.latent_dim={LATENT}",
         "data.batch_size=16", "tensorboard.images=8"]  # fmt: skip


def script(tmp, root, *overrides, expect=0, timeout=300):
    """Run examples/lightning/train.py in ``tmp`` (runs/ and tb_logs/ land there)."""
    flags = [o for o in overrides if o.startswith("-")]  # before the overrides, as Hydra wants
    given = [o for o in overrides if not o.startswith("-")]
    cmd = [sys.executable, str(SCRIPT), *flags, f"data.root={root}", *SMALL, *given]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    res = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout, env=env)
    assert res.returncode == expect, res.stdout[-3000:] + res.stderr[-5000:]
    return res


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return fake_fashion_mnist(tmp_path_factory.mktemp("fmnist"))


@pytest.fixture(scope="module")
def one_run(tmp_path_factory, data):
    """`model=fmnist32 loss.beta=0.8` (linear warm-up) with a GMM fitted at the end."""
    tmp = tmp_path_factory.mktemp("lightning-run")
    script(tmp, data, "model=fmnist32", "loss.beta=0.8", "fit_prior={name: gmm, components: 2}")
    (run,) = (tmp / "runs").iterdir()
    return tmp, run


def test_a_run_logs_every_tag_and_writes_a_run_folder(one_run):
    tmp, run = one_run
    assert run.name.endswith("-fmnist32-linear-beta0.8")
    config = json.loads((run / "config.json").read_text())
    assert config["trainer"] == "lightning" and config["args"]["loss"]["beta"] == 0.8
    assert config["model"]["latent_dim"] == LATENT and config["beta_final"] == 0.8
    events = tmp / "tb_logs" / run.name  # tb_logs/<the run folder's name>
    assert config["tensorboard"] == str(events.resolve())
    acc = read_events(events)
    check_events(acc, last_step=4, latent_dims=LATENT)
    # β follows global_step through the linear warm-up to 0.8 over 2000 steps
    schedule = vk.schedules.Linear(0.0, 0.8, steps=2000)
    betas = [e.value for e in acc.Scalars("train/beta")]
    assert betas == sorted(betas) and len(betas) >= 3
    assert betas == pytest.approx([schedule(s) for s in range(len(betas))], rel=1e-5, abs=1e-9)
    assert {e.step for e in acc.Scalars("val/total")} == {2, 4}
    # the run folder: what vk.runs and the explorer read
    info = vk.runs.read_run(run)
    assert info.trainer == "lightning" and info.tensorboard == events.resolve()
    assert [s for s, _ in info.series("val", "total")] == [2, 4]
    assert [s for s, _ in info.series("train", "total")] == [1, 2, 3, 4]
    assert {"best.safetensors", "last.safetensors"} <= set(info.checkpoints)
    metrics = info.metrics
    assert metrics["run"]["steps"] == 4 and metrics["run"]["trainer"] == "lightning"
    assert len(metrics["kl_per_dim"]["values"]) == LATENT and 0 <= metrics["active_units"] <= 8
    assert metrics["run"]["prior"]["fitted"]["name"] == "gmm"
    best = info.load_vae()
    assert isinstance(best.prior, vk.priors.GaussianMixture)  # the fitted prior travels along
    assert best.sample(2).shape == (2, 1, 32, 32)
    assert not any(p.suffix in (".ckpt", ".pt") for p in run.rglob("*"))  # no pickles written


def test_the_explorer_opens_a_lightning_run(one_run, data):
    from vaekit import explore
    from vaekit.explore.__main__ import expand

    _, run = one_run
    ex = explore.Explorer()
    opened = ex.open(run)
    assert "with Lightning" in opened.describe() and "GaussianMixture" in opened.describe()
    assert opened.data == "fashion-mnist" and opened.data_root == str(data)
    test = ex.test_images(opened.name)  # the run's own data, found through config.json
    assert test.images is not None and test.images.shape[1:] == (1, 32, 32)
    assert explore.curves_figure([opened.history], [opened.name]).size > 0
    rows = explore.metrics_rows([opened.metrics])
    assert any(r.name == "psnr" for r in rows)
    assert expand([str(run.parent)]) == [str(run)]  # runs/ opens as the runs inside it


def test_a_multirun_sweeps_two_schedules(tmp_path, data):
    script(tmp_path, data, "-m", "schedule=constant,cyclical", "loss.beta=0.5")
    (sweep,) = (tmp_path / "runs").iterdir()
    jobs = vk.runs.find_runs(sweep)
    assert [j.name for j in jobs] == ["0-fmnist32-constant-beta0.5", "1-fmnist32-cyclical-beta0.5"]
    constant, cyclical = (read_events(tmp_path / "tb_logs" / sweep.name / j.name) for j in jobs)
    assert {e.value for e in constant.Scalars("train/beta")} == {0.5}
    betas = [e.value for e in cyclical.Scalars("train/beta")]
    assert betas[0] == 0.0 and betas == sorted(betas) and betas[-1] < 0.5
    for job in jobs:
        assert json.loads((job / "config.json").read_text())["args"]["schedule"]["name"] in (
            "constant",
            "cyclical",
        )


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path, data):
    res = script(tmp_path, data, "trainer.strategy=ddp", "trainer.devices=2",
                 "trainer.accelerator=cpu", "trainer.max_epochs=2")  # fmt: skip
    (run,) = (tmp_path / "runs").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["run"]["world_size"] == 2 and metrics["run"]["steps"] == 4
    acc = read_events(tmp_path / "tb_logs" / run.name)
    check_events(acc, last_step=4, latent_dims=LATENT)
    assert vk.VAE.load(run / "best.safetensors").latent_shape == (LATENT,)
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=fmnist33"], "model=fmnist33: no config 'fmnist33' in group 'model'; did you "
         "mean model=fmnist32?"),
        (["loss.bet=0.8"], "loss.bet=0.8: no key 'bet' in loss; did you mean loss.beta?"),
        (["-m", "schedule=constant,cyclicl"], "schedule=cyclicl: no config 'cyclicl' in group "
         "'schedule'; did you mean schedule=cyclical?"),
    ],
)  # fmt: skip
def test_a_bad_override_is_one_line(tmp_path, overrides, message):
    res = script(tmp_path, "/nowhere", *overrides, expect=2)
    assert res.stderr.startswith(f"train.py: error: {message}"), res.stderr
    assert res.stderr.count("\n") == 1 and not (tmp_path / "runs").exists()


def test_a_bad_value_is_one_line(tmp_path):
    res = script(tmp_path, tmp_path / "no-fmnist", "loss=l1_ssim", "loss.terms.ssim=-1", expect=2)
    assert res.stderr == (
        "train.py: error: loss.terms.ssim: the weight must be a number >= 0, got -1\n"
    )


def test_a_missing_extra_is_one_line(tmp_path):
    code = (
        "import runpy, sys; sys.modules['hydra'] = None; sys.argv = ['train.py']; "
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr == (
        "train.py: error: examples/lightning needs the lightning extra (hydra missing): pip "
        'install -e ".[lightning]" (from the vaekit clone), or pip install lightning '
        "hydra-core tensorboard\n"
    )


# -- in this process: the module's β and the data module --------------------------------------
@pytest.fixture(scope="module")
def example():
    sys.path.insert(0, str(EXAMPLES / "lightning"))
    try:
        import data_module
        import vae_module
    finally:
        sys.path.remove(str(EXAMPLES / "lightning"))
    return vae_module, data_module


def test_beta_follows_optimizer_steps_under_accumulation(example):
    """accumulate_grad_batches=2: β moves once per two batches (global_step counts steps)."""
    import lightning as L

    vae_module, _ = example
    module = vae_module.VAEModule(
        model={"preset": None, "config": {"in_channels": 1, "image_size": 16, "widths": [4, 8],
                                          "latent_dim": 3, "attention_at": []}},
        loss={"terms": {"bce": 1.0}, "beta": 1.0},
        schedule={"name": "linear", "start": 0.0, "end": 1.0, "steps": 10},
    )  # fmt: skip
    seen = []

    class Watch(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(outputs["values"]["beta"])

    loader = torch.utils.data.DataLoader(torch.rand(12, 1, 16, 16), batch_size=2)
    trainer = L.Trainer(max_steps=3, accumulate_grad_batches=2, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[Watch()])  # fmt: skip
    trainer.fit(module, train_dataloaders=loader)
    assert trainer.global_step == 3
    assert seen == pytest.approx([0.0, 0.0, 0.1, 0.1, 0.2, 0.2])


def test_weight_decay_spares_a_learned_prior(example):
    vae_module, _ = example
    module = vae_module.VAEModule(
        model={"preset": "fmnist32", "config": {"widths": [4, 8], "latent_dim": 4},
               "prior": {"name": "mog", "components": 3}},
        loss={"terms": {"gaussian_nll": {"weight": 1.0, "sigma": "learned"}}, "beta": 1.0},
        schedule={"name": "constant", "v": 1.0},
        optimizer={"lr": 1e-3, "weight_decay": 0.1, "betas": [0.9, 0.99]},
    )  # fmt: skip
    decayed, spared = module.configure_optimizers().param_groups
    prior_ids = {id(p) for p in module.vae.prior.parameters()}
    loss_ids = {id(p) for p in module.loss_fn.parameters()}
    assert decayed["weight_decay"] == 0.1 and spared["weight_decay"] == 0.0
    assert {id(p) for p in spared["params"]} == prior_ids | loss_ids and prior_ids and loss_ids
    assert not prior_ids & {id(p) for p in decayed["params"]}


def test_configs_build_what_they_name(example):
    vae_module, _ = example
    assert vae_module.build_vae_config({"preset": "fmnist32", "config": {"latent_dim": None}}) == (
        vk.presets.config("fmnist32")
    )
    recon = vae_module.build_recon({"l1": 1.0, "ssim": 0.5})
    assert isinstance(recon, vk.losses.Weighted)
    with pytest.raises(ValueError, match="the weight must be a number >= 0"):
        vae_module.build_recon({"l1": -1})
    with pytest.raises(ValueError, match=r"model\.preset is null and model\.config is empty"):
        vae_module.build_vae_config({"preset": None, "config": {"latent_dim": None}})
    with pytest.raises(ValueError, match="fit_prior must be null or a mapping with a 'name'"):
        vae_module.build_prior({"components": 3}, "fit_prior")


def test_data_module_over_a_folder_of_images(example, tmp_path):
    _, data_module = example
    folder = write_images(tmp_path / "images", 20, (20, 24), "RGB")
    cfg = vk.VAEConfig(in_channels=3, image_size=16, widths=(4, 8), latent_dim=3, attention_at=())
    dm = data_module.VAEDataModule.from_config(
        {"name": "folder", "root": str(folder), "val_fraction": 0.25, "batch_size": 4,
         "num_workers": 0, "image_size": None, "channels": None}, cfg, seed=0,
    )  # fmt: skip
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set)) == (15, 5)
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (4, 3, 16, 16) and 0 <= batch.min() <= batch.max() <= 1
    assert dm.describe()["name"] == str(folder)
    with pytest.raises(ValueError, match=r"data\.image_size 32 but the model takes 16x16"):
        data_module.VAEDataModule.from_config(
            {"name": "folder", "root": str(folder), "image_size": 32}, cfg, seed=0
        )
    with pytest.raises(ValueError, match="Fashion-MNIST is grayscale"):
        data_module.VAEDataModule.from_config({"name": "fashion-mnist"}, cfg, seed=0)
    with pytest.raises(ValueError, match=r"data=folder needs data\.root=PATH"):
        data_module.VAEDataModule("folder", channels=3, image_size=16, root="???")
    missing = data_module.VAEDataModule("fashion-mnist", channels=1, image_size=32, root="/no")
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST not found"):
        missing.setup("fit")
