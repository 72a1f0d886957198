"""Benchmark: batched ``vk.metrics.iwae_nll`` vs a naive per-sample Python loop.

K = 64 importance samples on 1,000 Fashion-MNIST test images (padded 28 -> 32) with the
``fmnist32`` preset. The naive version loops over images and, per image, over the K samples,
decoding one latent at a time (the loop ``iwae_nll`` avoids). Both run in this process, on
the same model and data; the model is untrained (timing does not depend on the weights).

    python benchmarks/iwae.py            # full: 1,000 images, naive loop on all of them
    python benchmarks/iwae.py --quick    # 200 images, naive loop on 50 (extrapolated)
    python benchmarks/iwae.py --device cuda

Data: the Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``).
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import vaekit as vk
from vaekit.metrics.likelihood import log_likelihood


@torch.no_grad()
def naive_iwae_nll(vae: torch.nn.Module, x: torch.Tensor, k: int, generator) -> torch.Tensor:
    """Reference: a Python loop over images and over importance samples."""
    out = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1]
        q = vae.encode(xi)
        log_w = []
        for _ in range(k):
            z = q.sample(generator=generator)
            log_px = log_likelihood(vae.decode(z), xi, "bernoulli")
            log_pz = (-0.5 * (math.log(2 * math.pi) + z.square())).sum().double()
            log_w.append(log_px[0] + log_pz - q.log_prob(z)[0].double())
        out.append(math.log(k) - torch.logsumexp(torch.stack(log_w), 0))
    return torch.stack(out)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="200 images, naive loop on 50")
    p.add_argument("--images", type=int, default=None, help="images for iwae_nll (1000)")
    p.add_argument("--naive-images", type=int, default=None, help="images for the naive loop")
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=None, help="iwae_nll batch_size (its default)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--data", default=None, help="folder with the Fashion-MNIST .gz files")
    p.add_argument(
        "--no-channels-last",
        action="store_true",
        help="keep the model NCHW (default: channels_last, ~1.5x faster convs on CPU)",
    )
    args = p.parse_args()
    n = args.images or (200 if args.quick else 1000)
    n_naive = min(n, args.naive_images or (50 if args.quick else n))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    x, _ = vk.data.load_fashion_mnist("test", root=args.data, pad_to=32, limit=n)
    x = x.to(device)
    torch.manual_seed(0)
    vae = vk.presets.build("fmnist32").to(device).eval()
    if not args.no_channels_last:  # the same layout for both methods
        vae = vae.to(memory_format=torch.channels_last)
    layout = "NCHW" if args.no_channels_last else "channels_last"
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} {layout}")
    print(f"fmnist32: {sum(p.numel() for p in vae.parameters()):,} parameters; K={args.k}")

    gen = lambda: torch.Generator(device=device).manual_seed(0)
    vk.metrics.iwae_nll(vae, x[:8], k=args.k, generator=gen())  # warm-up
    sync(device)
    t0 = time.perf_counter()
    nll = vk.metrics.iwae_nll(
        vae, x, k=args.k, batch_size=args.batch_size, generator=gen(), reduction="none"
    )
    sync(device)
    t_batched = time.perf_counter() - t0

    t0 = time.perf_counter()
    ref = naive_iwae_nll(vae, x[:n_naive], args.k, gen())
    sync(device)
    t_naive = time.perf_counter() - t0
    t_naive_full = t_naive * n / n_naive

    print(f"iwae_nll (batched):  {t_batched:8.2f} s for {n} images "
          f"({1e3 * t_batched / n:.2f} ms/image)")  # fmt: skip
    extra = "" if n_naive == n else f", extrapolated from {n_naive} images"
    print(f"naive per-sample loop: {t_naive_full:6.2f} s for {n} images{extra} "
          f"({1e3 * t_naive / n_naive:.2f} ms/image)")  # fmt: skip
    print(f"speed-up: {t_naive_full / t_batched:.1f}x")
    a, b = float(nll[:n_naive].mean()), float(ref.mean())
    # draws coincide when K is not split across decoder calls (batch_size a multiple of K)
    print(f"mean NLL on the naive subset: batched {a:.4f} vs naive {b:.4f} nats; all "
          f"{n} images: {vk.metrics.bits_per_dim(float(nll.mean()), 1024):.4f} bits/dim "
          "(Bernoulli, untrained model)")  # fmt: skip


if __name__ == "__main__":
    main()
