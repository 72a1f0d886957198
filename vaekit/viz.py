"""The standard VAE pictures: reconstructions, samples per temperature, interpolations,
latent traversals (Higgins et al. 2017), training curves and power spectra (blur at a glance).

Every grid function returns one ``(C, H, W)`` float tensor in [0, 1] on the CPU, and writes a
PNG when given ``path=``; ``upscale=`` enlarges small tiles by nearest neighbour (every pixel
becomes a k x k block, nothing is interpolated) so that 32-px images stay readable. Models run in eval mode under ``no_grad`` and get their train/eval
modes back. Only pillow (for ``path=``, a torchvision dependency) and matplotlib (for
:func:`plot_history` and :func:`plot_spectrum`, the ``examples`` extra) are needed, and both
are imported lazily.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from ._inference import evaluating, model_device
from ._validation import check_choice, check_float_tensor, check_image, check_int, check_number
from .metrics.spectrum import RadialSpectrum, radial_power_spectrum

__all__ = [
    "interpolation_grid",
    "make_grid",
    "plot_history",
    "plot_spectrum",
    "reconstruction_grid",
    "sample_grid",
    "save_image",
    "to_pil",
    "traversal_grid",
    "upscale_factor",
]

_EXTRA_HINT = 'pip install "vaekit[examples]"'
AUTO_TILE = 96  # upscale="auto": the smallest whole factor that makes tiles at least this big


# -- grids ------------------------------------------------------------------------------------
def _to_unit(x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
    return ((x.detach().float().cpu() - lo) / (hi - lo)).clamp(0.0, 1.0)


def upscale_factor(upscale: int | str, tile_size: tuple[int, int]) -> int:
    """The whole nearest-neighbour factor for tiles of ``tile_size`` (H, W).

    Args:
        upscale: an int >= 1 (1: unchanged), or ``"auto"``: the smallest factor that makes the
            shorter tile side at least :data:`AUTO_TILE` (96) pixels, 1 for tiles that already are.
        tile_size: (H, W) of one tile.

    Example:
        >>> import vaekit as vk
        >>> [vk.viz.upscale_factor("auto", (s, s)) for s in (28, 32, 64, 96, 256)]
        [4, 3, 2, 1, 1]
        >>> vk.viz.upscale_factor(2, (32, 32))
        2
    """
    if isinstance(upscale, str):
        if upscale != "auto":
            raise ValueError(f"upscale must be an int >= 1 or 'auto', got {upscale!r}")
        return max(1, math.ceil(AUTO_TILE / max(1, min(tile_size))))
    return check_int(upscale, "upscale", minimum=1)


def make_grid(
    images: torch.Tensor,
    nrow: int = 8,
    *,
    padding: int = 2,
    pad_value: float = 1.0,
    value_range: tuple[float, float] = (0.0, 1.0),
    upscale: int | str = 1,
) -> torch.Tensor:
    """Tile ``(N, C, H, W)`` images into one ``(C, H', W')`` picture, ``nrow`` per row.

    Values are mapped from ``value_range`` to [0, 1] and clamped (a decoder with
    ``output="identity"`` can overshoot).

    Args:
        images: the tiles; nrow: tiles per row.
        padding: pixels between tiles and around the grid (of the output, not scaled).
        pad_value: the padding's value in [0, 1].
        value_range: pixel range mapped to [0, 1].
        upscale: nearest-neighbour factor per tile, an int >= 1 (default 1: unchanged), or
            ``"auto"`` (see :func:`upscale_factor`: 32-px tiles become 96 px).

    Shape:
        images: (N, C, H, W); output: (C, rows * (k*H + padding) + padding,
        cols * (k*W + padding) + padding) with k the upscale factor.

    Example:
        >>> import torch, vaekit as vk
        >>> vk.viz.make_grid(torch.rand(6, 3, 8, 8), nrow=3, padding=1).shape
        torch.Size([3, 19, 28])
        >>> vk.viz.make_grid(torch.rand(6, 3, 8, 8), nrow=3, padding=1, upscale=2).shape
        torch.Size([3, 35, 52])
    """
    check_image(images, "images")
    nrow = check_int(nrow, "nrow")
    padding = check_int(padding, "padding", minimum=0)
    k = upscale_factor(upscale, tuple(images.shape[-2:]))
    x = _to_unit(images, value_range)
    if k > 1:  # nearest neighbour: every pixel becomes a k x k block
        x = x.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)
    n, c, h, w = x.shape
    cols, rows = min(nrow, n), math.ceil(n / nrow)
    grid = torch.full(
        (c, rows * (h + padding) + padding, cols * (w + padding) + padding), float(pad_value)
    )
    for i in range(n):
        r, col = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top : top + h, left : left + w] = x[i]
    return grid


def to_pil(grid: torch.Tensor):
    """A ``(C, H, W)`` tensor in [0, 1] (C = 1 or 3) as a ``PIL.Image``."""
    from PIL import Image  # lazy: pillow comes with torchvision

    check_float_tensor(grid, "grid")
    if grid.ndim != 3 or grid.shape[0] not in (1, 3):
        raise ValueError(f"grid must be (1 or 3, H, W), got shape {tuple(grid.shape)}")
    arr = (grid.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    arr = arr.permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)


def save_image(grid: torch.Tensor, path: str | os.PathLike) -> None:
    """Write a ``(C, H, W)`` [0, 1] tensor as an image file (format from the extension)."""
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    to_pil(grid).save(path)


def _finish(grid: torch.Tensor, path: str | os.PathLike | None) -> torch.Tensor:
    if path is not None:
        save_image(grid, path)
    return grid


def _as_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    check_float_tensor(x, name)
    return check_image(x[None] if x.ndim == 3 else x, name)


def _check_vae(vae: object) -> nn.Module:
    if not isinstance(vae, nn.Module) or not all(
        hasattr(vae, a) for a in ("encode", "decode", "latent_shape")
    ):
        raise TypeError(
            f"vae must be a vaekit.VAE (encode, decode, latent_shape), got {type(vae).__name__}"
        )
    return vae


# -- pictures ---------------------------------------------------------------------------------
def reconstruction_grid(
    x: torch.Tensor,
    x_hat: torch.Tensor,
    *,
    nrow: int = 8,
    value_range: tuple[float, float] = (0.0, 1.0),
    upscale: int | str = 1,
    path: str | os.PathLike | None = None,
) -> torch.Tensor:
    """Originals and reconstructions in alternating rows (row 1 inputs, row 2 their recons...).

    Args:
        x: input images; x_hat: reconstructions of the same shape (e.g. ``vae.reconstruct(x)``).
        nrow: images per row.
        value_range: pixel range mapped to [0, 1].
        upscale: nearest-neighbour factor per tile, an int >= 1 or ``"auto"`` (tiles of at least
            96 px; see :func:`upscale_factor`); default 1 keeps the images' size.
        path: optional file to write (PNG etc.).

    Shape:
        x, x_hat: (N, C, H, W); output: (C, H', W') in [0, 1].

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.rand(4, 1, 8, 8)
        >>> vk.viz.reconstruction_grid(x, x, nrow=4, path=None).shape   # 2 rows of 4
        torch.Size([1, 22, 42])
        >>> vk.viz.reconstruction_grid(x, x, nrow=4, upscale=3).shape   # 24-px tiles
        torch.Size([1, 54, 106])
    """
    upscale_factor(upscale, (1, 1))  # bad values fail before any work
    check_image(x, "x")
    check_image(x_hat, "x_hat")
    if x.shape != x_hat.shape:
        raise ValueError(
            f"x and x_hat must have the same shape, got {tuple(x.shape)} and {tuple(x_hat.shape)}"
        )
    nrow = check_int(nrow, "nrow")
    cols = min(nrow, x.shape[0])
    rows = []
    for a, b in zip(x.detach().cpu().split(cols), x_hat.detach().cpu().split(cols)):
        if a.shape[0] < cols:  # pad a short last row so originals and recons stay aligned
            blank = a.new_full((cols - a.shape[0], *a.shape[1:]), value_range[1])
            a, b = torch.cat([a, blank]), torch.cat([b, blank])
        rows += [a, b]
    grid = make_grid(torch.cat(rows), nrow=cols, value_range=value_range, upscale=upscale)
    return _finish(grid, path)


def sample_grid(
    vae: nn.Module,
    n: int = 8,
    temperatures: Sequence[float] = (0.5, 0.8, 1.0, 1.2),
    *,
    generator: torch.Generator | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    upscale: int | str = 1,
    path: str | os.PathLike | None = None,
) -> torch.Tensor:
    """Samples of the model's prior, one row per temperature, the *same* noise in every column.

    Every row is drawn by ``vae.prior`` (N(0, I) by default) from the same generator state,
    so column j holds one noise draw at every temperature (for N(0, I): ``t * eps_j``; for a
    mixture: the same component, its spread scaled by t), and a row-by-row comparison shows
    what temperature does: low t gives typical, smoother images; samples that only look
    right at t < 1 point at an aggregate-posterior gap (see
    :func:`vaekit.metrics.aggregate_posterior_gap`) that a better prior can close
    (:mod:`vaekit.priors`). An ex-post prior that is not fitted yet raises its
    ``ValueError``.

    Args:
        vae: a VAE; ``n``: samples per row; ``temperatures``: the prior's temperature per row
            (for N(0, I) the std of the draw; each prior documents what it scales).
        generator: for a reproducible grid (on the model's device).
        upscale: nearest-neighbour factor per tile, an int >= 1 or ``"auto"`` (tiles of at least
            96 px; see :func:`upscale_factor`); default 1 keeps the images' size.
        path: optional file to write.

    Shape:
        output: (C, H', W') in [0, 1].

    Example:
        >>> import torch, vaekit as vk
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=8, widths=(4,),
        ...                           latent_dim=2, attention_at=(), block="conv"))
        >>> g = torch.Generator().manual_seed(0)
        >>> vk.viz.sample_grid(vae, n=3, temperatures=(0.5, 1.0), generator=g).shape
        torch.Size([1, 22, 32])
    """
    vae = _check_vae(vae)
    upscale_factor(upscale, (1, 1))
    n = check_int(n, "n")
    temps = list(temperatures)
    if not temps:
        raise ValueError(
            f"temperatures must be a non-empty list of numbers >= 0, got {temperatures!r}"
        )
    for i, t in enumerate(temps):
        check_number(t, f"temperatures[{i}]", at_least=0)
    device = model_device(vae)
    with evaluating(vae):
        if hasattr(vae, "sample_prior"):  # through vae.prior
            z = torch.cat(_same_noise_rows(vae.sample_prior, n, temps, generator, device))
        else:  # a VAE-like module without a prior: N(0, I)
            param = next(vae.parameters(), None)
            dtype = param.dtype if param is not None else None
            shape = (n, *vae.latent_shape)
            eps = torch.randn(shape, generator=generator, device=device, dtype=dtype)
            z = torch.cat([eps * t for t in temps])
        images = vae.decode(z)
    grid = make_grid(images, nrow=n, value_range=value_range, upscale=upscale)
    return _finish(grid, path)


def _same_noise_rows(
    sample: Callable[..., torch.Tensor],
    n: int,
    temps: list[float],
    generator: torch.Generator | None,
    device: torch.device,
) -> list[torch.Tensor]:
    """``sample(n, t, generator)`` for each temperature, every row from the same RNG state.

    The generator (or the global RNG) ends one draw further, as after a single draw.
    """
    rows = []
    if generator is not None:
        state = generator.get_state()
        for t in temps:
            generator.set_state(state)
            rows.append(sample(n, t, generator))
        return rows
    for i, t in enumerate(temps):
        if i == len(temps) - 1:  # the last row advances the global RNG
            rows.append(sample(n, t, None))
            break
        devices = [device] if device.type != "cpu" else []
        kw = {"device_type": device.type} if devices else {}
        with torch.random.fork_rng(devices=devices, **kw):
            rows.append(sample(n, t, None))
    return rows


def interpolation_grid(
    vae: nn.Module,
    x_a: torch.Tensor,
    x_b: torch.Tensor,
    steps: int = 8,
    method: str = "slerp",
    *,
    show_inputs: bool = True,
    value_range: tuple[float, float] = (0.0, 1.0),
    upscale: int | str = 1,
    path: str | os.PathLike | None = None,
) -> torch.Tensor:
    """Decoded paths between the posterior means of ``x_a`` and ``x_b``, one row per pair.

    Args:
        vae: a VAE. x_a, x_b: one image (C, H, W) each, or batches (B, C, H, W) of pairs.
        steps: points on the path including both ends.
        method: ``"slerp"`` or ``"linear"`` (see :meth:`vaekit.VAE.interpolate`).
        show_inputs: frame each row with the two input images.
        upscale: nearest-neighbour factor per tile, an int >= 1 or ``"auto"`` (tiles of at least
            96 px; see :func:`upscale_factor`); default 1 keeps the images' size.
        path: optional file to write.

    Shape:
        output: (C, H', W') with B rows of ``steps`` (+ 2) images, in [0, 1].

    Example:
        >>> import torch, vaekit as vk
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=8, widths=(4,),
        ...                           latent_dim=2, attention_at=(), block="conv"))
        >>> a, b = torch.rand(1, 8, 8), torch.rand(1, 8, 8)
        >>> vk.viz.interpolation_grid(vae, a, b, steps=4).shape   # 1 row of 2 + 4 images
        torch.Size([1, 12, 62])
    """
    vae = _check_vae(vae)
    upscale_factor(upscale, (1, 1))
    check_choice(method, ("slerp", "linear"), "method")
    xa, xb = _as_batch(x_a, "x_a"), _as_batch(x_b, "x_b")
    if xa.shape != xb.shape:
        raise ValueError(
            f"x_a and x_b must have the same shape, got {tuple(xa.shape)} and {tuple(xb.shape)}"
        )
    with evaluating(vae):
        path_images = vae.interpolate(xa, xb, steps=steps, method=method)  # (S, B, C, H, W)
    rows = path_images.transpose(0, 1).detach().cpu()  # (B, S, C, H, W)
    if show_inputs:
        rows = torch.cat([xa.detach().cpu()[:, None], rows, xb.detach().cpu()[:, None]], 1)
    grid = make_grid(
        rows.flatten(0, 1), nrow=rows.shape[1], value_range=value_range, upscale=upscale
    )
    return _finish(grid, path)


def traversal_grid(
    vae: nn.Module,
    x: torch.Tensor,
    dims: Sequence[int] | None = None,
    span: float = 3.0,
    *,
    steps: int = 7,
    value_range: tuple[float, float] = (0.0, 1.0),
    upscale: int | str = 1,
    path: str | os.PathLike | None = None,
) -> torch.Tensor:
    """Latent traversals (Higgins et al. 2017): one row per latent dimension.

    The posterior mean of ``x`` is decoded with one dimension replaced by ``steps`` values
    spanning ``span`` of the prior's standard deviations around the prior's mean along that
    dimension; the others are held fixed. For N(0, I) (the default prior) that is ``-span``
    to ``span``, exactly. For any other prior the axis is the prior's *marginal* along the
    dimension: ``m_d - span * s_d`` to ``m_d + span * s_d``, with ``m_d`` and ``s_d`` the
    mean and standard deviation of that coordinate over 2048 samples of ``vae.prior``
    (drawn from a fixed seed, so the grid is reproducible); for a multi-modal prior this
    range covers its modes along d rather than one mode's spread.

    Args:
        vae: a VAE. x: one image (C, H, W) or (1, C, H, W).
        dims: indices into the flattened latent (``C*h*w`` for spatial latents). Default:
            the (up to) 8 dimensions with the largest KL to N(0, 1) for this image (a
            per-dimension KL, a proxy for how informative a dimension is, whatever the
            prior), most informative first.
        span: traverse ``span`` prior standard deviations either side of the prior's mean.
        steps: images per row.
        upscale: nearest-neighbour factor per tile, an int >= 1 or ``"auto"`` (tiles of at least
            96 px; see :func:`upscale_factor`); default 1 keeps the images' size.
        path: optional file to write.

    Shape:
        output: (C, H', W') with ``len(dims)`` rows of ``steps`` images, in [0, 1].

    Example:
        >>> import torch, vaekit as vk
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=8, widths=(4,),
        ...                           latent_dim=4, attention_at=(), block="conv"))
        >>> vk.viz.traversal_grid(vae, torch.rand(1, 8, 8), dims=[0, 2], steps=5).shape
        torch.Size([1, 22, 52])
    """
    vae = _check_vae(vae)
    upscale_factor(upscale, (1, 1))
    xb = _as_batch(x, "x")
    if xb.shape[0] != 1:
        raise ValueError(
            f"x must be a single image (C, H, W) or (1, C, H, W), got {tuple(x.shape)}"
        )
    steps = check_int(steps, "steps", minimum=2)
    check_number(span, "span", above=0)
    num = math.prod(vae.latent_shape)
    with evaluating(vae):
        q = vae.encode(xb)
        mean = q.mean.flatten(1)[0]
        if dims is None:
            order = q.kl_elementwise().flatten(1)[0].argsort(descending=True)
            dims = order[: min(8, num)].tolist()
        dims = [check_int(d, f"dims[{i}]", minimum=None) for i, d in enumerate(dims)]
        if not dims or not all(0 <= d < num for d in dims):
            raise ValueError(
                f"dims must be a non-empty list of ints in [0, {num}) (the flattened latent), "
                f"got {dims!r}"
            )
        values = torch.linspace(-span, span, steps, device=mean.device, dtype=mean.dtype)
        centre, spread = _prior_marginals(vae, mean)
        z = mean.repeat(len(dims) * steps, 1).view(len(dims), steps, num)
        for row, d in enumerate(dims):
            z[row, :, d] = values if centre is None else centre[d] + spread[d] * values
        images = vae.decode(z.view(-1, *vae.latent_shape))
    grid = make_grid(images, nrow=steps, value_range=value_range, upscale=upscale)
    return _finish(grid, path)


def _is_standard_normal(prior: object) -> bool:
    """vaekit's own N(0, I) (not a subclass, which may sample differently); the pictures sit
    below the priors in the import layers, so the class is recognised by name."""
    cls = type(prior)
    return cls.__name__ == "StandardNormal" and cls.__module__.startswith("vaekit.priors")


def _prior_marginals(
    vae: nn.Module, like: torch.Tensor
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Mean and std of each flattened latent coordinate under ``vae.prior``.

    ``(None, None)`` for N(0, I) (exactly 0 and 1: the traversal of earlier versions) and
    for modules without a prior; else estimated from 2048 prior samples of a fixed seed.
    """
    prior = getattr(vae, "prior", None)
    if prior is None or _is_standard_normal(prior):
        return None, None
    generator = torch.Generator(like.device).manual_seed(0)
    z = prior.sample(2048, generator=generator).flatten(1).to(like.dtype)
    return z.mean(0), z.std(0)


