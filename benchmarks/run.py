"""vaekit against its peers, side by side in one run: quality at equal budget and speed.

    python benchmarks/run.py --quick                 # minutes; CI runs this
    python benchmarks/run.py --full --write-docs     # about 5 h on 2 idle cores (or in pieces)
    python benchmarks/run.py --full --parts quality --budget-minutes 5 --budget-images 30000 \\
        --systems vaekit-fmnist32 pythae-resnet
    python benchmarks/run.py --full --parts sharpness --name full-sharpness       # about 75 min
    python benchmarks/run.py --full --parts sharpness-levers --name full-levers  # about 12 min
    python benchmarks/run.py --render benchmarks/results/2026-01-01-full.json --write-docs
    python benchmarks/run.py --render q1.json q2.json speed.json --name 2026-01-01-full --write-docs

Parts (``--parts``, comma-separated; default all):

- ``quality``: every system trains on Fashion-MNIST with the same data, seed and batch size
  to a fixed number of images seen and to a fixed wall-clock budget; scored on the test set
  (PSNR, SSIM, -ELBO, active units, classifier-feature FD of reconstructions and samples);
- ``priors``: ``fmnist32`` and the spatial recipe at the quality budgets, sample FD with
  N(0, I) and with each ex-post prior (GMM full/diag, flow, diffusion) and their fit times,
  against pythae's GaussianMixtureSampler and TwoStageVAESampler on its ResNet VAE;
- ``sharpness``: the ``fmnist32`` and spatial recipes, each ± an FFT term and ± an adversarial
  (PatchGAN) term, and AutoencoderKL at the quality budgets: PSNR, SSIM, reconstruction FD,
  sample FD with the best prior (a fixed rule), sharpness and contrast ratios of reconstructions
  and samples against the real images, step time with and without the discriminator's step;
- ``sharpness-levers``: one change at a time to the ``fmnist32`` recipe (L1, MSE, FFT,
  multi-scale, perceptual, lower β, optimal σ, adversarial) at a short images budget;
- ``speed``: training-step images/s of each preset vs the peer of nearest parameter count,
  eager / channels_last / torch.compile (on CUDA: bf16 autocast);
- ``flops``: achieved FLOP/s of a ``celeba64-bottleneck`` step / this machine's matmul FLOP/s;
- ``memory``: peak memory of a training step per preset and its peer (fresh processes);
- ``losses``: vaekit losses vs pytorch-msssim, piq, kornia, lpips, focal-frequency-loss, MONAI;
- ``import``: ``import vaekit`` vs ``import torch``.

Writes ``<out>/<date>-<quick|full>.json`` and ``.md`` (machine, versions, date, ratios);
``--write-docs`` also regenerates the results block of ``docs/benchmarks.md``. Peers install
with ``pip install -e ".[bench]"``; a missing one is reported as a row, never dropped.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# pythae's trainer draws tqdm progress bars; tqdm reads TQDM_* defaults when it is imported
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402
from common import PEERS, exclude_peers, machine_info, peer_status, versions  # noqa: E402

PARTS = ("quality", "priors", "sharpness", "sharpness-levers", "speed", "flops", "memory",
         "losses", "import")  # fmt: skip
DOCS = HERE.parent / "docs" / "benchmarks.md"


def parse_args(argv=None) -> argparse.Namespace:
    from priors import PRIOR_NAMES
    from priors import SYSTEMS as PRIOR_SYSTEMS
    from quality import SYSTEMS
    from sharpness import LEVERS
    from sharpness import SYSTEMS as SHARPNESS_SYSTEMS
    from speed import VARIANTS

    import vaekit as vk

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="tiny budgets (default)")
    mode.add_argument("--full", action="store_true", help="the published figures")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated of {PARTS}")
    ap.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=None,
                    help="quality systems (default: all)")  # fmt: skip
    ap.add_argument("--presets", nargs="+", choices=vk.presets.available(), default=None,
                    help="speed/memory presets (default: all; --quick: fmnist32)")  # fmt: skip
    ap.add_argument("--budget-minutes", type=float, default=None,
                    help="wall-clock training budget per system (full 5, quick 0.1)")  # fmt: skip
    ap.add_argument("--budget-images", type=int, default=None,
                    help="images-seen budget per system (full 30000, quick 640)")  # fmt: skip
    ap.add_argument("--max-train-minutes", type=float, default=None,
                    help="stop a system that has not reached the images budget by then "
                    "(default: 4x the wall-clock budget, at least 2 min)")  # fmt: skip
    ap.add_argument("--train-images", type=int, default=None, help="limit the training set")
    ap.add_argument("--test-images", type=int, default=None, help="full 10000, quick 300")
    ap.add_argument("--prior-systems", nargs="+", choices=PRIOR_SYSTEMS, default=None,
                    help="systems of the priors part (default: all)")  # fmt: skip
    ap.add_argument(
        "--prior-names",
        nargs="+",
        choices=PRIOR_NAMES,
        default=None,
        help="the ex-post priors of the priors part (default: all)",
    )
    ap.add_argument("--prior-fit-images", type=int, default=None,
                    help="training images whose latents fit the priors (full: all, quick 2000)")  # fmt: skip
    ap.add_argument("--flow-iterations", type=int, default=None,
                    help="Flow fit steps (full 3000, quick 100)")  # fmt: skip
    ap.add_argument("--diffusion-iterations", type=int, default=None,
                    help="LatentDiffusion fit steps (full 8000, quick 100)")  # fmt: skip
    ap.add_argument("--edm-iterations", type=int, default=None,
                    help="EDMDiffusion fit steps (full: its default, quick 100)")  # fmt: skip
    ap.add_argument("--two-stage-epochs", type=int, default=None,
                    help="epochs of pythae's second-stage VAE (full 20, quick 1)")  # fmt: skip
    ap.add_argument("--sharpness-systems", nargs="+", choices=SHARPNESS_SYSTEMS, default=None,
                    help="systems of the sharpness part (default: all)")  # fmt: skip
    ap.add_argument("--sharpness-repeats", type=int, default=None,
                    help="timed training steps per system in the sharpness part "
                    "(full 20, quick 2)")  # fmt: skip
    ap.add_argument("--levers", nargs="+", choices=list(LEVERS), default=None,
                    help="levers of the sharpness-levers part (default: all)")  # fmt: skip
    ap.add_argument("--lever-images", type=int, default=None,
                    help="images-seen budget of each lever (full 12000, quick 320)")  # fmt: skip
    ap.add_argument("--speed-variants", default=None,
                    help=f"comma-separated of {VARIANTS} (full: eager,channels_last,"
                    "compile+channels_last; quick: eager,channels_last)")  # fmt: skip
    ap.add_argument("--batch", type=int, default=64, help="training-step batch (speed, memory)")
    ap.add_argument("--speed-max-gflop", type=float, default=None,
                    help="CPU: halve the speed/memory batch while one step of vaekit + peer "
                    "exceeds this many GFLOP (full 600, quick 150; 0: always --batch)")  # fmt: skip
    ap.add_argument("--flops-batch", type=int, default=None, help="full 64, quick 4")
    ap.add_argument("--loss-batch", type=int, default=None, help="full 32, quick 4")
    ap.add_argument("--loss-shapes", default=None,
                    help="comma-separated BxCxHxW (default: B x3x64x64,B x1x256x256)")  # fmt: skip
    ap.add_argument("--classifier-images", type=int, default=None,
                    help="FD classifier training images (full 60000, quick 6000)")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (full 3, quick 2)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps (1; +1 for compile)")
    ap.add_argument("--import-repeats", type=int, default=None, help="full 11, quick 3")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--without", nargs="+", default=[], metavar="PEER",
                    help=f"treat these peers as missing ({', '.join(PEERS)})")  # fmt: skip
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--name", default=None, help="file stem (default <date>-<quick|full>)")
    ap.add_argument("--write-docs", action="store_true", help=f"regenerate results in {DOCS}")
    ap.add_argument("--docs-block", default="results", choices=("results", "sharpness", "priors"),
                    help="with --write-docs: the generated block of docs/benchmarks.md to "
                    "replace (sharpness, priors: runs from another machine than the main one)")  # fmt: skip
    ap.add_argument("--render", type=Path, nargs="+", default=None, metavar="JSON",
                    help="only render existing results (with --write-docs: into docs); several "
                    "JSONs of pieces run one after another are merged into <out>/<name>.json")  # fmt: skip
    args = ap.parse_args(argv)
    args.mode = "full" if args.full else "quick"
    args.quick = quick = args.mode == "quick"
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    bad = sorted(set(args.parts) - set(PARTS))
    if bad:
        ap.error(f"unknown part(s) {bad}; choose from {PARTS}")
    args.systems = args.systems or list(SYSTEMS)
    args.presets = args.presets or (["fmnist32"] if quick else vk.presets.available())
    minutes = args.budget_minutes if args.budget_minutes is not None else (0.1 if quick else 5.0)
    args.budget_seconds = 60.0 * minutes
    args.budget_images = args.budget_images or (640 if quick else 30_000)
    max_minutes = args.max_train_minutes or max(4 * minutes, 2.0)
    args.max_train_seconds = 60.0 * max_minutes
    args.test_images = args.test_images or (300 if quick else 10_000)
    args.prior_systems = args.prior_systems or list(PRIOR_SYSTEMS)
    args.prior_fit_images = args.prior_fit_images or (2_000 if quick else None)
    args.flow_iterations = args.flow_iterations or (100 if quick else 3_000)
    args.diffusion_iterations = args.diffusion_iterations or (100 if quick else 8_000)
    edm_default = inspect.signature(vk.priors.EDMDiffusion.fit).parameters["iterations"].default
    args.edm_iterations = args.edm_iterations or (100 if quick else edm_default)
    args.two_stage_epochs = args.two_stage_epochs or (1 if quick else 20)
    args.sharpness_systems = args.sharpness_systems or list(SHARPNESS_SYSTEMS)
    args.sharpness_repeats = args.sharpness_repeats or (2 if quick else 20)
    args.levers = args.levers or list(LEVERS)
    args.lever_images = args.lever_images or (320 if quick else 12_000)
    full_variants = "eager,channels_last,compile+channels_last"
    variants = args.speed_variants or ("eager,channels_last" if quick else full_variants)
    args.speed_variants = [v.strip() for v in variants.split(",") if v.strip()]
    bad = sorted(set(args.speed_variants) - set(VARIANTS))
    if bad:
        ap.error(f"unknown speed variant(s) {bad}; choose from {VARIANTS}")
    if args.speed_max_gflop is None:
        args.speed_max_gflop = 150.0 if quick else 600.0
    args.flops_batch = args.flops_batch or (4 if quick else 64)
    args.loss_batch = args.loss_batch or (4 if quick else 32)
    b = args.loss_batch
    shapes = args.loss_shapes or f"{b}x3x64x64,{b}x1x256x256"
    try:
        args.loss_shapes = [tuple(int(d) for d in s.split("x")) for s in shapes.split(",")]
    except ValueError:
        ap.error(f"--loss-shapes: expected e.g. 32x3x64x64,32x1x256x256, got {shapes!r}")
    if any(len(s) != 4 for s in args.loss_shapes):
        ap.error(f"--loss-shapes: every shape needs 4 dims, got {shapes!r}")
    args.classifier_images = args.classifier_images or (6_000 if quick else 60_000)
    args.repeats = args.repeats or (2 if quick else 3)
    args.warmup = args.warmup or 1
    args.import_repeats = args.import_repeats or (3 if quick else 11)
    return args


def run(args) -> dict:
    import losses as loss_bench
    import priors
    import quality
    import sharpness
    import speed

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    start = time.perf_counter()
    log = lambda msg: print(msg, flush=True)
    date = datetime.datetime.now().astimezone()
    meta = {
        "mode": args.mode,
        "date": date.strftime("%Y-%m-%d %H:%M %Z"),
        "command": "python benchmarks/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "machine": machine_info(device),
        "versions": versions(),
        "peers": {
            name: {
                "version": peer_status(name).version,
                "available": peer_status(name).available,
                "reason": peer_status(name).reason,
                "used_for": PEERS[name][2],
            }
            for name in PEERS
        },
    }
    res: dict = {"meta": meta, "parts": {}, "errors": {}}
    jobs = {
        "import": lambda: speed.import_times(args.import_repeats, log),
        "losses": lambda: {
            "rows": [
                row
                for shape in args.loss_shapes
                for row in loss_bench.peer_rows(
                    shape,
                    args.repeats,
                    lambda p: peer_status(p).available,
                    lambda p: peer_status(p).reason,
                )
            ]
        },
        "speed": lambda: {
            "batch": args.batch,
            "threads": args.threads,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "max_gflop": args.speed_max_gflop if device.type == "cpu" else 0,
            "rows": speed.throughput_rows(args, device, log),
            "skipped_variants": ", ".join(
                v for v in speed.VARIANTS if v not in args.speed_variants
            ),
        },
        "flops": lambda: speed.flops_ratio(args, device, log),
        "memory": lambda: speed.memory_rows(args, device, log),
        "quality": lambda: quality.run_quality(args, device, log),
        "priors": lambda: priors.run_priors(args, device, log),
        "sharpness": lambda: sharpness.run_sharpness(args, device, log),
        "sharpness-levers": lambda: sharpness.run_levers(args, device, log),
    }
    # the priors and sharpness parts reuse the quality part's trained systems
    if "priors" in args.parts:
        quality.KEEP.update(args.prior_systems)
    if "sharpness" in args.parts:
        quality.KEEP.update(set(args.sharpness_systems) & set(quality.SYSTEMS))
    for part in [p for p in jobs if p in args.parts]:
        t = time.perf_counter()
        log(f"== {part}")
        try:
            res["parts"][part] = jobs[part]()
        except Exception as err:  # one broken part must not hide the others' results
            traceback.print_exc()
            res["errors"][part] = f"{type(err).__name__}: {err}"
        log(f"== {part} done in {time.perf_counter() - t:.0f} s")
    if "priors" in res["parts"] and "quality" in res["parts"]:  # as merge() does
        from report import prior_targets

        priors = res["parts"]["priors"]
        priors["targets"] = prior_targets(priors, res["parts"]["quality"])
    meta["seconds"] = round(time.perf_counter() - start, 1)
    return res


def main(argv=None) -> int:
    args = parse_args(argv)
    exclude_peers(args.without)
    from report import merge, render, write_docs

    if args.render and len(args.render) == 1:
        res = json.loads(args.render[0].read_text())
        md_path = args.render[0].with_suffix(".md")
    elif args.render:
        try:
            res = merge([json.loads(p.read_text()) for p in args.render])
        except ValueError as err:
            raise SystemExit(str(err)) from None
        stem = args.name or f"{res['meta']['pieces'][0]['date'][:10]}-{res['meta']['mode']}"
        args.out.mkdir(parents=True, exist_ok=True)
        json_path, md_path = args.out / f"{stem}.json", args.out / f"{stem}.md"
        if json_path in args.render:
            raise SystemExit(f"--render: the merged file {json_path} would overwrite an input; "
                             "pass --name")  # fmt: skip
        json_path.write_text(json.dumps(res, indent=1, default=str) + "\n")
        print(f"wrote {json_path}")
    else:
        res = run(args)
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.name or f"{datetime.date.today().isoformat()}-{args.mode}"
        json_path, md_path = args.out / f"{stem}.json", args.out / f"{stem}.md"
        json_path.write_text(json.dumps(res, indent=1, default=str) + "\n")
        print(f"wrote {json_path}")
    md_path.write_text(render(res))
    print(f"wrote {md_path}")
    if args.write_docs:
        write_docs(render(res, level=3), DOCS, args.docs_block)
        print(f"updated {DOCS}")
    return 1 if res.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
