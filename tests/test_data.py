"""vk.data: the Fashion-MNIST reader and the quickstart main job (examples/train.py) on small
IDX files the test writes; ImageFolder on tiny PNG/JPEG/TIFF files; the seeded train/val split."""

from __future__ import annotations

import gzip
import json
import math
import os
import pickle
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

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


# -- ImageFolder ------------------------------------------------------------------------------
def save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    """Write ``array`` as an image file (format from the suffix), creating folders."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array) if mode is None else Image.fromarray(array, mode)
    img.save(path)
    return path


def gray(value: int, size=(4, 4)) -> np.ndarray:
    return np.full(size, value, np.uint8)


def folder(ds) -> list[str]:
    return [p.relative_to(ds.root).as_posix() for p in ds.files]


def test_image_folder_finds_images_recursively(tmp_path):
    save(tmp_path / "b.png", gray(10))
    save(tmp_path / "a" / "deep" / "c.JPG", gray(20))
    save(tmp_path / "a" / "x.tif", gray(30))
    save(tmp_path / ".hidden" / "skip.png", gray(40))  # hidden folders are left out
    save(tmp_path / ".skip.png", gray(50))
    (tmp_path / "notes.txt").write_text("not an image")
    ds = vk.data.ImageFolder(tmp_path, image_size=4, channels=1)
    assert folder(ds) == ["a/deep/c.JPG", "a/x.tif", "b.png"]  # sorted paths
    assert ds.files == vk.data.find_images(tmp_path) and ds.skipped == []
    assert len(ds) == 3 and ds.scan_warning is None
    # JPEG of a flat image decodes exactly; the items follow .files
    assert [round(float(ds[i].mean()) * 255) for i in range(3)] == [20, 30, 10]
    # a list of files: the same dataset, named relative to their common folder
    listed = vk.data.ImageFolder([str(p) for p in ds.files[:2]], image_size=4, channels=1)
    assert listed.files == ds.files[:2] and listed.root == tmp_path / "a"
    assert "ImageFolder(" in repr(ds) and "3 images" in repr(ds)


def test_a_corrupt_file_is_skipped_with_exactly_one_warning_naming_it(tmp_path):
    for i in range(4):
        save(tmp_path / f"ok{i}.png", gray(60 * i))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "empty.jpg").write_bytes(b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = vk.data.ImageFolder(tmp_path, image_size=4, channels=1)
    assert [w.category for w in caught] == [vk.data.DataWarning]
    message = str(caught[0].message)
    assert message.startswith("skipped 2 of 6 image files that could not be read (broken.png: ")
    assert "; sub/empty.jpg: " in message and message == ds.scan_warning
    assert [p.name for p, _ in ds.skipped] == ["broken.png", "empty.jpg"]
    assert len(ds) == 4 and [p.name for p in ds.files] == [f"ok{i}.png" for i in range(4)]
    assert all(ds[i].shape == (1, 4, 4) for i in range(len(ds)))
    # a warning class of its own (a UserWarning): users can filter it or make it an error
    assert issubclass(vk.data.DataWarning, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error", vk.data.DataWarning)
        with pytest.raises(vk.data.DataWarning, match=r"broken\.png"):
            vk.data.ImageFolder(tmp_path, image_size=4, channels=1)
    # nothing readable at all is an error, not an empty dataset
    for p in ds.files:
        p.unlink()
    with pytest.raises(ValueError, match=r"none of the 2 image files in .* could be read"):
        vk.data.ImageFolder(tmp_path, image_size=4, channels=1)


def test_a_file_truncated_after_its_header_fails_naming_it_or_is_skipped_with_verify(tmp_path):
    rng = np.random.default_rng(0)
    save(tmp_path / "good.png", rng.integers(0, 256, (32, 32), dtype=np.uint8))
    whole = save(tmp_path / "cut.png", rng.integers(0, 256, (32, 32), dtype=np.uint8))
    whole.write_bytes(whole.read_bytes()[:200])  # the header survives, the pixels do not
    ds = vk.data.ImageFolder(tmp_path, image_size=32, channels=1)  # headers only: kept
    assert len(ds) == 2 and ds.files[0].name == "cut.png"
    with pytest.raises(ValueError, match=r"could not decode .*cut\.png.*verify=True"):
        ds[0]
    with pytest.warns(vk.data.DataWarning, match=r"skipped 1 of 2 .*\(cut\.png: "):
        checked = vk.data.ImageFolder(tmp_path, image_size=32, channels=1, verify=True)
    assert [p.name for p in checked.files] == ["good.png"]


@pytest.mark.parametrize(
    ("name", "array", "mode", "file_channels", "expect_1", "expect_3"),
    [
        # 8-bit grayscale: k / 255; into 3 channels the one channel is copied
        ("gray.png", np.array([[0, 51], [204, 255]], np.uint8), None, 1,
         [[[0, 51], [204, 255]]], [[[0, 51], [204, 255]]] * 3),
        # RGB: Pillow's luma round(0.299 R + 0.587 G + 0.114 B) = 124 for (10, 200, 30)
        ("rgb.png", np.array([[[10, 200, 30]] * 2] * 2, np.uint8), None, 3,
         [[[124, 124], [124, 124]]], [[[10] * 2] * 2, [[200] * 2] * 2, [[30] * 2] * 2]),
        # RGBA: the alpha channel is dropped, not composited (alpha 0 changes nothing)
        ("rgba.png", np.array([[[10, 200, 30, 0]] * 2] * 2, np.uint8), "RGBA", 3,
         [[[124, 124], [124, 124]]], [[[10] * 2] * 2, [[200] * 2] * 2, [[30] * 2] * 2]),
        # grayscale + alpha: the gray channel
        ("la.png", np.array([[[77, 5]] * 2] * 2, np.uint8), "LA", 1,
         [[[77, 77], [77, 77]]], [[[77, 77], [77, 77]]] * 3),
    ],
)  # fmt: skip
def test_8bit_files_convert_to_the_asked_channels_with_exact_values(
    tmp_path, name, array, mode, file_channels, expect_1, expect_3
):
    path = save(tmp_path / name, array, mode)
    for channels, expected in ((1, expect_1), (3, expect_3)):
        ds = vk.data.ImageFolder([path], image_size=2, channels=channels)
        assert ds.headers[0].channels == file_channels and ds.headers[0].size == (2, 2)
        x = ds[0]
        assert x.dtype == torch.float32 and x.shape == (channels, 2, 2)
        torch.testing.assert_close(x, torch.tensor(expected, dtype=torch.float32) / 255)


def test_16bit_grayscale_keeps_its_precision(tmp_path):
    levels = np.array([[0, 1], [40000, 65535]], np.uint16)
    path = save(tmp_path / "xray16.png", levels)
    ds1 = vk.data.ImageFolder([path], image_size=2, channels=1)
    assert ds1.headers[0].mode in ("I;16", "I") and ds1.headers[0].channels == 1
    expected = torch.from_numpy(levels.astype(np.float32) / np.float32(65535))[None]
    assert torch.equal(ds1[0], expected)  # 1/65535 is not lost to 8 bits
    assert ds1[0][0, 0, 1] > 0
    x3 = vk.data.ImageFolder([path], image_size=2, channels=3)[0]
    assert torch.equal(x3, expected.expand(3, 2, 2))
    # a 32-bit float image must already be in [0, 1]
    save(tmp_path / "f" / "ok.tif", np.array([[0.25, 1.0]], np.float32), "F")
    torch.testing.assert_close(
        vk.data.ImageFolder(tmp_path / "f", image_size=(1, 2), channels=1)[0],
        torch.tensor([[[0.25, 1.0]]]),
    )
    save(tmp_path / "g" / "hot.tif", np.array([[0.0, 3.0]], np.float32), "F")
    with pytest.raises(ValueError, match=r"hot\.tif: a float image must hold values in \[0, 1\]"):
        vk.data.ImageFolder(tmp_path / "g", image_size=(1, 2), channels=1)[0]


def test_channels_are_what_was_asked_and_headers_tell_what_the_files_hold(tmp_path):
    """A grayscale folder read with channels=3 is replicated (the caller asked for 3); a caller
    that would rather refuse mixed folders checks ``headers[i].channels``."""
    save(tmp_path / "g.png", gray(90))
    save(tmp_path / "c.png", np.zeros((4, 4, 3), np.uint8))
    ds = vk.data.ImageFolder(tmp_path, image_size=4, channels=3)
    assert [(h.path.name, h.mode, h.channels) for h in ds.headers] == [
        ("c.png", "RGB", 3), ("g.png", "L", 1)
    ]  # fmt: skip
    assert [h.path.name for h in ds.headers if h.channels != ds.channels] == ["g.png"]
    assert all(ds[i].shape == (3, 4, 4) for i in range(2))
    assert torch.equal(ds[1][0], ds[1][2]) and float(ds[1][1, 0, 0]) == pytest.approx(90 / 255)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch.shape == (2, 3, 4, 4)  # mixed files batch together
    again = pickle.loads(pickle.dumps(ds))  # DataLoader workers get a pickled copy
    assert torch.equal(again[1], ds[1])


def test_images_are_centre_cropped_to_the_aspect_ratio_then_resized(tmp_path):
    wide = np.zeros((20, 40), np.uint8)
    wide[:, 10:30] = 255  # the centred 20x20 square is white, the sides black
    path = save(tmp_path / "wide.png", wide)
    x = vk.data.ImageFolder([path], image_size=20, channels=1)[0]
    assert torch.equal(x, torch.ones(1, 20, 20))  # cropped, not squeezed
    small = vk.data.ImageFolder([path], image_size=8, channels=1)[0]
    torch.testing.assert_close(small, torch.ones(1, 8, 8))
    tall = np.zeros((40, 40), np.uint8)
    tall[10:30] = 255  # (H, W) = (10, 20): the centred 20x40 band
    band = vk.data.ImageFolder([save(tmp_path / "t.png", tall)], image_size=(10, 20), channels=1)
    torch.testing.assert_close(band[0], torch.ones(1, 10, 20))
    # a random image stays in [0, 1] after antialiased resizing
    noise = np.random.default_rng(0).integers(0, 256, (37, 23, 3), dtype=np.uint8)
    y = vk.data.ImageFolder([save(tmp_path / "n.png", noise)], image_size=16, channels=3)[0]
    assert y.shape == (3, 16, 16) and y.min() >= 0 and y.max() <= 1


def test_hflip_flips_half_the_items_from_the_global_rng(tmp_path):
    left = np.zeros((4, 4), np.uint8)
    left[:, :2] = 255
    ds = vk.data.ImageFolder([save(tmp_path / "l.png", left)], image_size=4, channels=1, hflip=True)
    torch.manual_seed(0)
    flipped = [bool(ds[0][0, 0, 0] == 0) for _ in range(200)]
    assert 60 < sum(flipped) < 140  # p = 0.5; this band is 5.6 sigma wide
    torch.manual_seed(0)
    assert [bool(ds[0][0, 0, 0] == 0) for _ in range(200)] == flipped  # seeded: repeatable
    plain = vk.data.ImageFolder(ds.files, image_size=4, channels=1)
    assert all(float(plain[0][0, 0, 0]) == 1.0 for _ in range(20))


def test_clahe_spreads_a_low_contrast_histogram(tmp_path):
    rng = np.random.default_rng(0)
    low = (100 + rng.integers(0, 26, (32, 32))).astype(np.uint8)  # 8-bit values 100..125
    path = save(tmp_path / "low.png", low)
    x = vk.data.ImageFolder([path], image_size=32, channels=1)[0]
    eq = vk.data.ImageFolder([path], image_size=32, channels=1, clahe=True)[0]
    assert eq.shape == x.shape and eq.min() >= 0 and eq.max() <= 1
    assert eq.std() > 2 * x.std()
    rgb = vk.data.ImageFolder([path], image_size=16, channels=3, clahe=True)[0]
    assert rgb.shape == (3, 16, 16)


def test_clahe_without_scikit_image_names_the_extra(tmp_path, monkeypatch):
    path = save(tmp_path / "a.png", gray(3))
    monkeypatch.setitem(sys.modules, "skimage", None)  # import skimage -> ImportError
    monkeypatch.setitem(sys.modules, "skimage.exposure", None)
    with pytest.raises(ImportError, match=r'pip install "vaekit\[clahe\]"'):
        vk.data.ImageFolder([path], image_size=4, channels=1, clahe=True)
    assert len(vk.data.ImageFolder([path], image_size=4, channels=1)) == 1  # no CLAHE: fine


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"channels": 2}, ValueError, r"channels must be one of \[1, 3\], got 2"),
        ({"channels": 0}, ValueError, r"channels must be >= 1, got 0"),
        ({"channels": True}, TypeError, r"channels must be an int, got bool"),
        ({"channels": 3.0}, TypeError, r"channels must be an int, got float"),
        ({"image_size": 0}, ValueError, r"image_size must be >= 1, got 0"),
        ({"image_size": 32.0}, TypeError, r"image_size must be an int, got float"),
        ({"image_size": (8, 8, 8)}, ValueError, r"image_size must be an int or \(height, width\)"),
        ({"image_size": (8, -1)}, ValueError, r"image_size\[1\] must be >= 1, got -1"),
        ({"clahe": 1}, TypeError, r"clahe must be True or False, got int 1"),
        ({"hflip": "yes"}, TypeError, r"hflip must be True or False"),
        ({"verify": None}, TypeError, r"verify must be True or False"),
    ],
)  # fmt: skip
def test_bad_image_folder_arguments(tmp_path, kwargs, error, message):
    save(tmp_path / "a.png", gray(0))
    with pytest.raises(error, match=message):
        vk.data.ImageFolder(tmp_path, **({"image_size": 4, "channels": 1} | kwargs))


def test_bad_image_folders(tmp_path):
    kw = {"image_size": 4, "channels": 1}
    with pytest.raises(FileNotFoundError, match=r"'.*nowhere': no such folder"):
        vk.data.ImageFolder(tmp_path / "nowhere", **kw)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no images in .*empty': expected files ending in \.png"):
        vk.data.ImageFolder(tmp_path / "empty", **kw)
    file = save(tmp_path / "a.png", gray(0))
    with pytest.raises(ValueError, match=r"a\.png' is a file; expected a folder of images"):
        vk.data.ImageFolder(file, **kw)
    with pytest.raises(ValueError, match=r"the list of image files is empty"):
        vk.data.ImageFolder([], **kw)
    with pytest.raises(TypeError, match=r"root must be a folder or a list of files, got int"):
        vk.data.ImageFolder(42, **kw)
    with pytest.raises(TypeError, match=r"missing 2 required keyword-only arguments"):
        vk.data.ImageFolder(tmp_path)


def test_images_libraries_load_only_when_used(tmp_path):
    """``import vaekit`` loads neither Pillow nor scikit-image; reading a folder without CLAHE
    loads Pillow only."""
    save(tmp_path / "a.png", gray(7))
    script = f"""