# -- curves -----------------------------------------------------------------------------------
def _import_pyplot(caller: str = "plot_history"):
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError(
            f"{caller} needs matplotlib, an optional dependency: {_EXTRA_HINT}"
        ) from err
    headless = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    if headless and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # no display: render to files, never try to open a window
    import matplotlib.pyplot as plt

    return plt


def _history_columns(history: object) -> dict[str, list[float]]:
    if isinstance(history, Mapping):
        cols = {str(k): list(v) for k, v in history.items()}
    elif isinstance(history, Sequence) and not isinstance(history, (str, bytes)):
        cols: dict[str, list[float]] = {}
        for i, rec in enumerate(history):
            if not isinstance(rec, Mapping):
                raise TypeError(f"history[{i}] must be a dict of numbers, got {type(rec).__name__}")
            for k in rec:
                cols.setdefault(str(k), [float("nan")] * i)
            for k, col in cols.items():
                col.append(float(rec.get(k, float("nan"))))
    else:
        raise TypeError(
            "history must be a dict of lists ({'loss': [...], 'beta': [...]}) or a list of "
            f"per-step dicts, got {type(history).__name__}"
        )
    if not cols or not any(cols.values()):
        raise ValueError("history is empty: nothing to plot")
    lengths = {k: len(v) for k, v in cols.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"history columns must have the same length, got {lengths}")
    return {k: [float(v) for v in vals] for k, vals in cols.items()}


