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

``--peers`` adds the loss packages a user could pick instead (``benchmarks/run.py --parts
losses`` uses the same rows): pytorch-msssim, piq, kornia, lpips, focal-frequency-loss and
MONAI, each next to the vaekit loss that computes the same value (up to float rounding;
network losses: the same architecture, random weights), at 32x3x64x64 and 32x1x256x256.
Where a peer needs other arguments or a rescaling to compute that value, the pair applies
them (kornia's SSIM is ``(1 - SSIM) / 2``; MONAI's JukeboxLoss transforms over channels
too). Peers without a vaekit loss of the same definition are not paired (kornia's
``MS_SSIMLoss``, an MS-SSIM + L1 mix; MONAI's ResNet-50 perceptual loss). A peer that is
missing, needs a weights download, or refuses the image size is a row that says so.

Perceptual and LPIPS use random backbones (``weights=None``): the timing is the same as with
ImageNet weights, and the benchmark never needs a download.
"""

from __future__ import annotations

import argparse
import platform
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from common import interleaved_seconds, median_seconds

import vaekit as vk

CPU = torch.device("cpu")


def timeit(step: Callable[[], None], repeats: int) -> float:
    """Median milliseconds of ``step`` (on the CPU) after one warm-up call."""
    return 1e3 * median_seconds(step, repeats, CPU)


def timeit_pair(a: Callable[[], None], b: Callable[[], None], repeats: int) -> tuple[float, float]:
    """Median milliseconds of ``a`` and ``b``, interleaved so both see the same machine load."""
    ms_a, ms_b = (1e3 * s for s in interleaved_seconds([a, b], repeats, CPU))
    return ms_a, ms_b


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


def _gray_to_rgb(fn: Callable) -> Callable:
    """Peers that need 3 channels get grayscale repeated, as vaekit does internally."""

    def call(a, b):
        if a.shape[1] == 1:
            a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
        return fn(a, b)

    return call


_TORCHVISION_WEIGHTS = {"vgg": "vgg16-397923af.pth", "alex": "alexnet-owt-7be5be79.pth"}


def _peer_pairs() -> list[tuple[str, Callable, str, str, Callable]]:
    """(vaekit label, vaekit builder, peer package, peer label, peer builder) per comparison."""

    def msssim(fn_name):
        def build():
            import pytorch_msssim

            fn = getattr(pytorch_msssim, fn_name)
            return lambda a, b: 1 - fn(a, b, data_range=1.0)

        return build

    def piq_loss(cls_name):
        def build():
            import piq

            return getattr(piq, cls_name)(data_range=1.0)

        return build

    def kornia_ssim():
        import kornia

        # kornia's SSIMLoss is (1 - SSIM) / 2 with "same" padding; vaekit (like
        # pytorch-msssim) averages SSIM over the valid window positions
        loss = kornia.losses.SSIMLoss(11, padding="valid")
        return lambda a, b: 2 * loss(a, b)

    def monai_ssim():
        from monai.losses import SSIMLoss

        return SSIMLoss(spatial_dims=2, data_range=1.0)

    def monai_lpips_vgg():
        from monai.losses import PerceptualLoss

        # MONAI's "vgg" is lpips.LPIPS(net="vgg") (heads random with pretrained=False), whose
        # trunk loads torchvision ImageNet weights
        name = _TORCHVISION_WEIGHTS["vgg"]
        where = Path(torch.hub.get_dir()) / "checkpoints"
        if not (where / name).is_file():  # never download from a benchmark
            raise FileNotFoundError(f"needs ImageNet weights {name} in {where}")
        loss = PerceptualLoss(spatial_dims=2, network_type="vgg", pretrained=False)
        # lpips takes [-1, 1] images; vaekit's LPIPSLoss maps [0, 1] to [-1, 1] itself
        return _gray_to_rgb(lambda a, b: loss(2 * a - 1, 2 * b - 1))

    def monai_jukebox():
        from monai.losses import JukeboxLoss

        loss = JukeboxLoss(spatial_dims=2)
        # JukeboxLoss(spatial_dims=2) runs fftn over (C, H, W); one channel per image makes it
        # the per-channel 2-D spectrum that vaekit's fft uses (mean over B·C·H·W either way)
        return lambda a, b: loss(a.reshape(-1, 1, *a.shape[-2:]), b.reshape(-1, 1, *b.shape[-2:]))

    def ffl():
        from focal_frequency_loss import FocalFrequencyLoss

        return FocalFrequencyLoss()

    def lpips_ref():
        import lpips

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ref = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
        return _gray_to_rgb(lambda a, b: ref(a, b, normalize=True).mean())

    ssim = lambda: vk.losses.build("ssim")
    ms_ssim = lambda: vk.losses.build("ms_ssim")
    return [
        ("ssim", ssim, "pytorch-msssim", "pytorch_msssim.ssim", msssim("ssim")),
        ("ssim", ssim, "piq", "piq.SSIMLoss", piq_loss("SSIMLoss")),
        ("ssim", ssim, "kornia", "2 * kornia.losses.SSIMLoss(11, padding='valid')", kornia_ssim),
        ("ssim", ssim, "monai", "monai.losses.SSIMLoss", monai_ssim),
        ("ms_ssim", ms_ssim, "pytorch-msssim", "pytorch_msssim.ms_ssim", msssim("ms_ssim")),
        ("ms_ssim", ms_ssim, "piq", "piq.MultiScaleSSIMLoss", piq_loss("MultiScaleSSIMLoss")),
        ("lpips (alex)", lambda: vk.losses.LPIPSLoss(weights=None), "lpips",
         "lpips.LPIPS(net='alex')", lpips_ref),
        ("lpips (vgg)", lambda: vk.losses.LPIPSLoss(net="vgg", weights=None), "monai",
         "monai PerceptualLoss(vgg) (LPIPS-VGG)", monai_lpips_vgg),
        ("fft (focal=1)", lambda: vk.losses.FFTLoss(focal=1.0), "focal-frequency-loss",
         "FocalFrequencyLoss()", ffl),
        ("fft (amplitude, squared)",
         lambda: vk.losses.FFTLoss(amplitude_only=True, squared=True), "monai",
         "monai JukeboxLoss (per channel)", monai_jukebox),
    ]  # fmt: skip


def peer_rows(
    shape: tuple[int, int, int, int], repeats: int, available: Callable[[str], bool],
    reason: Callable[[str], str | None] = lambda p: None,
) -> list[dict]:  # fmt: skip
    """Forward + backward ms of each vaekit loss and each peer's, interleaved, at ``shape``."""
    x = torch.rand(*shape)
    rows = []
    for ours_label, ours_build, package, peer_label, peer_build in _peer_pairs():
        row = {"shape": list(shape), "loss": ours_label, "peer_package": package,
               "peer": peer_label}  # fmt: skip
        rows.append(row)
        if not available(package):
            row["unavailable"] = reason(package) or "not installed"
            continue
        ours = ours_build()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                peer = peer_build()
                peer(torch.rand(2, *shape[1:]), torch.rand(2, *shape[1:]))  # accepts this size?
        except Exception as err:
            msg = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
            if "urlopen" in msg or "URLError" in msg or "HTTP" in msg:
                msg = f"needs a weights download, impossible offline ({msg})"
            row["unavailable"] = msg
            continue
        a, b = timeit_pair(fwd_bwd(ours, x), fwd_bwd(peer, x), repeats)
        row.update(ours_ms=a, peer_ms=b, speedup=b / a)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    parser.add_argument("--peers", action="store_true", help="also time the loss peers")
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
    if args.peers:
        from common import peer_status

        print("\n| loss | shape | peer | vaekit (ms) | peer (ms) | peer / vaekit |")
        print("|---|---|---|---:|---:|---:|")
        for shape in ((args.batch, 3, args.size, args.size), (args.batch, 1, 256, 256)):
            for r in peer_rows(shape, repeats, lambda p: peer_status(p).available,
                               lambda p: peer_status(p).reason):  # fmt: skip
                dims = "x".join(map(str, r["shape"]))
                if "unavailable" in r:
                    print(f"| `{r['loss']}` | {dims} | {r['peer']} | | | {r['unavailable']} |")
                else:
                    print(f"| `{r['loss']}` | {dims} | {r['peer']} | {r['ours_ms']:.1f} | "
                          f"{r['peer_ms']:.1f} | {r['speedup']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
