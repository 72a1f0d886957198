"""Losses: forward + backward time of every registered loss, and wrapper overhead.

    python benchmarks/losses.py [--batch 32] [--size 64] [--repeats 10] [--threads 1] [--quick]

Prints a markdown table: median milliseconds of ``loss(recon, x).backward()`` at
B x 3 x size x size on CPU (fp32) for each name in ``vk.losses.available()`` (``kl`` on a
B x 256 posterior), then the ratios the loss issue asks for:

- ``ssim`` / ``ms_ssim`` vs calling pytorch-msssim directly (``ms_ssim`` at 176 px, the
  smallest size pytorch-msssim accepts with its 5 levels, rounded up);
- ``lpips`` vs the lpips package directly (same AlexNet trunk);
- ``perceptual`` (VGG16 truncated after relu3_3, target without autograd) vs a hand-written
  loss that runs torchvision's full VGG16 feature stack on both images (frozen, and the
  common unfrozen copy-paste version). At 64 px the layers after relu3_3 are only ~40 % of
  VGG16's forward MACs (conv4 at 8x8, conv5 at 4x4), and backward never reaches them in
  either version, so truncation alone bounds the frozen ratio near 1/1.6 of the forward.

The pairs are timed interleaved (a, b, a, b, ...) so that load from other processes hits both.

Perceptual and LPIPS use random backbones (``weights=None``): the timing is the same as with
ImageNet weights, and the benchmark never needs a download.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import torch

import vaekit as vk


def timeit(step: Callable[[], None], repeats: int) -> float:
    """Median milliseconds of ``step`` after one warm-up call."""
    step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def timeit_pair(a: Callable[[], None], b: Callable[[], None], repeats: int) -> tuple[float, float]:
    """Median milliseconds of ``a`` and ``b``, interleaved so both see the same machine load."""
    a(), b()
    times_a, times_b = [], []
    for _ in range(repeats):
        for step, times in ((a, times_a), (b, times_b)):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times_a), 1e3 * statistics.median(times_b)


def fwd_bwd(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor):
    recon = torch.rand_like(x).requires_grad_(True)

    def step():
        recon.grad = None
        loss_fn(recon, x).backward()

    return step


def kl_step(batch: int) -> Callable[[], None]:
    mean = torch.randn(batch, 256, requires_grad=True)
    logvar = torch.randn(batch, 256, requires_grad=True)
    kl = vk.losses.KL(free_bits=0.05)
    return lambda: kl(mean, logvar).backward()


def registry_rows(batch: int, size: int, repeats: int) -> list[tuple[str, float]]:
    x = torch.rand(batch, 3, size, size)
    rows = []
    for name in vk.losses.available():
        if name == "kl":
            rows.append((name, timeit(kl_step(batch), repeats)))
            continue
        kwargs = {"weights": None} if name in ("perceptual", "lpips") else {}
        loss = vk.losses.build(name, **kwargs)
        rows.append((name, timeit(fwd_bwd(loss, x), repeats)))
    return rows


def full_vgg16_feature_loss(
    frozen: bool = True,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """What one writes by hand: torchvision's whole VGG16 feature stack, both images.

    ``frozen=False`` is the common copy-paste version that forgets ``requires_grad_(False)``,
    so every backward also computes (and throws away) VGG16's weight gradients.
    """
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs["D"]).eval().requires_grad_(not frozen)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    taps = {3, 8, 15}  # relu1_2, relu2_2, relu3_3: the same layers as vk's default

    def feats(x):
        h, out = (x - mean) / std, []
        for i, layer in enumerate(features):
            h = layer(h)
            if i in taps:
                out.append(h)
        return out

    def loss(recon, x):
        return sum((a - b).square().mean() for a, b in zip(feats(recon), feats(x)))

    return loss


def ratio_rows(batch: int, size: int, repeats: int) -> list[tuple[str, float, float]]:
    import lpips
    import pytorch_msssim

    x = torch.rand(batch, 3, size, size)
    big = torch.rand(batch, 3, 176, 176)
    ours_ssim, ours_ms = vk.losses.build("ssim"), vk.losses.build("ms_ssim")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref_lpips = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    ours_lpips = vk.losses.LPIPSLoss(weights=None)
    ours_lpips.model.load_state_dict(ref_lpips.state_dict())
    pairs = [
        (
            f"ssim vs pytorch_msssim.ssim ({size} px)",
            fwd_bwd(ours_ssim, x),
            fwd_bwd(lambda a, b: 1 - pytorch_msssim.ssim(a, b, data_range=1.0), x),
        ),
        (
            "ms_ssim vs pytorch_msssim.ms_ssim (176 px)",
            fwd_bwd(ours_ms, big),
            fwd_bwd(lambda a, b: 1 - pytorch_msssim.ms_ssim(a, b, data_range=1.0), big),
        ),
        (
            f"lpips vs lpips.LPIPS(net='alex') ({size} px)",
            fwd_bwd(ours_lpips, x),
            fwd_bwd(lambda a, b: ref_lpips(a, b, normalize=True).mean(), x),
        ),
        (
            f"perceptual vs full VGG16 features ({size} px)",
            fwd_bwd(vk.losses.PerceptualLoss(weights=None), x),
            fwd_bwd(full_vgg16_feature_loss(), x),
        ),
        (
            f"perceptual vs full VGG16, weights not frozen ({size} px)",
            fwd_bwd(vk.losses.PerceptualLoss(weights=None), x),
            fwd_bwd(full_vgg16_feature_loss(frozen=False), x),
        ),
    ]
    return [(label, *timeit_pair(a, b, repeats)) for label, a, b in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} thread(s), batch {args.batch}x3x{args.size}x{args.size}, fp32, "
        f"median of {repeats}\n"
    )
    print("| loss | forward + backward (ms) |\n|---|---:|")
    for name, ms in registry_rows(args.batch, args.size, repeats):
        print(f"| `{name}` | {ms:.1f} |")
    print(
        "\n| comparison | vaekit (ms) | reference (ms) | vaekit / reference |\n|---|---:|---:|---:|"
    )
    for label, ours, ref in ratio_rows(args.batch, args.size, repeats):
        print(f"| {label} | {ours:.1f} | {ref:.1f} | {ours / ref:.3f} |")


if __name__ == "__main__":
    main()