import sys
import vaekit as vk
loaded = lambda: [name for name in ("PIL", "skimage") if name in sys.modules]
print(loaded())
vk.data.ImageFolder({str(tmp_path)!r}, image_size=4, channels=1)[0]
print(loaded())
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:2] == ["[]", "['PIL']"]


# -- train_val_split ----------------------------------------------------------------------------
@given(
    n=st.integers(2, 300),
    fraction=st.floats(0.001, 0.999),
    seed=st.integers(0, 2**32),
)
def test_train_val_split_is_a_seeded_partition(n, fraction, seed):
    n_val = max(1, round(n * fraction))
    if n_val >= n:
        with pytest.raises(ValueError, match="leaves no training items"):
            vk.data.train_val_split(range(n), fraction, seed=seed)
        return
    train, val = vk.data.train_val_split(range(n), fraction, seed=seed)
    assert len(val) == n_val and len(train) == n - n_val
    assert set(train.indices).isdisjoint(val.indices)
    assert sorted(train.indices + val.indices) == list(range(n))
    assert train.indices == sorted(train.indices) and val.indices == sorted(val.indices)
    again = vk.data.train_val_split(range(n), fraction, seed=seed)
    assert (again[0].indices, again[1].indices) == (train.indices, val.indices)
    assert [train[i] for i in range(len(train))] == train.indices  # Subsets of the dataset


