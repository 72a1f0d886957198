"""vk.runs: one reader of run folders (both trainers' layouts, sweeps), the history.csv format,
and the TensorBoard tags both trainers log (through any SummaryWriter-like object)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from explore_utils import make_run, metrics, tiny_vae

import vaekit as vk


def lightning_run(folder, vae, root="/data/fmnist"):
    """A run folder as examples/lightning/train.py writes it (config.json keys, .hydra/)."""
    folder.mkdir(parents=True)
    vae.save(folder / "best.safetensors")
    vae.save(folder / "last.safetensors")
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "config.yaml").write_text("seed: 0\n")
    config = {
        "trainer": "lightning",
        "args": {"data": {"name": "fashion-mnist", "root": root}, "seed": 0},
        "model": vae.config.to_dict(),
        "data": {"name": "fashion-mnist", "root": root, "channels": 1, "image_size": 16},
        "tensorboard": str(folder.parent / "tb_logs" / folder.name),
    }
    (folder / "config.json").write_text(json.dumps(config))
    vk.runs.write_history(folder / "history.csv", [
        {"step": 1, "epoch": 0, "split": "train", "beta": 0.0, "total": 0.7, "bce": 0.7},
        {"step": 2, "epoch": 0, "split": "val", "beta": 0.8, "total": 0.6, "psnr": 12.5},
    ])  # fmt: skip
    (folder.parent / "tb_logs" / folder.name).mkdir(parents=True)
    return folder


def test_history_round_trip_and_resume_cut(tmp_path):
    rows = [{"step": 1, "split": "train", "total": 0.5, "note": "x"},
            {"step": 5, "split": "val", "total": 0.25, "psnr": 20.0},
            {"step": 9, "split": "train", "total": 0.125}]  # fmt: skip
    path = tmp_path / "history.csv"
    vk.runs.write_history(path, rows)
    assert not (tmp_path / "history.csv.tmp").exists()  # written under a temporary name
    assert vk.runs.read_history(path) == rows
    assert vk.runs.read_history(path, up_to_step=5) == rows[:2]
    with pytest.raises(FileNotFoundError):
        vk.runs.read_history(tmp_path / "missing.csv")


def test_read_run_of_the_example_trainer(tmp_path):
    folder = make_run(
        tmp_path / "r", tiny_vae(), metrics=metrics(20.0, 9.0), data_root="/somewhere",
        history=[(10, "train", 0.6, 30.0), (20, "val", 0.52, 33.0)],
    )  # fmt: skip
    run = vk.runs.read_run(folder)
    assert run.name == "r" and run.checkpoint.name == "best.safetensors" and run.notes == []
    assert run.trainer == "train.py" and run.data == "fashion-mnist"
    assert run.data_root == "/somewhere" and run.metrics["psnr"] == 20.0
    assert run.series("train", "total") == [(10, 0.6 + 30.0 / 256)]
    assert run.series("val", "kl") == [(20, 33.0)]
    assert run.tensorboard is None and run.folder == folder
    vae = run.load_vae()
    assert isinstance(vae, vk.VAE) and vae.latent_shape == (4,)


def test_read_run_of_the_lightning_example(tmp_path):
    folder = lightning_run(tmp_path / "runs" / "20260101-000000-fmnist32", tiny_vae())
    run = vk.runs.read_run(folder)
    assert run.trainer == "lightning" and run.data == "fashion-mnist"
    assert run.data_root == "/data/fmnist"
    assert set(run.checkpoints) == {"best.safetensors", "last.safetensors"}
    assert run.series("val", "psnr") == [(2, 12.5)]
    assert run.tensorboard == tmp_path / "runs" / "tb_logs" / folder.name
    assert any("metrics.json" in note for note in run.notes)
    # events written into the folder itself (examples/train.py --tensorboard) win
    (folder / "events.out.tfevents.1.host").write_bytes(b"")
    assert vk.runs.read_run(folder).tensorboard == folder


def test_a_bare_model_file_and_what_is_refused(tmp_path):
    tiny_vae().save(tmp_path / "m.safetensors")
    run = vk.runs.read_run(tmp_path / "m.safetensors")
    assert run.name == "m" and run.folder is None and run.trainer is None and run.history == []
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        vk.runs.read_run(tmp_path / "nothing")
    (tmp_path / "model.ckpt").write_bytes(b"pickle")
    with pytest.raises(ValueError, match=r"never pickles such as \.pt or \.ckpt"):
        vk.runs.read_run(tmp_path / "model.ckpt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"not a vaekit run: it has no best\.safetensors or last"):
        vk.runs.read_run(tmp_path / "empty")


def test_a_sweep_folder_names_its_runs(tmp_path):
    sweep = tmp_path / "20260101-000000-sweep"
    for job in ("0-fmnist32-constant", "1-fmnist32-cyclical"):
        lightning_run(sweep / job, tiny_vae())
    (sweep / ".hydra").mkdir(exist_ok=True)  # hidden folders are not searched
    assert [p.name for p in vk.runs.find_runs(sweep)] == [
        "0-fmnist32-constant",
        "1-fmnist32-cyclical",
    ]
    with pytest.raises(ValueError, match=r"holds 2 run folder\(s\): 0-fmnist32-constant, 1-"):
        vk.runs.read_run(sweep)
    assert vk.runs.find_runs(sweep / "0-fmnist32-constant") == [sweep / "0-fmnist32-constant"]
    assert vk.runs.find_runs(tmp_path / "missing") == []


def test_unreadable_files_become_notes(tmp_path):
    folder = make_run(tmp_path / "r", tiny_vae())
    (folder / "metrics.json").write_text("{not json")
    (folder / "config.json").write_text("[1, 2]")
    run = vk.runs.read_run(folder)
    assert run.metrics == {} and run.config == {}
    assert any("metrics.json is unreadable" in n for n in run.notes)
    assert any("config.json is not a JSON object" in n for n in run.notes)


class Recorder:
    """A SummaryWriter stand-in that keeps what it is given."""

    def __init__(self):
        self.calls = []

    def add_scalar(self, tag, value, step):
        self.calls.append(("scalar", tag, value, step))

    def add_histogram(self, tag, values, step):
        self.calls.append(("histogram", tag, values, step))

    def add_image(self, tag, image, step, dataformats="CHW"):
        self.calls.append(("image", tag, image, step))


def test_scalar_tags():
    res = vk.LossOutput(
        torch.tensor(0.5), {"recon": torch.tensor(0.25), "kl": torch.tensor(3.0)}, 0.1
    )
    tags = vk.runs.scalar_tags("train", {"total": res.total, **res.terms, "beta": res.beta})
    assert tags == {"train/total": 0.5, "train/recon": 0.25, "train/kl": 3.0, "train/beta": 0.1}
    assert vk.runs.scalar_tags("val", {"map": torch.ones(3), "flag": True}) == {}
    with pytest.raises(ValueError, match="split must be a name without '/'"):
        vk.runs.scalar_tags("train/", {})


def test_snapshot_measures_draws_and_writes():
    vae = tiny_vae()
    vae.train()
    x = torch.rand(6, 1, 16, 16)
    snap = vk.runs.snapshot(vae, x, seed=3)
    assert vae.training  # its mode back
    assert set(snap.scalars) == {"val/psnr", "val/ssim", "latent/active_units", "latent/kl_mean"}
    assert 0 <= snap.scalars["latent/active_units"] <= 4 and -1 <= snap.scalars["val/ssim"] <= 1
    kl = snap.histograms["latent/kl_per_dim"]
    assert kl.shape == (4,) and torch.allclose(kl.double(), vk.metrics.kl_per_dim(vae, x).double())
    assert tuple(snap.images) == vk.runs.IMAGE_TAGS
    for image in snap.images.values():
        assert image.dim() == 3 and image.shape[0] == 1 and 0 <= image.min() <= image.max() <= 1
    again = vk.runs.snapshot(vae, x, seed=3)  # the same weights and seed: the same pictures
    assert all(torch.equal(again.images[t], snap.images[t]) for t in snap.images)
    writer = Recorder()
    snap.write(writer, 7)
    kinds = [(kind, tag) for kind, tag, _, step in writer.calls if step == 7]
    assert len(kinds) == len(writer.calls) == 4 + 1 + 3
    assert ("histogram", "latent/kl_per_dim") in kinds


def test_snapshot_bad_input():
    vae = tiny_vae()
    with pytest.raises(ValueError, match="at least 2 images"):
        vk.runs.snapshot(vae, torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="4-D"):
        vk.runs.snapshot(vae, torch.rand(1, 16, 16))
    with pytest.raises(TypeError, match=r"SummaryWriter .* without add_histogram"):
        vk.runs.Snapshot().write(type("W", (), {"add_scalar": print})(), 0)


def test_spatial_latents_and_small_images():
    vae = tiny_vae(latent="spatial", size=8)
    snap = vk.runs.snapshot(vae, torch.rand(3, 1, 8, 8))  # SSIM window shrinks to 7 px
    assert snap.histograms["latent/kl_per_dim"].numel() == math.prod(vae.latent_shape)
    assert snap.images["images/traversal"].shape[-1] > 0


def test_import_vaekit_imports_no_training_framework():
    code = (
        "import sys, vaekit, vaekit.runs, vaekit.explore; "
        "print(','.join(m for m in ('lightning', 'pytorch_lightning', 'hydra', 'omegaconf', "
        "'tensorboard', 'torch.utils.tensorboard', 'gradio') if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "", f"import vaekit imported {res.stdout.strip()}"
