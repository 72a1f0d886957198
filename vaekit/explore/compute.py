"""What the explorer shows, as plain functions of a model and tensors (no browser needed).

Everything runs under ``torch.inference_mode()``: no autograd graph, so a slider move costs
one decoder pass. Sampling goes through ``vae.sample`` (the model's own prior); a latent
"unit" is a dimension of a flat latent or a channel of a spatial one (moved as an offset
added at every position).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._validation import check_choice, check_image, check_int
from ..metrics import image_stats, psnr, ssim
from .images import error_map

__all__ = [
    "CLOSER_TO_ONE",
    "HEADLINE",
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "MetricRow",
    "ReconReport",
    "closer_to_one",
    "curves_figure",
    "decode_units",
    "edit_code",
    "encode",
    "interpolate",
    "is_headline",
    "metrics_markdown",
    "metrics_rows",
    "reconstruct",
    "reconstruct_batch",
    "sample",
    "top_units",
    "traverse",
    "unit_kl",
]

# metrics.json keys (nested keys joined by ".") where a direction means "better". Training
# objectives (run.best_val_total, objective.*) are left out: at different β they measure
# different things.
HIGHER_IS_BETTER = frozenset({"psnr", "ssim", "active_units"})
LOWER_IS_BETTER = frozenset({
    "neg_elbo_nats_per_dim", "neg_elbo_bits_per_dim", "iwae_nll_nats_per_dim",
    "iwae_bits_per_dim", "fid.fd_samples", "fid.fd_reconstructions", "posterior_gap.kl",
    "posterior_gap.kl_per_dim", "posterior_gap.mmd",
})  # fmt: skip
# ratios to the real test images (sharpness, contrast of reconstructions and of each prior's
# samples): 1 is best, below is blur or faint images, above is noise or artifacts. Prefixes:
# every key below them.
CLOSER_TO_ONE = ("sharpness_ratio.", "contrast_ratio.")
# the rows shown first (the page keeps the rest folded); an entry ending in "." stands for
# every key below it, in the order the runs give them
HEADLINE = (
    "psnr", "ssim", "neg_elbo_nats_per_dim", "neg_elbo_bits_per_dim", "iwae_nll_nats_per_dim",
    "iwae_bits_per_dim", "fid.fd_samples", "fid.fd_reconstructions", "sharpness_ratio.",
    "contrast_ratio.", "objective.total", "kl_nats_per_image", "active_units", "latent_dims",
    "posterior_gap.kl", "posterior_gap.mmd", "run.steps", "run.best_val_total",
)  # fmt: skip


def _headline_rank(key: str) -> int | None:
    for i, entry in enumerate(HEADLINE):
        if key == entry or (entry.endswith(".") and key.startswith(entry)):
            return i
    return None


def is_headline(key: str) -> bool:
    """True for a :data:`HEADLINE` metric (the rows the Compare tab shows first).

    Example:
        >>> from vaekit.explore import is_headline
        >>> is_headline("psnr"), is_headline("sharpness_ratio.samples.gmm"), is_headline("ssim.x")
        (True, True, False)
    """
    return _headline_rank(key) is not None


def closer_to_one(key: str) -> bool:
    """True for a ratio to the real images (:data:`CLOSER_TO_ONE`), best when nearest 1.

    Example:
        >>> from vaekit.explore import closer_to_one
        >>> closer_to_one("sharpness_ratio.reconstructions"), closer_to_one("psnr")
        (True, False)
    """
    return key.startswith(CLOSER_TO_ONE)


def _device(vae: torch.nn.Module) -> torch.device:
    p = next(vae.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _check_units(vae, units: Sequence[int]) -> list[int]:
    shape = vae.latent_shape
    count = shape[0]
    units = [int(u) for u in units]
    bad = [u for u in units if not 0 <= u < count]
    if bad:
        what = "channels" if len(shape) > 1 else "dimensions"
        raise ValueError(f"latent units must be {what} in [0, {count}), got {bad}")
    return units


def sample(vae: torch.nn.Module, n: int, temperature: float = 1.0, seed: int = 0) -> torch.Tensor:
    """``n`` images from the model's prior at ``temperature``; the same seed, the same images.

    Args:
        vae: a VAE in eval mode. n: how many. temperature: the prior draw's scale (1: the
            prior itself; below 1: safer, blander samples).
        seed: seed of a fresh ``torch.Generator`` on the model's device.

    Shape:
        output: (n, C, H, W) float32 in [0, 1].

    Example:
        >>> import torch, vaekit as vk
        >>> from vaekit.explore import sample
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=16, widths=(4, 8),
        ...                           latent_dim=4, attention_at=())).eval()
        >>> a, b = sample(vae, 4, 0.8, seed=1), sample(vae, 4, 0.8, seed=1)
        >>> a.shape, torch.equal(a, b), torch.equal(a, sample(vae, 4, 0.8, seed=2))
        (torch.Size([4, 1, 16, 16]), True, False)
    """
    check_int(n, "n", minimum=1)
    check_int(seed, "seed", minimum=0)
    gen = torch.Generator(device=_device(vae)).manual_seed(seed)
    with torch.inference_mode():
        return vae.sample(n, temperature=float(temperature), generator=gen).float().clamp(0, 1)


def encode(vae: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The posterior mean of each image (the code the sliders start from).

    Shape:
        x: (N, C, H, W); output: (N, *vae.latent_shape).

    Example:
        >>> import torch, vaekit as vk
        >>> from vaekit.explore import encode
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=16, widths=(4, 8),
        ...                           latent="spatial", latent_channels=2, attention_at=()))
        >>> encode(vae.eval(), torch.rand(3, 1, 16, 16)).shape
        torch.Size([3, 2, 4, 4])
    """
    check_image(x, "x")
    with torch.inference_mode():
        return vae.encode(x.to(_device(vae))).mode().float()


