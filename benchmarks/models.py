"""Presets: parameter counts and forward+backward throughput on this machine.

    python benchmarks/models.py [--batch 32] [--presets fmnist32 celeba64-bottleneck] [--quick]

Prints a markdown table. ``benchmarks/run.py --parts speed`` is the fuller version: training
steps with the optimiser, against the peer of nearest parameter count, compiled too. Throughput is images/s of forward + backward (MSE + KL) at the
preset's native size, in NCHW and channels_last layouts, fp32 on CPU (this machine has no fast bf16), median of several
timed steps after warm-up. The "matmul ceiling" column is this machine's dense fp32 matmul
rate measured in the same run, to read the figures against.
"""

from __future__ import annotations

import argparse
import platform

import torch
from common import matmul_flops, median_seconds

import vaekit as vk


def matmul_gflops(n: int = 1024) -> float:
    """Dense fp32 matmul GFLOP/s of this CPU (the same measurement as benchmarks/run.py)."""
    return matmul_flops(torch.device("cpu"), n=n) / 1e9


def throughput(name: str, batch: int, steps: int, channels_last: bool = False) -> tuple[int, float]:
    vae = vk.presets.build(name)
    cfg = vae.config
    x = torch.rand(batch, *cfg.data_shape)
    if channels_last:
        vae = vae.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    params = sum(p.numel() for p in vae.parameters())

    def step():
        out = vae(x)
        loss = (out.recon - x).square().mean() + out.posterior.kl().mean() / cfg.data_dims
        loss.backward()
        vae.zero_grad(set_to_none=True)

    return params, batch / median_seconds(step, steps, torch.device("cpu"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--presets", nargs="*", default=None)
    ap.add_argument("--quick", action="store_true", help="2 timed steps instead of 5")
    args = ap.parse_args()
    names = args.presets or vk.presets.available()
    steps = 2 if args.quick else 5
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    print(f"dense fp32 matmul: {matmul_gflops():.1f} GFLOP/s\n")
    print(f"| preset | params | fwd+bwd img/s, NCHW | channels_last | (batch {args.batch}) |")
    print("|---|---:|---:|---:|---|")
    for name in names:
        params, ips = throughput(name, args.batch, steps)
        _, ips_cl = throughput(name, args.batch, steps, channels_last=True)
        print(f"| {name} | {params / 1e6:.2f} M | {ips:.1f} | {ips_cl:.1f} | |")


if __name__ == "__main__":
    main()
