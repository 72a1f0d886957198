"""vk.metrics.ClassifierFeatures: a small domain classifier for Fréchet distances."""

from __future__ import annotations

import pytest
import torch

import vaekit as vk


def toy(n: int = 96, size: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose label is which half (top/bottom) is bright: learnable in one epoch."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.2 * torch.rand(n, 1, size, size, generator=g)
    top = y == 0
    x[top, :, : size // 2] += 0.7
    x[~top, :, size // 2 :] += 0.7
    return x, y


@pytest.fixture(scope="module")
def fitted() -> vk.metrics.ClassifierFeatures:
    x, y = toy()
    return vk.metrics.ClassifierFeatures.fit(x, y, num_classes=2, epochs=3, width=8, lr=1e-2)


def test_fit_learns_and_features_shape(fitted):
    x, y = toy(64, seed=1)
    assert fitted.accuracy(x, y) >= 0.9
    assert not fitted.training
    f = fitted(x)
    assert f.shape == (64, 128) and torch.isfinite(f).all()
    assert fitted.logits(x).shape == (64, 2)
    assert fitted.image_size == (12, 12)


def test_features_separate_real_from_noise(fitted):
    x, _ = toy(200, seed=2)
    x2, _ = toy(200, seed=3)
    noise = torch.rand_like(x)
    feats = lambda imgs: vk.metrics.extract_features(fitted, imgs, batch_size=50)
    same = vk.metrics.fid(feats(x), feats(x2))
    far = vk.metrics.fid(feats(x), feats(noise))
    assert far > 10 * same


def test_fit_is_seeded_and_leaves_global_rng_alone():
    x, y = toy(32)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = vk.metrics.ClassifierFeatures.fit(x, y, num_classes=2, epochs=1, width=4, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    b = vk.metrics.ClassifierFeatures.fit(x, y, num_classes=2, epochs=1, width=4, seed=5)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_save_load_roundtrip(fitted, tmp_path):
    path = tmp_path / "clf.safetensors"
    fitted.save(path)
    loaded = vk.metrics.ClassifierFeatures.load(path)
    x, _ = toy(8, seed=4)
    assert loaded.image_size == fitted.image_size and not loaded.training
    assert torch.equal(loaded(x), fitted(x))


def test_load_rejects_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ClassifierFeatures file"):
        vk.metrics.ClassifierFeatures.load(tmp_path / "missing.safetensors")
    bad = tmp_path / "garbage.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable"):
        vk.metrics.ClassifierFeatures.load(bad)
    vae_file = tmp_path / "vae.safetensors"
    cfg = vk.VAEConfig(
        in_channels=1, image_size=8, widths=(4,), latent_dim=2, block="conv", attention_at=()
    )
    vk.VAE(cfg).save(vae_file)
    with pytest.raises(ValueError, match="not a ClassifierFeatures file"):
        vk.metrics.ClassifierFeatures.load(vae_file)


def test_bad_images(fitted):
    with pytest.raises(ValueError, match="spatial size"):
        fitted(torch.rand(2, 1, 16, 16))  # trained on 12 x 12
    with pytest.raises(ValueError, match="channel"):
        fitted(torch.rand(2, 3, 12, 12))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fitted(torch.rand(2, 1, 12, 12) * 255)
    with pytest.raises(TypeError, match="floating-point"):
        fitted(torch.zeros(2, 1, 12, 12, dtype=torch.uint8))
    with pytest.raises(ValueError, match="at least 8x8"):
        vk.metrics.ClassifierFeatures(1, 2)(torch.rand(2, 1, 4, 4))


def test_bad_labels_and_arguments():
    x, y = toy(16)
    fit = vk.metrics.ClassifierFeatures.fit
    with pytest.raises(TypeError, match="int64"):
        fit(x, y.float(), num_classes=2, epochs=1)
    with pytest.raises(ValueError, match=r"shape \(16,\)"):
        fit(x, y[:8], num_classes=2, epochs=1)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        fit(x, y + 1, num_classes=2, epochs=1)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        fit(x, y, num_classes=2, epochs=0)
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        vk.metrics.ClassifierFeatures(1, 1)
    with pytest.raises(ValueError, match=r"lr must be > 0, got -1\.0"):
        fit(x, y, num_classes=2, lr=-1.0)
    with pytest.raises(ValueError, match="4-D image batch"):
        fit(x[0], y, num_classes=2)