def test_train_val_split_depends_on_the_seed_only():
    state = torch.get_rng_state()
    splits = {tuple(vk.data.train_val_split(range(100), 0.2, seed=s)[1].indices) for s in range(5)}
    assert len(splits) == 5  # 5 seeds, 5 different validation sets
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    torch.manual_seed(123)
    a = vk.data.train_val_split(range(100), 0.2, seed=0)[1].indices
    torch.manual_seed(456)
    assert vk.data.train_val_split(range(100), 0.2, seed=0)[1].indices == a


def test_train_val_split_of_an_image_folder(tmp_path):
    for i in range(10):
        save(tmp_path / f"{i}.png", gray(20 * i))
    ds = vk.data.ImageFolder(tmp_path, image_size=4, channels=1)
    train, val = vk.data.train_val_split(ds, 0.2, seed=0)
    assert len(train) == 8 and len(val) == 2 and val.dataset is ds
    assert torch.equal(val[0], ds[val.indices[0]])


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((range(10), 0), {"seed": 0}, ValueError, r"val_fraction must be > 0 and < 1, got 0$"),
        ((range(10), 1.0), {"seed": 0}, ValueError, r"val_fraction must be > 0 and < 1, got 1\.0"),
        ((range(10), -0.1), {"seed": 0}, ValueError, r"val_fraction must be > 0 and < 1"),
        ((range(10), math.nan), {"seed": 0}, ValueError, r"val_fraction must be finite, got nan"),
        ((range(10), math.inf), {"seed": 0}, ValueError, r"val_fraction must be finite, got inf"),
        ((range(10), "0.1"), {"seed": 0}, TypeError, r"val_fraction must be a number, got str"),
        ((range(10), True), {"seed": 0}, TypeError, r"val_fraction must be a number, got bool"),
        ((range(10), 0.1), {"seed": -1}, ValueError, r"seed must be >= 0, got -1"),
        ((range(10), 0.1), {"seed": 1.5}, TypeError, r"seed must be an int, got float"),
        ((iter(range(10)), 0.1), {"seed": 0}, TypeError, r"dataset must have a length"),
        ((range(1), 0.1), {"seed": 0}, ValueError, r"0\.1 of 1 item\(s\) leaves no training"),
    ],
)  # fmt: skip
def test_bad_split_arguments(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        vk.data.train_val_split(*args, **kwargs)
