"""Pictures: shapes, [0, 1] range, determinism, files written, optional matplotlib."""

from __future__ import annotations

import builtins
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vaekit as vk
from vaekit import viz


@pytest.fixture(scope="module")
def vae() -> vk.VAE:
    cfg = vk.VAEConfig(in_channels=1, image_size=16, widths=(4, 8), depth=1, block="resblock",
                       attention_at=(), latent="flat", latent_dim=4)  # fmt: skip
    return vk.VAE(cfg)


def _in_unit(t: torch.Tensor) -> bool:
    return bool(t.min() >= 0 and t.max() <= 1 and t.dtype == torch.float32)


def test_make_grid_layout_and_range():
    x = torch.arange(6.0).view(6, 1, 1, 1)  # values 0..5, mapped by value_range
    grid = viz.make_grid(x, nrow=4, padding=1, pad_value=0.5, value_range=(0.0, 5.0))
    assert grid.shape == (1, 5, 9)
    assert grid[0, 1, 1] == 0 and grid[0, 1, 7] == 0.6 and grid[0, 3, 3] == 1.0
    assert grid[0, 3, 5] == 0.5 and grid[0, 0, 0] == 0.5  # empty cell and padding
    assert _in_unit(viz.make_grid(torch.randn(3, 3, 4, 4) * 5))  # clamped