def unit_kl(vae: torch.nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Mean KL(q(z|x) || N(0, I)) per latent unit over the images, in nats: per dimension of a
    flat latent, per channel of a spatial one (summed over its positions).

    Shape:
        x: (N, C, H, W); output: (latent_shape[0],) float64.

    Example:
        >>> import torch, vaekit as vk
        >>> from vaekit.explore import unit_kl
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=16, widths=(4, 8),
        ...                           latent="spatial", latent_channels=3, attention_at=()))
        >>> kl = unit_kl(vae.eval(), torch.rand(5, 1, 16, 16))
        >>> kl.shape, bool((kl >= 0).all())
        (torch.Size([3]), True)
    """
    check_image(x, "x")
    total = None
    with torch.inference_mode():
        for chunk in x.split(batch_size):
            kl = vae.encode(chunk.to(_device(vae))).kl_elementwise().double()
            kl = kl.flatten(2).sum(-1) if kl.ndim > 2 else kl  # (B, units)
            total = kl.sum(0) if total is None else total + kl.sum(0)
    return (total / len(x)).cpu()


def top_units(kl: torch.Tensor, k: int = 8) -> list[int]:
    """The ``k`` latent units with the most KL, most first (the informative ones).

    Example:
        >>> import torch
        >>> from vaekit.explore import top_units
        >>> top_units(torch.tensor([0.1, 3.0, 0.0, 1.5]), k=2)
        [1, 3]
    """
    check_int(k, "k", minimum=1)
    return kl.flatten().argsort(descending=True, stable=True)[:k].tolist()


def edit_code(
    vae: torch.nn.Module, z: torch.Tensor, units: Sequence[int], values: Sequence[float]
) -> torch.Tensor:
    """A copy of ``z`` with latent units moved: a flat dimension set to its value, a spatial
    channel shifted by its value at every position.

    Shape:
        z: (N, *latent_shape); output: the same.

    Example:
        >>> import torch, vaekit as vk
        >>> from vaekit.explore import edit_code
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=16, widths=(4, 8),
        ...                           latent="spatial", latent_channels=2, attention_at=()))
        >>> z = torch.zeros(1, 2, 4, 4)
        >>> edit_code(vae, z, [1], [0.5]).sum(dim=(2, 3))   # 16 positions of channel 1
        tensor([[0., 8.]])
    """
    units = _check_units(vae, units)
    if len(units) != len(values):
        raise ValueError(f"got {len(values)} values for {len(units)} latent units")
    z = z.detach().to(_device(vae)).clone()
    if z.shape[1:] != tuple(vae.latent_shape):
        raise ValueError(f"z must have shape (N, *{tuple(vae.latent_shape)}), got {tuple(z.shape)}")
    for u, v in zip(units, values):
        if z.ndim > 2:
            z[:, u] += float(v)  # spatial: a per-channel offset at every position
        else:
            z[:, u] = float(v)  # flat: the dimension's value
    return z


def decode_units(
    vae: torch.nn.Module, z: torch.Tensor, units: Sequence[int], values: Sequence[float]
) -> torch.Tensor:
    """Decode ``z`` with some latent units moved: a flat dimension set to its value, a spatial
    channel shifted by its value (an offset at every position).

    Args:
        vae: a VAE. z: codes (N, *latent_shape), e.g. from :func:`encode`.
        units: dimensions (flat) or channels (spatial). values: one per unit.

    Shape:
        output: (N, C, H, W) in [0, 1].

    Example:
        >>> import torch, vaekit as vk
        >>> from vaekit.explore import decode_units, encode
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=16, widths=(4, 8),
        ...                           latent_dim=4, attention_at=())).eval()
        >>> z = encode(vae, torch.rand(1, 1, 16, 16))
        >>> same = decode_units(vae, z, [2], [float(z[0, 2])])
        >>> torch.allclose(same, vae.decode(z.clone()).clamp(0, 1)), decode_units(vae, z, [2], [3.0]).shape
        (True, torch.Size([1, 1, 16, 16]))
    """
    with torch.inference_mode():
        return vae.decode(edit_code(vae, z, units, values)).float().clamp(0, 1)


def traverse(
    vae: torch.nn.Module, z: torch.Tensor, unit: int, span: float = 3.0, steps: int = 9
) -> torch.Tensor:
    """One latent unit walked from ``-span`` to ``+span`` (Higgins et al. 2017), the rest of
    the code held: a flat dimension takes the values, a spatial channel is offset by them.

    Shape:
        z: (1, *latent_shape); output: (steps, C, H, W) in [0, 1].

    Example:
        >>> import torch, vaekit as vk
        >>> from vaekit.explore import encode, traverse
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=3, image_size=16, widths=(4, 8),
        ...                           latent_dim=4, attention_at=())).eval()
        >>> traverse(vae, encode(vae, torch.rand(1, 3, 16, 16)), unit=1, steps=5).shape
        torch.Size([5, 3, 16, 16])
    """
    check_int(steps, "steps", minimum=2)
    if not (isinstance(span, (int, float)) and span > 0):
        raise ValueError(f"span must be a number > 0, got {span!r}")
    if z.shape[0] != 1:
        raise ValueError(f"z must be one code (1, *latent_shape), got {tuple(z.shape)}")
    values = torch.linspace(-span, span, steps).tolist()
    zs = torch.cat([edit_code(vae, z, [unit], [v]) for v in values])
    with torch.inference_mode():
        return vae.decode(zs).float().clamp(0, 1)


def interpolate(
    vae: torch.nn.Module, x1: torch.Tensor, x2: torch.Tensor, steps: int = 8, method="slerp"
) -> torch.Tensor:
    """The two images with the decoded path between their codes (``vae.interpolate``).

    Args:
        x1, x2: one image each, (C, H, W) or (1, C, H, W). steps: points on the path,
            both ends included. method: ``"slerp"`` or ``"linear"``.

    Shape:
        output: (steps + 2, C, H, W): x1, the path, x2.

    Example:
        >>> import torch, vaekit as vk
        >>> from vaekit.explore import interpolate
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=16, widths=(4, 8),
        ...                           latent_dim=4, attention_at=())).eval()
        >>> interpolate(vae, torch.rand(1, 16, 16), torch.rand(1, 16, 16), steps=4).shape
        torch.Size([6, 1, 16, 16])
    """
    check_choice(method, ("slerp", "linear"), "method")
    x1, x2 = (x if x.ndim == 4 else x[None] for x in (x1, x2))
    check_image(x1, "x1")
    check_image(x2, "x2")
    if x1.shape[0] != 1 or x1.shape != x2.shape:
        raise ValueError(f"x1, x2 must be one image each, got {tuple(x1.shape)}, {tuple(x2.shape)}")
    dev = _device(vae)
    with torch.inference_mode():
        path = vae.interpolate(x1.to(dev), x2.to(dev), steps=steps, method=method)[:, 0]
        return torch.cat([x1.to(dev), path.float().clamp(0, 1), x2.to(dev)]).cpu()


@dataclass
class ReconReport:
    """An image, its reconstruction, the error heat map, and their numbers.

    Attributes:
        x, recon: (1, C, H, W). error: (1, 3, H, W) heat map (see
        :func:`~vaekit.explore.images.error_map`); max_error: the error its top colour means.
        psnr (dB), ssim: of recon against x. stats_x, stats_recon: ``vk.metrics.image_stats``
        (sharpness, brightness, contrast, min, max) as floats.
    """

    x: torch.Tensor
    recon: torch.Tensor
    error: torch.Tensor
    max_error: float
    psnr: float
    ssim: float
    stats_x: dict[str, float]
    stats_recon: dict[str, float]

    def markdown(self) -> str:
        """The numbers as a Markdown table."""
        lines = [
            f"PSNR **{self.psnr:.2f} dB**, SSIM **{self.ssim:.4f}**, largest absolute error "
            f"{self.max_error:.3f} (the white end of the error map)",
            "",
            "| | image | reconstruction | ratio |",
            "|---|---|---|---|",
        ]
        for key in self.stats_x:
            a, b = self.stats_x[key], self.stats_recon[key]
            ratio = f"{b / a:.3g}" if abs(a) > 1e-12 else "–"
            lines.append(f"| {key} | {a:.4g} | {b:.4g} | {ratio} |")
        return "\n".join(lines)


def reconstruct(vae: torch.nn.Module, x: torch.Tensor) -> ReconReport:
    """Reconstruct one image (posterior mean) and measure it: PSNR, SSIM, image statistics.

    A sharpness ratio (reconstruction / image) well below 1 is blur; brightness and
    contrast that move are washed-out reconstructions.

    Shape:
        x: (1, C, H, W) or (C, H, W) in [0, 1], at least 7 x 7 pixels (SSIM's window).

    Example:
        >>> import torch, vaekit as vk
        >>> from vaekit.explore import reconstruct
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=16, widths=(4, 8),
        ...                           latent_dim=4, attention_at=())).eval()
        >>> report = reconstruct(vae, torch.rand(1, 1, 16, 16))
        >>> report.recon.shape, sorted(report.stats_x)
        (torch.Size([1, 1, 16, 16]), ['brightness', 'contrast', 'max', 'min', 'sharpness'])
    """
    x = x if x.ndim == 4 else x[None]
    check_image(x, "x")
    if x.shape[0] != 1:
        raise ValueError(f"x must be one image, got a batch of {x.shape[0]}")
    x = x.float().to(_device(vae))
    with torch.inference_mode():
        recon = vae.reconstruct(x).float().clamp(0, 1)
        err = (x - recon).abs().mean(1)
        window = min(11, *x.shape[-2:])
        window -= 1 - window % 2  # SSIM needs an odd window no larger than the image
        return ReconReport(
            x=x.cpu(),
            recon=recon.cpu(),
            error=error_map(x, recon).cpu(),
            max_error=float(err.max()),
            psnr=float(psnr(recon, x)),
            ssim=float(ssim(recon, x, window_size=window)),
            stats_x=image_stats(x).mean(),
            stats_recon=image_stats(recon).mean(),
        )


def reconstruct_batch(vae: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``vae.reconstruct`` (decode the posterior mean) of a batch, clamped to [0, 1].

    Shape:
        x: (N, C, H, W); output: the same.

    Example:
        >>> import torch, vaekit as vk
        >>> from vaekit.explore import reconstruct_batch
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=16, widths=(4, 8),
        ...                           latent_dim=4, attention_at=())).eval()
        >>> reconstruct_batch(vae, torch.rand(3, 1, 16, 16)).shape
        torch.Size([3, 1, 16, 16])
    """
    check_image(x, "x")
    with torch.inference_mode():
        return vae.reconstruct(x.float().to(_device(vae))).float().clamp(0, 1).cpu()


