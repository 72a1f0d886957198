"""Fashion-MNIST reader and the quickstart main job (examples/train.py), on small IDX files
the test writes."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vaekit as vk

ROOT = Path(__file__).resolve().parent.parent


def write_idx(path: Path, array: np.ndarray) -> None:
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.fixture
def fake_fmnist(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 96), ("t10k", 40)):
        write_idx(
            tmp_path / f"{split}-images-idx3-ubyte.gz",
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        )
        write_idx(
            tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,), dtype=np.uint8)
        )
    return tmp_path


def test_load_fashion_mnist(fake_fmnist):
    x, y = vk.data.load_fashion_mnist("train", root=fake_fmnist)
    assert x.shape == (96, 1, 32, 32) and x.dtype == torch.float32 and y.shape == (96,)
    assert x.min() >= 0 and x.max() <= 1
    assert x[:, :, :2].abs().sum() == 0  # zero padding 28 -> 32, centred
    raw = vk.data.read_idx(fake_fmnist / "train-images-idx3-ubyte.gz")
    torch.testing.assert_close(x[:, 0, 2:30, 2:30], torch.from_numpy(raw / 255.0).float())
    x28, _ = vk.data.load_fashion_mnist("test", root=fake_fmnist, pad_to=None, limit=5)
    assert x28.shape == (5, 1, 28, 28)


def test_bad_data_errors(fake_fmnist, tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        vk.data.load_fashion_mnist(root=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split must be one of"):
        vk.data.load_fashion_mnist("val", root=fake_fmnist)
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + struct.pack(">3I", 10, 28, 28) + b"\x00" * 100)
    with pytest.raises(ValueError, match="truncated"):
        vk.data.read_idx(bad)
    with pytest.raises(ValueError, match="pad_to must be >= 28"):
        vk.data.load_fashion_mnist(root=fake_fmnist, pad_to=20)


@pytest.mark.slow
def test_quickstart_main_job_runs(fake_fmnist, tmp_path):
    """What scripts/quickstart.sh runs: examples/train.py with the fmnist32 recipe."""
    out = tmp_path / "runs"
    cmd = [sys.executable, str(ROOT / "examples" / "train.py"),
           "--config", str(ROOT / "examples" / "recipes" / "fmnist32.json"), "--name", "quickstart",
           "--data-root", str(fake_fmnist), "--max-steps", "3", "--batch-size", "8",
           "--minutes", "5", "--fid-samples", "16", "--iwae-images", "4", "--iwae-k", "2",
           "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    (run,) = out.iterdir()
    assert run.name.endswith("-quickstart")
    for name in ("samples.png", "reconstructions.png", "best.safetensors", "last.safetensors",
                 "history.csv", "metrics.json", "summary.md"):  # fmt: skip
        assert (run / name).stat().st_size > 0, name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["run"]["steps"] == 3 and np.isfinite(metrics["neg_elbo_nats_per_dim"])
    assert 0 <= metrics["fid"]["classifier_test_accuracy"] <= 1
    vae = vk.VAE.load(run / "best.safetensors")
    assert vae.config == vk.presets.config("fmnist32")
    assert f"done: {run}/ (summary.md" in res.stdout
