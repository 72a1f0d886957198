"""examples/train.py --tensorboard: the run folder holds TensorBoard events with the tags the
Lightning example logs too (read back with TensorBoard's own reader), and vk.runs reads the
folder like any other run."""

from __future__ import annotations

import pytest
from tensorboard_utils import check_events, read_events
from trainer_utils import fake_fashion_mnist, trainer

import vaekit as vk

pytest.importorskip("tensorboard", reason='--tensorboard needs pip install -e ".[lightning]"')
train = trainer()


def test_tensorboard_events_in_the_run_folder(tmp_path):
    root = fake_fashion_mnist(tmp_path / "fmnist")
    argv = ["--preset", "fmnist32", "--data", "fashion-mnist", "--data-root", str(root),
            "--out", str(tmp_path / "runs"), "--batch-size", "16", "--max-steps", "5",
            "--eval-every", "2", "--log-every", "2", "--log-seconds", "0", "--image-every", "0",
            "--no-final-metrics", "--progress", "off", "--tensorboard"]  # fmt: skip
    run = train.main(argv)
    acc = read_events(run)
    check_events(acc, last_step=5, latent_dims=vk.presets.config("fmnist32").latent_dim)
    # train rows at steps 1, 2, 4 and the last; validations at 2, 4 and the last
    assert [e.step for e in acc.Scalars("train/total")] == [1, 2, 4, 5]
    assert [e.step for e in acc.Scalars("val/total")] == [2, 4, 5]
    # --log-seconds 0: a snapshot at every validation (2, 4) and at the last step (5)
    assert [e.step for e in acc.Images("images/samples")] == [2, 4, 5]
    history = vk.runs.read_run(run).series("train", "beta")
    logged = [(e.step, e.value) for e in acc.Scalars("train/beta")]
    assert [s for s, _ in logged] == [s for s, _ in history]
    assert [v for _, v in logged] == pytest.approx([v for _, v in history], rel=1e-6)
    assert vk.runs.read_run(run).tensorboard == run


def test_tensorboard_missing_is_one_usage_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    root = fake_fashion_mnist(tmp_path / "fmnist")
    argv = ["--preset", "fmnist32", "--data", "fashion-mnist", "--data-root", str(root),
            "--out", str(tmp_path / "runs"), "--tensorboard"]  # fmt: skip
    with pytest.raises(train.UsageError, match=r"--tensorboard needs the tensorboard package: "
                       r"pip install -e '\.\[lightning\]'"):  # fmt: skip
        train.main(argv)
    assert not (tmp_path / "runs").exists()  # before the data load and the run folder