@settings(max_examples=30)
@given(
    n=st.integers(1, 5), nrow=st.integers(1, 4), h=st.integers(1, 5), w=st.integers(1, 5),
    k=st.integers(1, 4), padding=st.integers(0, 3), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_make_grid_upscale_is_nearest_neighbour(n, nrow, h, w, k, padding, seed):
    x = torch.rand(n, 2, h, w, generator=torch.Generator().manual_seed(seed))
    grid = viz.make_grid(x, nrow=nrow, padding=padding, pad_value=0.25, upscale=k)
    cols, rows = min(nrow, n), -(-n // nrow)
    assert grid.shape == (2, rows * (k * h + padding) + padding, cols * (k * w + padding) + padding)
    block = torch.ones(k, k)
    for i in range(n):  # each tile is the image with every pixel repeated as a k x k block
        r, c = divmod(i, cols)
        top, left = padding + r * (k * h + padding), padding + c * (k * w + padding)
        for ch in range(2):
            expected = torch.kron(x[i, ch], block)  # the reference: a Kronecker product
            assert torch.equal(grid[ch, top : top + k * h, left : left + k * w], expected)
    if padding:  # the padding stays `padding` pixels wide, it is not scaled
        assert torch.equal(grid[:, :padding], torch.full_like(grid[:, :padding], 0.25))
    assert torch.equal(viz.make_grid(x, nrow=nrow, padding=padding, upscale=1),
                       viz.make_grid(x, nrow=nrow, padding=padding))  # fmt: skip


def test_upscale_auto_makes_tiles_of_at_least_96_px():
    for size, factor in ((28, 4), (32, 3), (48, 2), (64, 2), (96, 1), (128, 1)):
        assert viz.upscale_factor("auto", (size, size)) == factor
        assert size * factor >= viz.AUTO_TILE and (factor == 1 or size * (factor - 1) < 96)
    assert viz.upscale_factor("auto", (32, 200)) == 3  # the shorter side decides
    grid = viz.make_grid(torch.rand(3, 1, 32, 32), nrow=3, padding=0, upscale="auto")
    assert grid.shape == (1, 96, 288)


def test_grids_pass_upscale_on(vae, tmp_path):
    from PIL import Image

    g = lambda: torch.Generator().manual_seed(0)
    small = viz.sample_grid(vae, n=2, temperatures=(1.0,), generator=g())
    big = viz.sample_grid(vae, n=2, temperatures=(1.0,), generator=g(), upscale=2,
                          path=tmp_path / "s.png")  # fmt: skip
    assert big.shape == (1, 32 + 4, 2 * 34 + 2) and Image.open(tmp_path / "s.png").size == (70, 36)
    torch.testing.assert_close(
        big[:, 2:34, 2:34], torch.kron(small[:, 2:18, 2:18], torch.ones(2, 2))
    )
    x = torch.rand(2, 1, 16, 16)
    assert viz.reconstruction_grid(x, x, nrow=2, upscale=3).shape == (1, 2 * 50 + 2, 2 * 50 + 2)
    assert viz.interpolation_grid(vae, x[0], x[1], steps=3, upscale="auto").shape == (
        1, 96 + 4, 5 * 98 + 2
    )  # fmt: skip
    assert viz.traversal_grid(vae, x[0], dims=[0], steps=2, upscale=2).shape == (1, 36, 70)


def test_reconstruction_grid_pairs_rows_and_writes_png(tmp_path):
    from PIL import Image

    x, x_hat = torch.zeros(5, 1, 8, 8), torch.ones(5, 1, 8, 8)
    path = tmp_path / "sub" / "recon.png"
    grid = viz.reconstruction_grid(x, x_hat, nrow=3, path=path)
    assert grid.shape == (1, 4 * 10 + 2, 3 * 10 + 2) and _in_unit(grid)
    # rows: originals (0), recons (1), originals, recons (last cell padded white)
    assert grid[0, 2, 2] == 0 and grid[0, 12, 2] == 1 and grid[0, 22, 2] == 0
    assert grid[0, 22, 22] == 1.0  # padding cell of the short last row
    img = Image.open(path)
    assert img.size == (32, 42) and img.mode == "L"


def test_sample_grid_rows_per_temperature_and_determinism(vae, tmp_path):
    vae.train()
    g = lambda: torch.Generator().manual_seed(0)
    a = viz.sample_grid(vae, n=3, temperatures=(0.0, 0.5, 1.0), generator=g())
    b = viz.sample_grid(vae, n=3, temperatures=(0.0, 0.5, 1.0), generator=g(),
                        path=tmp_path / "s.png")  # fmt: skip
    assert torch.equal(a, b) and (tmp_path / "s.png").is_file()
    assert a.shape == (1, 3 * 18 + 2, 3 * 18 + 2) and _in_unit(a)
    assert vae.training  # mode restored
    row0 = a[:, 2:18]  # temperature 0: every column decodes z = 0, so they are identical
    assert torch.equal(row0[:, :, 2:18], row0[:, :, 20:36])
    c = viz.sample_grid(
        vae, n=3, temperatures=(0.0, 0.5, 1.0), generator=torch.Generator().manual_seed(1)
    )
    assert not torch.equal(a, c)


def test_sample_grid_with_standard_normal_is_what_it_was(vae):
    vae.eval()
    temps = (0.0, 0.5, 1.0, 1.3)

    def old_grid(generator):  # sample_grid before the prior was the model's
        eps = torch.randn((3, *vae.latent_shape), generator=generator)
        return viz.make_grid(vae.decode(torch.cat([eps * t for t in temps])), nrow=3)

    with torch.no_grad():
        g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
        assert torch.equal(
            viz.sample_grid(vae, n=3, temperatures=temps, generator=g1), old_grid(g2)
        )
        assert torch.equal(g1.get_state(), g2.get_state())  # the generator moved on the same
        torch.manual_seed(9)  # the global RNG too, and it ends in the same state
        new, after_new = viz.sample_grid(vae, n=3, temperatures=temps), torch.rand(2)
        torch.manual_seed(9)
        old, after_old = old_grid(None), torch.rand(2)
    assert torch.equal(new, old) and torch.equal(after_new, after_old)


def test_sample_grid_draws_through_the_models_prior():
    cfg = vk.VAEConfig(in_channels=1, image_size=8, widths=(4,), latent_dim=3, attention_at=(),
                       block="conv")  # fmt: skip
    mog = vk.VAE(cfg, prior=vk.priors.MixtureOfGaussians(components=2)).eval()
    temps = (0.0, 1.0)
    with torch.no_grad():
        grid = viz.sample_grid(
            mog, n=4, temperatures=temps, generator=torch.Generator().manual_seed(1)
        )
        rows = [mog.prior.sample(4, temperature=t, generator=torch.Generator().manual_seed(1))
                for t in temps]  # fmt: skip
        assert torch.equal(grid, viz.make_grid(mog.decode(torch.cat(rows)), nrow=4))
        # temperature 0: each column is the mean of its component, the one it has at t = 1
        nearest = torch.cdist(rows[1], mog.prior.means).argmin(1)
        assert torch.equal(rows[0], mog.prior.means[nearest])
    gmm = vk.VAE(cfg, prior=vk.priors.GaussianMixture(components=2))
    with pytest.raises(vk.priors.NotFittedError, match="not fitted"):
        viz.sample_grid(gmm)


def test_interpolation_grid_single_and_batched(vae, tmp_path):
    a, b = torch.rand(1, 16, 16), torch.rand(1, 16, 16)
    grid = viz.interpolation_grid(vae, a, b, steps=5, method="linear", path=tmp_path / "i.png")
    assert grid.shape == (1, 18 + 2, 7 * 18 + 2) and _in_unit(grid)
    assert torch.equal(grid[:, 2:18, 2:18], a)  # first cell is the input
    assert (tmp_path / "i.png").is_file()
    batched = viz.interpolation_grid(vae, torch.rand(3, 1, 16, 16), torch.rand(3, 1, 16, 16),
                                     steps=4, show_inputs=False)  # fmt: skip
    assert batched.shape == (1, 3 * 18 + 2, 4 * 18 + 2)


def test_traversal_grid_varies_only_one_dim(vae):
    x = torch.rand(1, 16, 16)
    grid = viz.traversal_grid(vae, x, dims=[1, 3], span=2.0, steps=5)
    assert grid.shape == (1, 2 * 18 + 2, 5 * 18 + 2) and _in_unit(grid)
    auto = viz.traversal_grid(vae, x)  # default: up to 8 most informative dims (4 here)
    assert auto.shape == (1, 4 * 18 + 2, 7 * 18 + 2)
    spatial = vk.VAE(vk.VAEConfig(in_channels=1, image_size=16, widths=(4, 8), attention_at=(),
                                  latent="spatial", latent_channels=2))  # fmt: skip
    assert viz.traversal_grid(spatial, x, dims=[0, 31], steps=3).shape[1] == 2 * 18 + 2


def test_traversal_axis_follows_the_prior():
    cfg = vk.VAEConfig(in_channels=1, image_size=8, widths=(4,), latent_dim=3, attention_at=(),
                       block="conv")  # fmt: skip
    x = torch.rand(1, 8, 8)
    normal = vk.VAE(cfg).eval()
    with torch.no_grad():  # N(0, I): values -span..span exactly, as before
        mean = normal.encode(x[None]).mean[0]
        z = mean.repeat(5, 1)
        z[:, 2] = torch.linspace(-2.0, 2.0, 5)
        expected = viz.make_grid(normal.decode(z), nrow=5)
        assert torch.equal(viz.traversal_grid(normal, x, dims=[2], span=2.0, steps=5), expected)
    assert viz._prior_marginals(normal, mean) == (None, None)
    prior = vk.priors.MixtureOfGaussians(components=2, latent_shape=(3,))
    with torch.no_grad():
        prior.means.copy_(torch.tensor([[4.0, -1.0, 0.0], [6.0, 1.0, 0.0]]))
        prior.log_scales.copy_(torch.log(torch.tensor([[0.5, 0.5, 2.0], [0.5, 0.5, 2.0]])))
    mog = vk.VAE(cfg, prior=prior).eval()
    centre, spread = viz._prior_marginals(mog, mean)
    # the mixture's marginal moments: mean 5, -0, 0; std sqrt(0.25 + 1) = 1.118, same, 2
    torch.testing.assert_close(centre, torch.tensor([5.0, 0.0, 0.0]), atol=0.15, rtol=0)
    torch.testing.assert_close(spread, torch.tensor([1.118, 1.118, 2.0]), atol=0, rtol=0.06)
    with torch.no_grad():
        mean = mog.encode(x[None]).mean[0]
        z = mean.repeat(5, 1)
        z[:, 0] = centre[0] + spread[0] * torch.linspace(-2.0, 2.0, 5)
        expected = viz.make_grid(mog.decode(z), nrow=5)
        assert torch.equal(viz.traversal_grid(mog, x, dims=[0], span=2.0, steps=5), expected)


def test_plot_history_twin_axes_and_file(tmp_path):
    records = [{"step": 10 * i, "recon": 1.0 / (i + 1), "kl": 0.1 * i, "beta": min(i / 5, 1.0)}
               for i in range(8)]  # fmt: skip
    fig = viz.plot_history(records, path=tmp_path / "h.png", title="run")
    assert (tmp_path / "h.png").stat().st_size > 0
    left, right = fig.axes
    assert [ln.get_label() for ln in left.get_lines()] == ["recon", "kl"]
    assert right.get_ylabel() == "beta" and list(right.get_lines()[0].get_xdata()) == [
        10 * i for i in range(8)
    ]
    fig2 = viz.plot_history({"total": [3.0, 2.0]}, log_scale=True)  # no beta column: one axis
    assert len(fig2.axes) == 1 and fig2.axes[0].get_yscale() == "log"
    import matplotlib.pyplot as plt

    plt.close("all")


def test_plot_history_constant_beta_goes_in_the_title_and_the_legend_below_the_axes(tmp_path):
    import matplotlib.pyplot as plt

    steps = list(range(0, 200, 10))
    recon = [1.0 / (i + 1) for i in range(20)]
    fig = viz.plot_history({"step": steps, "recon": recon, "beta": [0.8] * 20}, title="run",
                           path=tmp_path / "c.png")  # fmt: skip
    (ax,) = fig.axes  # a constant beta gets no axis of its own
    assert ax.get_title() == "run (β = 0.8)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["recon"]
    fig.canvas.draw()  # the legend sits below the axes: it cannot cover a curve
    assert ax.get_legend().get_window_extent().y1 <= ax.get_window_extent().y0
    varying = viz.plot_history({"step": steps, "recon": recon, "beta": [i / 20 for i in range(20)]})
    assert len(varying.axes) == 2 and varying.axes[1].get_ylabel() == "beta"
    assert [t.get_text() for t in varying.axes[0].get_legend().get_texts()] == ["recon", "beta"]
    nan_beta = viz.plot_history({"recon": [1.0, 0.5], "beta": [float("nan")] * 2})
    assert len(nan_beta.axes) == 1 and nan_beta.axes[0].get_title() == ""
    # beta constant where defined (NaN elsewhere): still constant
    gaps = viz.plot_history({"recon": [1.0, 0.5, 0.2], "beta": [0.0, float("nan"), 0.0]})
    assert len(gaps.axes) == 1 and gaps.axes[0].get_title() == "β = 0"
    plt.close("all")


def test_plot_history_draws_into_a_given_axes():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([5, 10], [0.9, 0.4], "o", label="val")  # drawn first, listed after the history
    assert viz.plot_history({"step": [0, 5, 10], "total": [1.0, 0.8, 0.5]}, ax=ax) is fig
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["total", "val"]
    plt.close("all")


def test_plot_history_without_matplotlib_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_mpl(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    with pytest.raises(ImportError, match=r'pip install "vaekit\[examples\]"'):
        viz.plot_history({"loss": [1.0]})


def _spectrum_sets(size: int = 16) -> dict[str, torch.Tensor]:
    real = torch.rand(8, 1, size, size, generator=torch.Generator().manual_seed(0))
    blurry = torch.nn.functional.avg_pool2d(real, 3, 1, 1, count_include_pad=False)
    return {"real": real, "blurry": blurry, "same": real.clone()}


def test_plot_spectrum_draws_log_power_and_the_ratio_to_the_reference(tmp_path):
    import matplotlib.pyplot as plt

    sets = _spectrum_sets()
    fig = viz.plot_spectrum(sets, title="blur", path=tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0
    top, low = fig.axes
    assert top.get_yscale() == "log" and top.get_title() == "blur"
    assert [ln.get_label() for ln in top.get_lines()] == ["real", "blurry", "same"]
    assert [t.get_text() for t in top.get_legend().get_texts()] == ["real", "blurry", "same"]
    assert low.get_ylabel() == "power / real" and low.get_xlabel() == "frequency (cycles/pixel)"
    # the curves are the metric's, without the 0 bin (the mean brightness)
    spec = vk.metrics.radial_power_spectrum(sets["blurry"])
    line = top.get_lines()[1]
    assert list(line.get_xdata()) == pytest.approx(spec.frequency[1:].tolist())
    assert list(line.get_ydata()) == pytest.approx(spec.power[1:].tolist())
    assert max(line.get_xdata()) <= 0.5
    # ratio panel: a line at 1, then blurry / real (far below 1 at high frequency), same / real = 1
    ones, blurry, same = low.get_lines()
    assert list(ones.get_ydata()) == [1.0, 1.0]
    assert blurry.get_ydata()[-1] < 0.5 and list(same.get_ydata()) == pytest.approx([1.0] * 8)
    # spectra can be passed precomputed; another reference
    given_spec = {k: vk.metrics.radial_power_spectrum(v) for k, v in sets.items()}
    fig2 = viz.plot_spectrum(given_spec, reference="blurry")
    assert fig2.axes[1].get_ylabel() == "power / blurry"
    assert list(fig2.axes[0].get_lines()[0].get_ydata()) == pytest.approx(
        list(top.get_lines()[0].get_ydata())
    )
    # one set, or relative=False: one panel
    assert len(viz.plot_spectrum({"real": sets["real"]}).axes) == 1
    assert len(viz.plot_spectrum(sets, relative=False).axes) == 1
    plt.close("all")


def test_plot_spectrum_draws_into_given_axes_and_mixed_sizes_without_ratio():
    import matplotlib.pyplot as plt

    sets = _spectrum_sets()
    fig, ax = plt.subplots()
    assert viz.plot_spectrum(sets, ax=ax) is fig and len(fig.axes) == 1
    assert len(ax.get_lines()) == 3
    fig, pair = plt.subplots(2, 1)
    assert viz.plot_spectrum(sets, ax=pair) is fig and len(pair[1].get_lines()) == 3
    mixed = {"32 px": torch.rand(2, 1, 32, 32), "16 px": torch.rand(2, 1, 16, 16)}
    with pytest.raises(ValueError, match=r"one image size.*relative=False"):
        viz.plot_spectrum(mixed)
    odd = {"16 px": torch.rand(2, 1, 16, 16), "17 px": torch.rand(2, 1, 17, 17)}  # 9 bins each
    with pytest.raises(ValueError, match=r"one image size.*9 frequency bins up to 0.4706"):
        viz.plot_spectrum(odd)
    fig = viz.plot_spectrum(mixed, relative=False)
    assert [len(ln.get_xdata()) for ln in fig.axes[0].get_lines()] == [16, 8]
    plt.close("all")


def test_plot_spectrum_without_matplotlib_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_mpl(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    with pytest.raises(ImportError, match=r"plot_spectrum needs matplotlib.*vaekit\[examples\]"):
        viz.plot_spectrum({"real": torch.rand(1, 1, 8, 8)})


def test_import_vaekit_does_not_import_torchvision_or_matplotlib():
    code = (
        "import sys, vaekit; vaekit.viz, vaekit.metrics; "
        "print(sorted(m for m in ('torchvision', 'matplotlib', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda m: viz.make_grid(torch.rand(3, 8, 8)), ValueError, "4-D"),
        (lambda m: viz.make_grid(torch.rand(2, 1, 8, 8), nrow=0), ValueError, "nrow"),
        (
            lambda m: viz.make_grid(torch.rand(2, 1, 8, 8), value_range=(1, 0)),
            ValueError,
            "low < high",
        ),
        (
            lambda m: viz.reconstruction_grid(torch.rand(2, 1, 8, 8), torch.rand(3, 1, 8, 8)),
            ValueError,
            "same shape",
        ),
        (lambda m: viz.sample_grid(m, n=0), ValueError, "n must"),
        (lambda m: viz.sample_grid(m, temperatures=()), ValueError, "temperatures"),
        (lambda m: viz.sample_grid(torch.nn.Linear(2, 2)), TypeError, "vaekit.VAE"),
        (
            lambda m: viz.interpolation_grid(m, torch.rand(1, 16), torch.rand(1, 16), method="x"),
            ValueError,
            "slerp",
        ),
        (lambda m: viz.traversal_grid(m, torch.rand(2, 1, 16, 16)), ValueError, "single image"),
        (lambda m: viz.traversal_grid(m, torch.rand(1, 16, 16), dims=[4]), ValueError, r"\[0, 4\)"),
        (lambda m: viz.make_grid(torch.rand(2, 1, 8, 8), upscale=0), ValueError, "upscale"),
        (lambda m: viz.make_grid(torch.rand(2, 1, 8, 8), upscale="big"), ValueError, "'auto'"),
        (lambda m: viz.make_grid(torch.rand(2, 1, 8, 8), upscale=2.0), TypeError, "upscale"),
        (lambda m: viz.make_grid(torch.rand(2, 1, 8, 8), upscale=True), TypeError, "upscale"),
        (lambda m: viz.sample_grid(m, upscale=-1), ValueError, "upscale must be >= 1"),
        (
            lambda m: viz.reconstruction_grid(
                torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), upscale=None
            ),
            TypeError,
            "upscale",
        ),
        (lambda m: viz.plot_history({}), ValueError, "empty"),
        (lambda m: viz.plot_history({"a": [1.0], "b": [1.0, 2.0]}), ValueError, "same length"),
        (lambda m: viz.plot_history(3), TypeError, "dict of lists"),
        (lambda m: viz.to_pil(torch.rand(2, 4, 4)), ValueError, "1 or 3"),
        (lambda m: viz.plot_spectrum({}), ValueError, "empty"),
        (lambda m: viz.plot_spectrum([torch.rand(1, 1, 8, 8)]), TypeError, "dict"),
        (lambda m: viz.plot_spectrum({"a": torch.rand(8, 8)}), ValueError, "4-D"),
        (
            lambda m: viz.plot_spectrum({"a": torch.rand(1, 1, 8, 8)}, reference="b"),
            ValueError,
            r"reference must be one of the labels \['a'\], got 'b'",
        ),
        (
            lambda m: viz.plot_spectrum({"a": torch.rand(1, 1, 8, 8)}, window="box"),
            ValueError,
            "window must be one of",
        ),
        (
            lambda m: viz.plot_spectrum({"a": torch.rand(1, 1, 8, 8)}, ax="left"),
            TypeError,
            "pair of them",
        ),
        (
            lambda m: viz.plot_spectrum(
                {"a": vk.metrics.radial_power_spectrum(torch.rand(2, 1, 8, 8), reduction="none")}
            ),
            ValueError,
            "mean spectrum",
        ),
    ],
)
def test_bad_input(vae, call, err, match):
    with pytest.raises(err, match=match):
        call(vae)
