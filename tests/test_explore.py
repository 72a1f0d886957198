"""vaekit.explore without a browser: loading runs, test images, uploads, the pictures' maths,
the comparison table, the page's error handling and its privacy settings."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from explore_utils import make_run, metrics, tiny_vae
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from trainer_utils import fake_fashion_mnist, write_images

import vaekit as vk
from vaekit import explore as E
from vaekit.explore.images import ExploreError


@pytest.fixture
def flat_run(tmp_path):
    return make_run(
        tmp_path / "runs" / "flat", tiny_vae(), metrics=metrics(20.0, 9.0),
        history=[(10, "train", 0.6, 30.0), (20, "train", 0.5, 35.0), (20, "val", 0.52, 33.0)],
    )  # fmt: skip


def save(path, array, mode=None):
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


# -- loading ----------------------------------------------------------------------------------------
def test_load_run_folder_reads_everything(flat_run):
    run = E.load_run(flat_run)
    assert run.name == "flat" and run.checkpoint.name == "best.safetensors"
    assert not run.vae.training and not any(p.requires_grad for p in run.vae.parameters())
    assert run.metrics["psnr"] == 20.0 and run.data == "fashion-mnist"
    assert [r["split"] for r in run.history] == ["train", "train", "val"]
    assert run.history[0]["step"] == 10 and isinstance(run.history[0]["total"], float)
    assert run.channels == 1 and run.image_size == (16, 16) and not run.spatial


def test_load_bare_model_and_last_checkpoint(tmp_path):
    vae = tiny_vae(3, latent="spatial")
    vae.save(tmp_path / "m.safetensors")
    run = E.load_run(tmp_path / "m.safetensors")
    assert run.name == "m" and run.spatial and run.config == {} and run.history == []
    (tmp_path / "r").mkdir()
    vae.save(tmp_path / "r" / "last.safetensors")
    run = E.load_run(tmp_path / "r")
    assert run.checkpoint.name == "last.safetensors"
    assert any("last.safetensors" in n for n in run.notes)
    assert any("metrics.json" in n for n in run.notes)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no such file or folder"),
        (lambda p: p, "not a vaekit run"),  # a folder without checkpoints
        (lambda p: torch.save({"w": torch.ones(1)}, p / "model.pt") or p / "model.pt", "never pickles"),
        (lambda p: (p / "x.safetensors").write_bytes(b"not safetensors") and p / "x.safetensors", "could not be loaded as a vaekit model"),
    ],
)  # fmt: skip
def test_load_run_bad_paths_are_explore_errors(tmp_path, make, message):
    with pytest.raises(ExploreError, match=message):
        E.load_run(make(tmp_path))


def test_load_run_refuses_other_safetensors(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(
        ExploreError, match=r"could not be loaded as a vaekit model.*not a vaekit VAE checkpoint"
    ):
        E.load_run(tmp_path / "other.safetensors")


def test_explorer_loads_each_path_once_and_names_apart(tmp_path):
    a = make_run(tmp_path / "a" / "run", tiny_vae())
    b = make_run(tmp_path / "b" / "run", tiny_vae(seed=1))
    ex = E.Explorer()
    first = ex.open(a)
    assert ex.open(tmp_path / "a" / ".." / "a" / "run") is first
    ex.open(b)
    assert ex.names == ["run", "run (2)"]
    with pytest.raises(ExploreError, match="no run named"):
        ex.get("nope")
    with pytest.raises(ExploreError, match="no model loaded"):
        E.Explorer().get(None)


# -- test images -------------------------------------------------------------------------------------
def test_fashion_mnist_runs_get_its_test_images_as_the_trainer_padded_them(tmp_path):
    root = fake_fashion_mnist(tmp_path / "fm")
    run = make_run(tmp_path / "r", tiny_vae(size=32), data_root=str(root))
    ex = E.Explorer(limit=10)
    test = ex.test_images(ex.open(run).name)
    assert test.images.shape == (10, 1, 32, 32) and "Fashion-MNIST" in test.source
    expected, _ = vk.data.load_fashion_mnist("test", root=root, pad_to=32, limit=10)
    torch.testing.assert_close(test.images, expected)  # zero-padded, not resized


def test_folder_runs_use_images_and_say_so_without(tmp_path):
    folder = write_images(tmp_path / "imgs", 5, (20, 24), "RGB")
    run = make_run(tmp_path / "r", tiny_vae(), data="/nowhere/images")
    ex = E.Explorer(images=folder)
    name = ex.open(run).name
    test = ex.test_images(name)
    assert test.images.shape == (5, 1, 16, 16) and "--images" in test.source
    assert ex.kl_ranking(name).shape == (4,)
    bare = E.Explorer()
    test = bare.test_images(bare.open(run).name)
    assert test.images is None and "--images FOLDER" in test.source
    # no images: the ranking falls back to metrics.json's KL per dimension
    run2 = make_run(tmp_path / "r2", tiny_vae(), data="/nowhere", metrics=metrics(20, 9))
    assert bare.kl_ranking(bare.open(run2).name).tolist() == [1.0, 0.1, 2.0, 0.0]


def test_read_folder_skips_unreadable_files(tmp_path):
    write_images(tmp_path, 2, (8, 8))
    (tmp_path / "broken.png").write_text("no picture")
    x, notes = E.read_folder(tmp_path, channels=3, image_size=8)
    assert x.shape == (2, 3, 8, 8) and notes == [notes[0]] and "broken.png" in notes[0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExploreError, match="no readable images"):
        E.read_folder(tmp_path / "empty", channels=1, image_size=8)


# -- uploads -------------------------------------------------------------------------------------------
def test_read_image_checks_channels_and_content(tmp_path):
    rng = np.random.default_rng(0)
    colour = save(tmp_path / "colour.png", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    grey = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    grey_rgb = save(tmp_path / "grey_rgb.png", np.repeat(grey[..., None], 3, -1))
    grey_l = save(tmp_path / "grey.png", grey)
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    with pytest.raises(ExploreError, match=r"wrong channel count.*1-channel grayscale.*colour"):
        E.read_image(colour, 1, 16)
    with pytest.raises(ExploreError, match=r"wrong channel count.*3-channel colour.*grayscale"):
        E.read_image(grey_l, 3, 16)
    with pytest.raises(ExploreError, match=r"'notes\.png' is not an image"):
        E.read_image(text, 1, 16)
    a, b = E.read_image(grey_rgb, 1, 16), E.read_image(grey_l, 1, 16)
    assert a.shape == (1, 1, 16, 16)
    torch.testing.assert_close(a, b)  # grey stored as RGB is grey
    assert E.read_image(colour, 3, (8, 12)).shape == (1, 3, 8, 12)


def test_read_image_modes(tmp_path):
    deep = np.full((10, 10), 40000, dtype=np.uint16)
    x = E.read_image(save(tmp_path / "deep.png", deep), 1, 10)
    assert abs(float(x.mean()) - 40000 / 65535) < 1e-4  # 16 bits kept
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 10
    x = E.read_image(save(tmp_path / "rgba.png", rgba, "RGBA"), 3, 10)
    assert x[0, 0].min() == 1.0 and x[0, 1:].max() == 0.0  # alpha dropped, colour kept


@given(
    h=st.integers(3, 40), w=st.integers(3, 40), c=st.sampled_from([1, 3]),
    out=st.tuples(st.integers(2, 24), st.integers(2, 24)), to=st.sampled_from([1, 3]),
)  # fmt: skip
def test_fit_images_shape_and_range(h, w, c, out, to):
    x = torch.rand(2, c, h, w)
    y = E.fit_images(x, to, out)
    assert y.shape == (2, to, *out) and float(y.min()) >= 0 and float(y.max()) <= 1


def test_fit_images_keeps_the_centre_when_sizes_match():
    x = torch.rand(1, 1, 10, 16)
    torch.testing.assert_close(E.fit_images(x, 1, 10), x[..., 3:13])


def test_to_display_enlarges_without_blur():
    x = torch.rand(1, 1, 16, 16)
    shown = E.to_display(x)
    assert shown.shape == (128, 128) and shown.dtype == np.uint8
    np.testing.assert_array_equal(shown[::8, ::8], (x[0, 0] * 255).round().to(torch.uint8).numpy())
    assert E.to_display(torch.rand(3, 3, 200, 100)).shape[-1] == 3


# -- the computations -----------------------------------------------------------------------------------
@pytest.fixture(params=["flat", "spatial"])
def vae(request):
    return tiny_vae(channels=1 if request.param == "flat" else 3, latent=request.param)


def test_sample_seeded_and_through_vae_sample(vae, monkeypatch):
    a, b = E.sample(vae, 6, 0.7, seed=3), E.sample(vae, 6, 0.7, seed=3)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, E.sample(vae, 6, 0.7, seed=4))
    cold = E.sample(vae, 3, 0.0, seed=1)  # temperature 0: every sample is decode(prior mean)
    torch.testing.assert_close(cold, cold[:1].expand_as(cold))
    calls = []
    real = type(vae).sample
    monkeypatch.setattr(
        type(vae), "sample", lambda self, *a, **k: calls.append(k) or real(self, *a, **k)
    )
    E.sample(vae, 2, 0.5, seed=0)
    assert calls and calls[0]["temperature"] == 0.5 and calls[0]["generator"] is not None


def test_decode_units_matches_the_code(vae):
    x = torch.rand(1, vae.config.in_channels, 16, 16)
    z = E.encode(vae, x)
    recon = E.reconstruct_batch(vae, x)
    torch.testing.assert_close(E.decode_units(vae, z, [], []), recon)
    unit = 1
    same = [float(z[0, unit])] if z.ndim == 2 else [0.0]  # a flat value, or a zero offset
    torch.testing.assert_close(E.decode_units(vae, z, [unit], same), recon)
    moved = E.decode_units(vae, z, [unit], [same[0] + 3.0])
    with torch.no_grad():
        z2 = z.clone()
        z2[:, unit] += 3.0  # the whole channel of a spatial code moves
        torch.testing.assert_close(moved, vae.decode(z2).clamp(0, 1))
    with pytest.raises(ValueError, match=r"latent units must be .* in \[0, "):
        E.decode_units(vae, z, [vae.latent_shape[0]], [1.0])
    with pytest.raises(ValueError, match="got 2 values for 1 latent units"):
        E.decode_units(vae, z, [0], [1.0, 2.0])


def test_traverse_middle_is_the_unmoved_code(vae):
    z = E.encode(vae, torch.rand(1, vae.config.in_channels, 16, 16))
    images = E.traverse(vae, z, unit=0, span=2.0, steps=5)
    assert images.shape == (5, vae.config.in_channels, 16, 16)
    expected = E.decode_units(vae, z, [0], [0.0])  # value 0 (flat) or offset 0 (spatial)
    torch.testing.assert_close(images[2:3], expected)
    assert not torch.equal(images[0], images[-1])


def test_interpolate_frames_the_path_with_the_inputs(vae):
    c = vae.config.in_channels
    a, b = torch.rand(1, c, 16, 16), torch.rand(1, c, 16, 16)
    for method in ("slerp", "linear"):
        out = E.interpolate(vae, a, b, steps=4, method=method)
        assert out.shape == (6, c, 16, 16)
        torch.testing.assert_close(out[0:1], a)
        torch.testing.assert_close(out[-1:], b)
        torch.testing.assert_close(out[1:2], E.reconstruct_batch(vae, a), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[-2:-1], E.reconstruct_batch(vae, b), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="method"):
        E.interpolate(vae, a, b, method="cubic")


def test_reconstruct_report_matches_the_metrics(vae):
    x = torch.rand(1, vae.config.in_channels, 16, 16)
    rep = E.reconstruct(vae, x)
    recon = E.reconstruct_batch(vae, x)
    torch.testing.assert_close(rep.recon, recon)
    assert rep.psnr == pytest.approx(float(vk.metrics.psnr(recon, x)), rel=1e-5)
    assert rep.ssim == pytest.approx(float(vk.metrics.ssim(recon, x, window_size=11)), rel=1e-5)
    assert rep.stats_x == pytest.approx(vk.metrics.image_stats(x).mean())
    assert rep.stats_recon == pytest.approx(vk.metrics.image_stats(recon).mean())
    err = (x - recon).abs().mean(1)[0]
    assert rep.max_error == pytest.approx(float(err.max()))
    i = int(err.argmax())
    assert rep.error[0, :, i // 16, i % 16].tolist() == [1.0, 1.0, 1.0]  # white at the worst
    assert "PSNR" in rep.markdown() and "sharpness" in rep.markdown()


def test_unit_kl_matches_kl_per_dim(vae):
    x = torch.rand(7, vae.config.in_channels, 16, 16)
    ref = vk.metrics.kl_per_dim(vae, x).double()
    ref = ref.flatten(1).sum(1) if ref.ndim > 1 else ref
    torch.testing.assert_close(E.unit_kl(vae, x, batch_size=3), ref.cpu())
    assert E.top_units(torch.tensor([0.5, 2.0, 1.0]), 2) == [1, 2]


# -- comparing runs -------------------------------------------------------------------------------------
@given(st.lists(st.floats(0, 50, allow_nan=False), min_size=2, max_size=5))
def test_metrics_rows_mark_the_better_value(values):
    rows = {
        r.name: r
        for r in E.metrics_rows([{"psnr": v, "fid": {"fd_samples": v}, "steps": v} for v in values])
    }
    if len(set(values)) == 1:
        assert rows["psnr"].best is None
    else:
        assert rows["psnr"].best == values.index(max(values))
        assert rows["fid.fd_samples"].best == values.index(min(values))
    assert rows["steps"].best is None


@given(st.lists(st.floats(0.01, 10, allow_nan=False), min_size=2, max_size=5))
def test_metrics_rows_mark_the_ratio_nearest_one(values):
    runs = [{"sharpness_ratio": {"samples": {"gmm": v}}, "contrast_ratio": {"x": 1 / v}}
            for v in values]  # fmt: skip
    rows = {r.name: r for r in E.metrics_rows(runs)}
    distance = [abs(math.log(v)) for v in values]
    for name in ("sharpness_ratio.samples.gmm", "contrast_ratio.x"):  # 1/v: as far from 1 as v
        row = rows[name]
        if len(set(distance)) == 1:
            assert row.best is None
        else:
            assert distance[row.best] == min(distance), (name, values, row.best)
        assert E.closer_to_one(name) and E.is_headline(name)


def test_ratio_rows_are_headline_rows_after_the_distances():
    runs = [metrics(20.0, 9.0, sharpness=0.3), metrics(21.0, 8.0, sharpness=0.9)]
    names = [r.name for r in E.metrics_rows(runs)]
    ratios = ["sharpness_ratio.reconstructions", "sharpness_ratio.samples.standard_normal",
              "contrast_ratio.reconstructions", "contrast_ratio.samples.standard_normal"]  # fmt: skip
    at = names.index("fid.fd_samples")
    assert names[at + 1 : at + 5] == ratios
    head = [n for n in names if E.is_headline(n)]
    assert set(ratios) <= set(head) and "kl_per_dim.mean" not in head
    lines = E.metrics_markdown(E.metrics_rows(runs), ["blurry", "sharp"]).splitlines()
    assert "| sharpness_ratio.reconstructions →1 | 0.3 | **0.9** ✓ |" in lines
    # contrast 0.6 vs 1.8 (capped at 1.0 in the helper): 1.0 is nearest
    assert "| contrast_ratio.reconstructions →1 | 0.6 | **1** ✓ |" in lines


def test_metrics_markdown_table(flat_run, tmp_path):
    other = metrics(25.0, 12.0)
    rows = E.metrics_rows([E.load_run(flat_run).metrics, other, {}])
    text = E.metrics_markdown(rows, ["flat", "b|c", "empty"])
    lines = text.splitlines()
    assert lines[0] == "| metric | flat | b/c | empty |"
    assert lines[2] == "| psnr ↑ | 20 | **25** ✓ | – |"
    assert "| fid.fd_samples ↓ | **9** ✓ | 12 | – |" in lines
    assert not any("classifier" in line for line in lines)  # long paths left out
    assert not any("kl_per_dim.values" in line for line in lines)  # lists left out


def test_curves_figure_shares_axes():
    a = [{"step": s, "split": "train", "total": 1 / s, "kl_raw": 3.0} for s in range(1, 5)]
    b = [{"step": s, "split": "val", "total": 2 / s} for s in range(1, 5)]
    img = E.curves_figure([a, b], ["a", "b"])
    assert img.ndim == 3 and img.shape[-1] == 3 and img.dtype == np.uint8 and img.std() > 0
    assert E.curves_figure([[], []], ["a", "b"]).shape == (0, 0, 3)
    with pytest.raises(ValueError, match="2 histories for 1 names"):
        E.curves_figure([a, b], ["a"])


# -- imports and the page ------------------------------------------------------------------------------
def test_import_vaekit_imports_no_gradio():
    code = (
        "import sys, vaekit, vaekit.explore, vaekit.explore.app, vaekit.explore.__main__\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('gradio', 'selenium', 'matplotlib')]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    out = subprocess.run(
        [sys.executable, "-c", "import sys, vaekit; print('vaekit.explore' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "False"


def test_cli_parser():
    from vaekit.explore.__main__ import build_parser

    args = build_parser().parse_args(["runs/a", "b.safetensors", "--port", "7000"])
    assert args.runs == ["runs/a", "b.safetensors"] and args.port == 7000
    assert args.host == "127.0.0.1" and args.images is None


@pytest.fixture
def app(tmp_path):
    gr = pytest.importorskip("gradio")
    from vaekit.explore.app import build_app

    folder = write_images(tmp_path / "imgs", 4, (16, 16))
    ex = E.Explorer(images=folder)  # a run trained on a folder that is gone: --images
    history = [(10, "train", 0.6, 30.0), (20, "val", 0.5, 33.0)]
    run = make_run(
        tmp_path / "flat", tiny_vae(), data="/gone", metrics=metrics(20, 9, sharpness=0.4),
        history=history,
    )  # fmt: skip
    ex.open(run)
    demo = build_app(ex, messages=["'/x' could not be opened"])
    fns = {f.fn.__name__: f.fn for f in demo.fns.values() if f.fn is not None}
    return gr, demo, fns, ex


def test_handlers_show_errors_in_the_page(app, tmp_path):
    gr, _, fns, _ = app
    rgb = save(
        tmp_path / "c.png", np.random.default_rng(0).integers(0, 256, (9, 9, 3), dtype=np.uint8)
    )
    text = tmp_path / "t.png"
    text.write_text("hello")
    for path, message in ((rgb, "wrong channel count"), (text, "is not an image")):
        out = fns["pick_latent"]("flat", 0, str(path))
        assert message in out[2] and out[2].startswith("⚠️")
        assert all(isinstance(o, type(gr.skip())) for i, o in enumerate(out) if i != 2)
        out = fns["show_recon"]("flat", 0, str(path))
        assert message in out[1]
    assert "no run named" in fns["show_samples"]("gone", 1.0, 0, 4)[1]
    assert "not a vaekit run" in fns["open_path"](str(tmp_path))[2]
    assert "pick an image first" in fns["move"]("flat", None, *[0.0] * 8)[1]
    broken = {"run": "flat"}  # a bug's KeyError: a note in the page, details in the terminal
    assert "internal error (KeyError" in fns["move"]("flat", broken, *[0.0] * 8)[1]


def test_handlers_work(app):
    _, _, fns, _ = app
    img, msg = fns["show_samples"]("flat", 0.8, 2, 5)
    assert msg == "" and img.dtype == np.uint8
    out = fns["pick_latent"]("flat", 2, None)
    state = out[3]
    assert "test image 2 of 4" in out[2] and len(state["units"]) == 4
    values = list(state["starts"]) + [0.0] * 4
    same, _ = fns["move"]("flat", state, *values)
    np.testing.assert_array_equal(same, out[1])  # untouched sliders: the reconstruction
    values[0] += 2.0
    moved, _ = fns["move"]("flat", state, *values)
    assert np.abs(moved.astype(int) - same.astype(int)).max() > 0
    grid, _ = fns["traversal"]("flat", state, state["units"][0], *values)
    assert grid.shape[1] > grid.shape[0] > 0
    picture, msg = fns["show_interp"]("flat", 0, None, 1, None, "linear", 4)
    assert "linear" in msg and picture.shape[1] > picture.shape[0]
    picture, msg = fns["show_recon"]("flat", 1, None)
    assert "PSNR" in msg
    out = fns["show_compare"](["flat"], 0, 1.0)
    assert "second run" in out[0] and "psnr" in out[1] and out[-1].ndim == 3
    # the blur and contrast ratios are headline rows, explained under the table
    from vaekit.explore.app import RATIO_NOTE

    assert "| sharpness_ratio.reconstructions →1 | 0.4 |" in out[1]
    assert "| contrast_ratio.samples.standard_normal →1 | 0.4 |" in out[1]
    assert out[1].endswith(RATIO_NOTE) and "below 1: blurrier" in out[1]


def test_launch_is_local_and_offline(app, monkeypatch):
    """The server binds 127.0.0.1 with no share link, and neither launching it nor loading the
    page opens a connection beyond this machine."""
    import urllib.request

    from vaekit.explore.app import launch_kwargs

    _, demo, _, _ = app
    outside = []
    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if host not in ("127.0.0.1", "localhost", "::1") and self.family != socket.AF_UNIX:
            outside.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.queue()
    demo.launch(**launch_kwargs(port=port, block=False))
    try:
        assert demo.share_url is None and demo.local_url.startswith("http://127.0.0.1:")
        for path in ("/", "/config"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
                assert r.status == 200
        config = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/config").read())
        assert config["analytics_enabled"] is False
    finally:
        demo.close()
    assert outside == []


@pytest.mark.slow
@pytest.mark.parametrize("preset", vk.presets.available())
def test_every_preset_through_the_explorer(preset, tmp_path):
    """Flat and spatial latents, grey and RGB, every preset's image size: load, sample, move a
    slider, traverse, interpolate, reconstruct, and adapt an upload."""
    torch.manual_seed(0)
    vae = vk.presets.build(preset)
    vae.save(tmp_path / "m.safetensors")
    run = E.load_run(tmp_path / "m.safetensors")
    c, (h, w) = run.channels, run.image_size
    assert E.sample(run.vae, 1, 0.5, seed=0).shape == (1, c, h, w)
    rgb = save(
        tmp_path / "up.png", np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    )
    if c == 3:
        x = E.read_image(rgb, c, (h, w))
    else:
        with pytest.raises(ExploreError, match="wrong channel count"):
            E.read_image(rgb, c, (h, w))
        x = E.fit_images(torch.rand(1, 3, 50, 70), c, (h, w))
    assert x.shape == (1, c, h, w)
    z = E.encode(run.vae, x)
    unit = E.top_units(E.unit_kl(run.vae, x), 1)[0]
    moved = E.decode_units(run.vae, z, [unit], [1.5])
    assert moved.shape == (1, c, h, w) and not torch.equal(
        moved, E.decode_units(run.vae, z, [], [])
    )
    assert E.traverse(run.vae, z, unit, steps=2).shape == (2, c, h, w)
    assert E.interpolate(run.vae, x, x.flip(-1), steps=2).shape == (4, c, h, w)
    assert E.reconstruct(run.vae, x).error.shape == (1, 3, h, w)
    k = -(-128 // min(h, w))  # small images are enlarged to at least 128 px
    assert E.to_display(moved).shape[:2] == (h * k, w * k)


def test_gradio_temp_folder_is_the_explorers_own(tmp_path, monkeypatch):
    import os
    import tempfile

    from vaekit.explore import app

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    monkeypatch.setattr(app, "_OWN_TEMP", [])  # not the folder of an app built earlier
    path = Path(app.temp_dir())
    assert path.parent == tmp_path and path.name.startswith(app.TEMP_PREFIX)
    assert (path.stat().st_mode & 0o777) == 0o700
    assert os.environ["GRADIO_TEMP_DIR"] == str(path) and app.temp_dir() == str(path)
    (path / "picture.png").write_bytes(b"png")
    app.remove_temp_dir()
    assert not path.exists() and "GRADIO_TEMP_DIR" not in os.environ
    mine = tmp_path / "mine"  # a folder the user chose: used, never removed
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(mine))
    assert app.temp_dir() == str(mine)
    app.remove_temp_dir()
    assert os.environ["GRADIO_TEMP_DIR"] == str(mine)


def test_a_folder_of_runs_opens_every_run(tmp_path, capsys):
    from vaekit.explore.__main__ import expand

    sweep = tmp_path / "sweep"
    a = make_run(sweep / "0-a", tiny_vae())
    b = make_run(sweep / "1-b", tiny_vae(seed=1))
    assert expand([str(sweep), str(a)]) == [str(a), str(b), str(a)]
    assert "opening the 2 run(s) inside it" in capsys.readouterr().out
    assert expand([str(tmp_path / "missing")]) == [str(tmp_path / "missing")]  # reported later
    with pytest.raises(ExploreError, match=r"holds 2 run folder\(s\): 0-a, 1-b"):
        E.load_run(sweep)