def _constant(values: Sequence[float]) -> float | None:
    """The common value of the finite entries if they are all equal (up to rounding), else None."""
    finite = [v for v in values if math.isfinite(v)]
    if finite and math.isclose(min(finite), max(finite), rel_tol=1e-9, abs_tol=1e-12):
        return finite[0]
    return None


def plot_history(
    history: Mapping[str, Sequence[float]] | Sequence[Mapping[str, float]],
    *,
    beta_key: str = "beta",
    step_key: str = "step",
    log_scale: bool = False,
    title: str | None = None,
    ax=None,
    path: str | os.PathLike | None = None,
):
    """Loss terms on the left axis, a changing β on a twin right axis; returns the Figure.

    A β that is the same at every row gets no axis of its own: its value goes in the title
    (``β = 0.8``). The legend sits below the axes, never over the curves; series with 20 points
    or fewer are drawn with markers (a single point stays visible).

    Args:
        history: ``{"total": [...], "kl": [...], "beta": [...]}`` or a list of per-step dicts
            (e.g. ``{"step": s, **loss.terms, "beta": loss.beta}``); missing values are NaN.
        beta_key: the column drawn on the right axis (skipped if absent or all NaN).
        step_key: the column used as x axis (default: the row index).
        log_scale: log-scale the loss axis.
        title: the axes title.
        ax: a matplotlib ``Axes`` to draw into (default: a new figure). Lines already on it
            (e.g. validation points) join the legend.
        path: optional file to save the figure to.

    Raises:
        ImportError: matplotlib is not installed (``pip install "vaekit[examples]"``).

    Example:
        >>> import vaekit as vk
        >>> fig = vk.viz.plot_history({"recon": [3.0, 2.0, 1.5], "kl": [0.1, 0.5, 0.7],
        ...                            "beta": [0.0, 0.5, 1.0]})
        >>> [ax.get_ylabel() for ax in fig.axes]
        ['loss', 'beta']
        >>> fig = vk.viz.plot_history({"recon": [3.0, 2.0], "beta": [0.8, 0.8]}, title="run")
        >>> len(fig.axes), fig.axes[0].get_title()
        (1, 'run (β = 0.8)')
    """
    cols = _history_columns(history)
    plt = _import_pyplot()
    steps = cols.pop(step_key, None) or list(range(len(next(iter(cols.values())))))
    beta = cols.pop(beta_key, None)
    if beta is not None and not any(math.isfinite(b) for b in beta):
        beta = None
    beta_name = "β" if beta_key == "beta" else beta_key
    constant_beta = None if beta is None else _constant(beta)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    else:
        fig = ax.figure
    earlier = ax.get_legend_handles_labels()  # lines the caller drew first go last
    for name, vals in cols.items():
        few = sum(math.isfinite(v) for v in vals) <= 20
        ax.plot(steps, vals, label=name, marker="o" if few else None, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if log_scale:
        ax.set_yscale("log")
    own = ax.get_legend_handles_labels()
    handles = own[0][len(earlier[0]) :] + earlier[0]
    labels = own[1][len(earlier[1]) :] + earlier[1]
    if beta is not None and constant_beta is None:
        ax2 = ax.twinx()
        (line,) = ax2.plot(steps, beta, color="black", linestyle="--", label=beta_key)
        ax2.set_ylabel(beta_key)
        handles, labels = [*handles, line], [*labels, beta_key]
    if constant_beta is not None:
        note = f"{beta_name} = {constant_beta:g}"
        title = f"{title} ({note})" if title else note
    if handles:  # below the axes, clear of the tick labels and the x label
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                  borderaxespad=3.2, ncols=min(len(handles), 4), frameon=False)  # fmt: skip
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _save(fig, path: str | os.PathLike | None):
    """Write ``fig`` to ``path`` (its folder created) when a path is given; return ``fig``."""
    if path is not None:
        parent = os.path.dirname(os.fspath(path))
        if parent:
            os.makedirs(parent, exist_ok=True)
        fig.savefig(os.fspath(path), bbox_inches="tight")
    return fig


