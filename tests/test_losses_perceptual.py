"""Perceptual / LPIPS: weights resolution (cache, path, offline error), truncation, laziness."""

from __future__ import annotations

import subprocess
import sys
import urllib.error

import pytest
import torch

import vaekit as vk


def test_import_vaekit_imports_neither_torchvision_nor_lpips():
    code = "import sys, vaekit; print('torchvision' in sys.modules, 'lpips' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path / "hub" / "checkpoints"


@pytest.mark.parametrize(
    ("make", "filename"),
    [
        (lambda **kw: vk.losses.PerceptualLoss(**kw), "vgg16-397923af.pth"),
        (lambda **kw: vk.losses.LPIPSLoss(**kw), "alexnet-owt-7be5be79.pth"),
        (lambda **kw: vk.losses.LPIPSLoss("squeeze", **kw), "squeezenet1_1-b8a52dc0.pth"),
    ],
)
def test_offline_error_names_file_directory_and_url(torch_home, monkeypatch, make, filename):
    with pytest.raises(vk.losses.WeightsNotFoundError) as info:
        make(download=False)
    message = str(info.value)
    assert filename in message and str(torch_home) in message
    assert f"https://download.pytorch.org/models/{filename}" in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(ValueError, match=f"{filename}.*download failed.*no network"):
        make()


def test_missing_path_and_bad_file(tmp_path):
    with pytest.raises(vk.losses.WeightsNotFoundError, match=r"nope\.pth"):
        vk.losses.PerceptualLoss(weights=tmp_path / "nope.pth")
    torch.save({"classifier.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"lack .*features\.0\.weight"):
        vk.losses.PerceptualLoss(weights=tmp_path / "bad.pth")


@pytest.fixture(scope="module")
def tv_vgg_features() -> torch.nn.Sequential:
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(1)
    return make_layers(cfgs["D"]).eval()  # torchvision's own VGG16 feature stack


def test_perceptual_by_path_and_cache_match_torchvision(tmp_path, torch_home, tv_vgg_features):
    state = {f"features.{k}": v for k, v in tv_vgg_features.state_dict().items()}
    torch.save(state, tmp_path / "vgg.pth")
    by_path = vk.losses.PerceptualLoss(weights=str(tmp_path / "vgg.pth"))
    torch_home.mkdir(parents=True)
    torch.save(state, torch_home / "vgg16-397923af.pth")
    cached = vk.losses.PerceptualLoss(weights="imagenet", download=False)
    assert len(by_path.features) == 16  # truncated after relu3_3
    x = torch.rand(2, 3, 16, 16)
    h, expected = (x - by_path.mean) / by_path.std, []
    for index, layer in enumerate(tv_vgg_features[:16]):
        h = layer(h)
        if index in (3, 8, 15):
            expected.append(h)
    for loss in (by_path, cached):
        for ours, ref in zip(loss.extract(x), expected):
            torch.testing.assert_close(ours, ref)


def test_perceptual_is_frozen_and_handles_grayscale():
    loss = vk.losses.PerceptualLoss(weights=None, layers=("relu1_2", "relu2_1"), distance="l1")
    assert not any(p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.features.training
    x, y = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8, requires_grad=True)
    value = loss(y, x)
    value.backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    torch.testing.assert_close(value, loss(y.expand(-1, 3, -1, -1), x.expand(-1, 3, -1, -1)))
    with pytest.raises(ValueError, match="layer must be one of"):
        vk.losses.PerceptualLoss(weights=None, layers=("relu9_9",))
    with pytest.raises(ValueError, match="1 or 3 channels, got 2"):
        loss(torch.rand(1, 2, 8, 8), torch.rand(1, 2, 8, 8))


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")  # lpips' own call
def test_lpips_by_path_matches_the_lpips_package(tmp_path):
    import lpips
    import torchvision

    torch.manual_seed(2)
    tv = torchvision.models.alexnet(weights=None)
    torch.save(tv.state_dict(), tmp_path / "alex.pth")
    ours = vk.losses.LPIPSLoss(weights=tmp_path / "alex.pth", reduction="none")
    ours.train()  # must stay in eval (dropout in the heads)
    assert not ours.model.training and not any(p.requires_grad for p in ours.parameters())
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    h = ours.model.scaling_layer(2 * x - 1)
    for block, feats in zip(ours._slices, ours.extract(x)):
        h = block(h)
        torch.testing.assert_close(feats, lpips.normalize_tensor(h))
    tv_state = tv.state_dict()
    for key, value in ours.model.net.state_dict().items():  # slice{k}.{i}.* <- features.{i}.*
        torch.testing.assert_close(value, tv_state["features." + key.split(".", 1)[1]])
    ref = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    ref.net.load_state_dict(ours.model.net.state_dict())
    torch.testing.assert_close(ours(y, x), ref(y, x, normalize=True).flatten())
    with pytest.raises(ValueError, match="at least 31 px"):
        ours(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
