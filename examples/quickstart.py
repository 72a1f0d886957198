"""Quickstart: train the ``fmnist32`` preset on Fashion-MNIST and write pictures.

    python examples/quickstart.py [--minutes 3] [--batch-size 64] [--out runs]

Reads Fashion-MNIST from the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist/``), trains with a Bernoulli likelihood and
beta = 0.8 for a fixed wall-clock budget, then writes to ``runs/<date>-quickstart/``:
``samples.png`` (one row per temperature), ``reconstructions.png`` (test images above their
reconstructions), ``model.safetensors``, ``history.csv`` and ``metrics.json``.

This is the minimal loop; ``examples/train.py`` (coming) adds validation, resuming, DDP.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from datetime import datetime
from pathlib import Path

import torch

import vaekit as vk


def make_run_dir(root: Path, name: str) -> Path:
    """runs/<YYYYmmdd-HHMMSS>-<name>/, never overwriting an existing folder."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        path = root / (f"{stamp}-{name}" if i == 0 else f"{stamp}-{name}-{i}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {root}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=3.0, help="training time budget")
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--beta", type=float, default=0.8, help="KL weight (fmnist32 recipe: 0.8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--no-channels-last",
        action="store_true",
        help="keep NCHW memory layout (channels_last is ~1.4x faster for convs on CPU)",
    )
    ap.add_argument("--data-root", default=None, help="folder with the Fashion-MNIST .gz files")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N train images")
    ap.add_argument("--out", default="runs", help="parent folder of the run folder")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    x_train, _ = vk.data.load_fashion_mnist("train", root=args.data_root, limit=args.limit)
    x_test, _ = vk.data.load_fashion_mnist("test", root=args.data_root, limit=2000)
    run = make_run_dir(Path(args.out), "quickstart")
    print(f"[quickstart] {len(x_train)} train images, writing to {run}")

    vae = vk.presets.build("fmnist32")
    layout = torch.contiguous_format if args.no_channels_last else torch.channels_last
    vae = vae.to(memory_format=layout)
    x_train = x_train.contiguous(memory_format=layout)
    loss_fn = vk.losses.VAELoss(recon=vk.losses.build("bce"), kl=vk.losses.KL(), beta=args.beta)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(args.seed)

    history, step, t0 = [], 0, time.perf_counter()
    budget = args.minutes * 60.0
    vae.train()
    while time.perf_counter() - t0 < budget and (args.max_steps is None or step < args.max_steps):
        idx = torch.randint(len(x_train), (args.batch_size,), generator=gen)
        x = x_train[idx]
        res = loss_fn(vae(x), x, step=step)
        opt.zero_grad(set_to_none=True)
        res.total.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 5.0)
        opt.step()
        step += 1
        if step % 50 == 0 or step == 1:
            row = {
                "step": step,
                "time": round(time.perf_counter() - t0, 2),
                "total": res.total.item(),
            }
            row.update({k: v.item() for k, v in res.terms.items()})
            history.append(row)
            print(
                f"[quickstart] step {step:5d}  "
                + "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "step")
            )

    vae.eval()
    # -ELBO per dimension on test images: Bernoulli NLL of a posterior sample + KL / D_x
    elbo_fn = vk.losses.VAELoss(recon=vk.losses.build("bce"), kl=vk.losses.KL(), beta=1.0)
    with torch.no_grad():
        neg_elbo = []
        for xb in x_test.split(500):
            q = vae.encode(xb)
            z = q.sample(generator=gen)
            neg_elbo.append(elbo_fn(vk.VAEOutput(vae.decode(z), q, z), xb).total)
        x_hat = vae.reconstruct(x_test)
        psnr = vk.metrics.psnr(x_hat, x_test).item()
        vk.viz.reconstruction_grid(x_test[:16], x_hat[:16], path=run / "reconstructions.png")
        vk.viz.sample_grid(
            vae, 16, temperatures=(0.5, 0.8, 1.0), generator=gen, path=run / "samples.png"
        )
    vae.save(run / "model.safetensors")
    metrics = {
        "steps": step,
        "images_seen": step * args.batch_size,
        "seconds": round(time.perf_counter() - t0, 1),
        "test_psnr": round(psnr, 3),
    }
    metrics["test_neg_elbo_nats_per_dim"] = round(torch.stack(neg_elbo).mean().item(), 5)
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    with open(run / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[-1]))
        writer.writeheader()
        writer.writerows(history)
    print(f"[quickstart] done: {json.dumps(metrics)}")
    print(f"[quickstart] pictures: {run / 'samples.png'} and {run / 'reconstructions.png'}")


if __name__ == "__main__":
    main()