# -- spectra ----------------------------------------------------------------------------------
def _spectra(sets: object, spectrum_kwargs: dict) -> dict[str, RadialSpectrum]:
    if not isinstance(sets, Mapping):
        raise TypeError(
            "sets must be a dict {label: images (N, C, H, W) or RadialSpectrum}, got "
            f"{type(sets).__name__}"
        )
    if not sets:
        raise ValueError("sets is empty: nothing to plot")
    out = {}
    for label, value in sets.items():
        if isinstance(value, RadialSpectrum):
            if value.power.ndim != 1 or value.power.shape != value.frequency.shape:
                raise ValueError(
                    f"sets[{label!r}] must be a mean spectrum (frequency and power of shape "
                    f"(K,)), got shapes {tuple(value.frequency.shape)} and "
                    f"{tuple(value.power.shape)}"
                )
            out[str(label)] = value
        else:
            out[str(label)] = radial_power_spectrum(value, **spectrum_kwargs)
    return out


def plot_spectrum(
    sets: Mapping[str, torch.Tensor | RadialSpectrum],
    *,
    reference: str | None = None,
    relative: bool = True,
    channels: str = "grey",
    remove_mean: bool = True,
    window: str | None = "hann",
    title: str | None = None,
    ax=None,
    path: str | os.PathLike | None = None,
):
    """Log power against frequency for several image sets; returns the Figure.

    Each set's :func:`vaekit.metrics.radial_power_spectrum` is one curve (frequency in
    cycles/pixel, the 0 bin left out: the mean brightness is not detail). Blur shows as a
    curve that falls below the reference's towards 0.5 cycles/pixel; a bump above it is
    added high-frequency content (noise, checkerboard artifacts). With ``relative=True`` and
    two sets or more, a second panel below draws each set's power divided by the reference's
    (1 = the same power at that frequency), where blur is seen at a glance.

    Args:
        sets: ``{label: images}`` (``(N, C, H, W)`` batches, e.g. real test images,
            reconstructions, samples) or ``{label: RadialSpectrum}``; drawn in this order.
        reference: the label the others are compared with (default: the first), drawn in
            black.
        relative: add the ratio panel (needs the same image size in every set).
        channels, remove_mean, window: passed to :func:`~vaekit.metrics.radial_power_spectrum`
            for sets given as images.
        title: the figure's title.
        ax: draw into this matplotlib ``Axes`` (the spectrum only), or a pair of Axes
            ``(spectrum, ratio)``; default: a new figure.
        path: optional file to save the figure to.

    Raises:
        ImportError: matplotlib is not installed (``pip install "vaekit[examples]"``).

    Example:
        >>> import torch, vaekit as vk
        >>> real = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> blurry = torch.nn.functional.avg_pool2d(real, 3, 1, 1, count_include_pad=False)
        >>> fig = vk.viz.plot_spectrum({"real": real, "blurry": blurry})
        >>> [ax.get_ylabel() for ax in fig.axes]
        ['power', 'power / real']
        >>> ratio = fig.axes[1].get_lines()[1].get_ydata()   # blurry / real; [0] is the line at 1
        >>> bool(ratio[-1] < 0.5 < ratio[0])
        True
    """
    spectra = _spectra(sets, {"channels": channels, "remove_mean": remove_mean, "window": window})
    labels = list(spectra)
    reference = labels[0] if reference is None else reference
    if reference not in spectra:
        raise ValueError(f"reference must be one of the labels {labels}, got {reference!r}")
    if not isinstance(relative, bool):
        raise TypeError(f"relative must be True or False, got {type(relative).__name__}")
    ref = spectra[reference]
    others = [label for label in labels if label != reference]
    if ax is None or hasattr(ax, "plot"):
        axes = None if ax is None else [ax]
    else:
        try:
            axes = list(ax)
        except TypeError:
            axes = []
        if len(axes) != 2 or not all(hasattr(a, "plot") for a in axes):
            raise TypeError(
                f"ax must be a matplotlib Axes or a pair of them (spectrum, ratio), got {ax!r}"
            )
    draw_ratio = relative and bool(others) and (axes is None or len(axes) == 2)
    if draw_ratio:
        for label in others:
            freq, ref_freq = spectra[label].frequency.cpu(), ref.frequency.cpu()
            if freq.shape != ref_freq.shape or not torch.allclose(freq.double(), ref_freq.double()):
                raise ValueError(
                    f"relative=True needs one image size for all sets: {label!r} has "
                    f"{len(freq)} frequency bins up to {float(freq[-1]):.4g}, {reference!r} "
                    f"{len(ref_freq)} up to {float(ref_freq[-1]):.4g}; pass relative=False"
                )
    plt = _import_pyplot("plot_spectrum")
    if axes is None:
        if draw_ratio:
            fig, axes = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=(2, 1),
                                     layout="constrained")  # fmt: skip
        else:
            fig, one = plt.subplots(figsize=(7, 4.5), layout="constrained")
            axes = [one]
    fig = axes[0].figure
    top = axes[0]

    def curve(spec: RadialSpectrum) -> tuple[list[float], list[float]]:
        freq, power = spec.frequency.detach().double().cpu(), spec.power.detach().double().cpu()
        return freq[1:].tolist(), power[1:].tolist()  # the 0 bin is the mean: not detail

    colours = {reference: "black", **{label: f"C{i}" for i, label in enumerate(others)}}
    few = len(ref.frequency) <= 20  # few points: markers, so a short curve stays visible
    marks = {"marker": "o" if few else None, "markersize": 3}
    for label in labels:
        width = 2.0 if label == reference else 1.5
        top.plot(*curve(spectra[label]), label=label, color=colours[label], linewidth=width,
                 **marks)  # fmt: skip
    top.set_yscale("log")
    top.set_ylabel("power")
    top.set_xlim(0, 0.5)
    top.legend(fontsize=8)
    if title:
        top.set_title(title)
    if draw_ratio:
        low = axes[1]
        low.axhline(1.0, color="black", linewidth=1.0)
        base = torch.tensor(curve(ref)[1], dtype=torch.float64)
        for label in others:
            freq, power = curve(spectra[label])
            ratio = torch.tensor(power, dtype=torch.float64) / base
            ratio = torch.where(base > 0, ratio, float("nan"))  # no reference power: no ratio
            low.plot(freq, ratio.tolist(), label=label, color=colours[label], **marks)
        low.set_yscale("log")
        low.set_ylabel(f"power / {reference}")
        low.set_xlim(0, 0.5)
        low.set_xlabel("frequency (cycles/pixel)")
    else:
        top.set_xlabel("frequency (cycles/pixel)")
    return _save(fig, path)