# -- comparing runs -----------------------------------------------------------------------------
def _flatten(metrics: Mapping, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        elif _is_number(value) or (isinstance(value, str) and len(value) <= 40):
            out[name] = value  # numbers and short words; not lists, paths or long notes
    return out


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class MetricRow:
    """One metric across runs: ``values`` (None where a run lacks it) and ``best``, the index
    of the better value when the metric has a direction and the values differ, else None."""

    name: str
    values: list[object]
    best: int | None


def metrics_rows(metrics: Sequence[Mapping]) -> list[MetricRow]:
    """Several runs' ``metrics.json`` as rows of one table, the better value marked.

    Nested keys are joined with dots (``fid.fd_samples``); the :data:`HEADLINE` metrics come
    first.
    Higher is better for :data:`HIGHER_IS_BETTER`, lower for :data:`LOWER_IS_BETTER`, the
    value nearest 1 (by ratio, so 0.5 and 2 are as far) for the ratios to the real images,
    :data:`CLOSER_TO_ONE`; other rows (step counts, settings) have no mark.

    Example:
        >>> from vaekit.explore import metrics_rows
        >>> rows = metrics_rows([{"psnr": 20.0, "fid": {"fd_samples": 9.0}},
        ...                      {"psnr": 22.5, "fid": {"fd_samples": 12.0}, "note": "x"}])
        >>> [(r.name, r.values, r.best) for r in rows]
        [('psnr', [20.0, 22.5], 1), ('fid.fd_samples', [9.0, 12.0], 0), ('note', [None, 'x'], None)]
        >>> rows = metrics_rows([{"sharpness_ratio": {"reconstructions": r}} for r in (0.3, 1.6)])
        >>> rows[0].name, rows[0].best
        ('sharpness_ratio.reconstructions', 1)
    """
    flat = [_flatten(m) for m in metrics]
    keys: list[str] = []
    for f in flat:
        keys += [k for k in f if k not in keys]
    last = len(HEADLINE)
    keys.sort(key=lambda k: last if _headline_rank(k) is None else _headline_rank(k))  # stable
    rows = []
    for key in keys:
        values = [f.get(key) for f in flat]
        numbers = [(v, i) for i, v in enumerate(values) if _is_number(v)]
        best = None
        if closer_to_one(key):
            numbers = [(abs(math.log(v)), i) for v, i in numbers if v > 0]
            if len({v for v, _ in numbers}) > 1:
                best = min(numbers, key=lambda t: t[0])[1]
        elif key in HIGHER_IS_BETTER | LOWER_IS_BETTER and len({v for v, _ in numbers}) > 1:
            pick = max if key in HIGHER_IS_BETTER else min
            best = pick(numbers, key=lambda t: t[0])[1]  # the first run on a tie
        rows.append(MetricRow(key, values, best))
    return rows


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def metrics_markdown(rows: Sequence[MetricRow], names: Sequence[str]) -> str:
    """A Markdown table of :func:`metrics_rows`, the better value in bold with a ✓.

    Example:
        >>> from vaekit.explore import metrics_markdown, metrics_rows
        >>> print(metrics_markdown(metrics_rows([{"ssim": 0.5}, {"ssim": 0.7}]), ["a", "b"]))
        | metric | a | b |
        |---|---|---|
        | ssim ↑ | 0.5 | **0.7** ✓ |
    """
    names = [str(n).replace("|", "/") for n in names]
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for row in rows:
        arrow = (
            " ↑" if row.name in HIGHER_IS_BETTER else " ↓" if row.name in LOWER_IS_BETTER
            else " →1" if closer_to_one(row.name) else ""
        )  # fmt: skip
        cells = [
            f"**{_fmt(v)}** ✓" if i == row.best else _fmt(v).replace("|", "/")
            for i, v in enumerate(row.values)
        ]
        lines.append(f"| {row.name}{arrow} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


CURVES = (
    ("train", "total", "train total"),
    ("val", "total", "validation total (final β)"),
    ("train", "recon", "train reconstruction"),
    ("train", "kl_raw", "train KL (nats per image)"),
)


def curves_figure(histories: Sequence[Sequence[Mapping]], names: Sequence[str]) -> np.ndarray:
    """Training curves of several runs (their ``history.csv`` rows) on shared axes: one panel
    per curve (train total, validation total, reconstruction, KL), one line per run, x = step.

    A panel whose values are all positive uses a log scale. Drawn with matplotlib's Agg
    canvas (no pyplot state, so safe in a server's threads).

    Returns:
        an RGB picture (H, W, 3) uint8, or an empty array (0, 0, 3) when no run has a curve.

    Example:
        >>> from vaekit.explore import curves_figure
        >>> a = [{"step": s, "split": "train", "total": 1 / s} for s in (1, 2, 3)]
        >>> b = [{"step": s, "split": "train", "total": 2 / s} for s in (1, 2, 3)]
        >>> curves_figure([a, b], ["run a", "run b"]).shape[-1]
        3
        >>> curves_figure([[]], ["empty"]).shape
        (0, 0, 3)
    """
    if len(histories) != len(names):
        raise ValueError(f"got {len(histories)} histories for {len(names)} names")
    panels = []
    for split, column, title in CURVES:
        lines = []
        for rows, name in zip(histories, names):
            pts = [
                (r["step"], r[column])
                for r in rows
                if r.get("split") == split
                and _is_number(r.get(column))
                and _is_number(r.get("step"))
            ]
            if pts:
                lines.append((name, pts))
        if lines:
            panels.append((title, lines))
    if not panels:
        return np.zeros((0, 0, 3), dtype=np.uint8)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(2, len(panels))
    rows_n = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(5.2 * cols, 3.4 * rows_n), dpi=90, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    for i, (title, lines) in enumerate(panels):
        ax = fig.add_subplot(rows_n, cols, i + 1)
        for name, pts in lines:
            steps, values = zip(*pts)
            ax.plot(steps, values, marker="o" if len(pts) < 20 else None, ms=3, label=name)
        if all(v > 0 for _, pts in lines for _, v in pts):
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
