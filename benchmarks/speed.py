"""Speed: training-step throughput of each preset vs the peer model of the nearest parameter
count, the achieved share of the machine's matmul FLOP/s, peak memory per training step, and
``import vaekit`` time vs ``import torch``.

A training step is forward + loss + backward + optimiser step at batch 64 (halved on CPU while
one step of vaekit + peer exceeds ``--speed-max-gflop``), in the layout and compile mode of
the variant (eager NCHW, eager channels_last, ``torch.compile`` of forward +
loss, both; on CUDA with bf16 autocast). vaekit and its peer are timed interleaved (a, b, a,
b, ...) so that load from other processes hits both, and reported as a ratio.

    python benchmarks/speed.py --memory-worker celeba64 --batch 64   # one preset's peak memory
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import (
    HERE,
    PeerUnavailable,
    current_rss_mib,
    interleaved_seconds,
    matmul_flops,
    median_seconds,
    peak_rss_mib,
    peer_status,
    reset_peak_rss,
    sync,
)
from peers import Contender, nearest_peer, vaekit_contender

import vaekit as vk

VARIANTS = ("eager", "channels_last", "compile", "compile+channels_last")


def preset_contender(name: str, channels_last: bool) -> Contender:
    recipe = "bce-beta0.8" if name == "fmnist32" else "mse"
    return vaekit_contender(name, vk.presets.config(name), recipe, channels_last=channels_last)


def make_step(c: Contender, batch: int, variant: str, device: torch.device):
    """A closure running one training step of ``c`` on a fixed random batch."""
    cl = "channels_last" in variant
    model = c.model.to(device).train()
    layout = torch.channels_last if cl else torch.contiguous_format
    model = model.to(memory_format=layout)
    x = torch.rand(batch, *c.input_shape, device=device)
    x = c.to_input(x).contiguous(memory_format=layout)
    opt = c.make_optimizer(model)

    def fwd(inp):
        return c.loss(model, inp, 0)

    if "compile" in variant:
        fwd = torch.compile(fwd)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )

    def step():
        with autocast:
            loss = fwd(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def flops_per_image(c: Contender, device: torch.device) -> float:
    """Forward + backward FLOPs of one image through ``c``'s training loss (batch of 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = c.model.to(device).train()
    x = c.to_input(torch.rand(2, *c.input_shape, device=device))
    with FlopCounterMode(display=False) as counter:
        c.loss(model, x, 0).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


_PLANS: dict[str, dict] = {}


def plan(name: str, args, device) -> dict:
    """The preset's nearest peer, FLOPs per image of both, and the batch to time them at:
    ``args.batch``, halved while one step of both together exceeds ``args.speed_max_gflop``
    (CPU only: the large presets' peers need tens of TFLOP per batch-64 step)."""
    if name in _PLANS:
        return _PLANS[name]
    cfg = vk.presets.config(name)
    with torch.device("meta"):
        params = sum(p.numel() for p in vk.VAE(cfg).parameters())
    found = nearest_peer(cfg.data_shape, params, lambda p: peer_status(p).available)
    torch.manual_seed(0)
    out = {"preset": name, "params": params, "peer": None, "build": None}
    out["ours_gflop_per_image"] = flops_per_image(preset_contender(name, False), device) / 1e9
    total = out["ours_gflop_per_image"]
    if found is not None:
        label, package, build, peer_params = found
        out.update(peer=label, peer_package=package, peer_params=peer_params, build=build)
        out["peer_gflop_per_image"] = flops_per_image(build(), device) / 1e9
        total += out["peer_gflop_per_image"]
    batch = args.batch
    if device.type == "cpu" and args.speed_max_gflop:
        while batch > 2 and batch * total > args.speed_max_gflop:
            batch //= 2
    out["batch"] = batch
    _PLANS[name] = out
    return out


def throughput_rows(args, device, log) -> list[dict]:
    rows = []
    for name in args.presets:
        p = plan(name, args, device)
        row = {k: v for k, v in p.items() if k != "build"}
        row["variants"] = {}
        batch = p["batch"]
        log(f"[speed] {name}: peer {p['peer']}, batch {batch}, GFLOP/image ours "
            f"{p['ours_gflop_per_image']:.2f} peer {p.get('peer_gflop_per_image', 0):.2f}")  # fmt: skip
        for variant in args.speed_variants:
            t = time.perf_counter()
            if "compile" in variant:  # each preset compiled afresh, as in a process of its own
                torch._dynamo.reset()
            torch.manual_seed(0)
            steps = [make_step(preset_contender(name, False), batch, variant, device)]
            if p["build"] is not None:
                try:
                    steps.append(make_step(p["build"](), batch, variant, device))
                except PeerUnavailable as err:
                    row["peer_error"] = str(err)
            warmup = args.warmup + ("compile" in variant)  # the first call compiles
            try:
                secs = interleaved_seconds(steps, args.repeats, device, warmup=warmup)
            except Exception as err:  # e.g. a compile failure of one side: report it
                row["variants"][variant] = {"error": f"{type(err).__name__}: {err}"[:300]}
                continue
            entry = {"ours_img_s": batch / secs[0]}
            entry["ours_gflops"] = entry["ours_img_s"] * p["ours_gflop_per_image"]
            if len(secs) > 1:
                entry["peer_img_s"] = batch / secs[1]
                entry["peer_gflops"] = entry["peer_img_s"] * p["peer_gflop_per_image"]
                entry["ratio"] = entry["ours_img_s"] / entry["peer_img_s"]
            row["variants"][variant] = entry
            log(f"[speed] {name} {variant}: "
                + ", ".join(f"{k} {v:.3g}" for k, v in entry.items())
                + f" ({time.perf_counter() - t:.0f} s)")  # fmt: skip
            del steps
        rows.append(row)
    return rows


def flops_ratio(args, device, log, preset: str = "celeba64-bottleneck") -> dict:
    """Achieved FLOP/s of one training step over this machine's dense matmul FLOP/s."""
    from torch.utils.flop_counter import FlopCounterMode

    peak = matmul_flops(device)
    out = {"preset": preset, "batch": args.flops_batch, "matmul_flops": peak, "variants": {}}
    for variant in ("eager", "channels_last"):
        torch.manual_seed(0)
        c = preset_contender(preset, "channels_last" in variant)
        step = make_step(c, args.flops_batch, variant, device)
        step()  # warm-up
        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()
        sec = median_seconds(step, args.repeats, device, warmup=0)  # warmed up above
        achieved = flops / sec
        out["variants"][variant] = {
            "flops_per_step": flops, "seconds": sec, "achieved_flops": achieved,
            "ratio": achieved / peak,
        }  # fmt: skip
        log(f"[flops] {preset} {variant}: {flops / 1e9:.1f} GFLOP/step in {sec:.3f} s = "
            f"{achieved / 1e9:.1f} GFLOP/s; matmul {peak / 1e9:.1f} GFLOP/s; "
            f"ratio {achieved / peak:.3f}")  # fmt: skip
    return out


# -- memory: one subprocess per model, so the peak belongs to that model alone --------------
def memory_worker(name: str, batch: int, threads: int, device: str, peer: bool) -> dict:
    torch.set_num_threads(threads)
    dev = torch.device(device)
    build = lambda: preset_contender(name, True)
    if peer:  # find (and import) the peer before the baseline, so imports do not count
        cfg = vk.presets.config(name)
        with torch.device("meta"):
            params = sum(p.numel() for p in vk.VAE(cfg).parameters())
        found = nearest_peer(cfg.data_shape, params, lambda p: peer_status(p).available)
        if found is None:
            return {"error": "no peer available"}
        build = found[2]
    torch.manual_seed(0)
    base = current_rss_mib()
    c = build()
    step = make_step(c, batch, "eager" if peer else "channels_last", dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    reset_peak_rss()  # count what training holds: weights, grads, optimiser state, activations
    for _ in range(2):
        step()
    sync(dev)
    out = {"model": c.name, "rss_before_mib": base, "peak_rss_mib": peak_rss_mib()}
    out["step_peak_mib"] = out["peak_rss_mib"] - base
    if dev.type == "cuda":
        out["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return out


def memory_rows(args, device, log) -> list[dict]:
    rows = []
    for name in args.presets:
        batch = plan(name, args, device)["batch"]
        row = {"preset": name, "batch": batch}
        for side in ("ours", "peer"):
            cmd = [sys.executable, str(HERE / "speed.py"), "--memory-worker", name,
                   "--batch", str(batch), "--threads", str(args.threads),
                   "--device", str(device)] + (["--peer"] if side == "peer" else [])  # fmt: skip
            if args.without:
                cmd += ["--without", *args.without]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
            try:
                row[side] = json.loads(proc.stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                row[side] = {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
        log(f"[memory] {name}: ours {row['ours'].get('step_peak_mib', float('nan')):.0f} MiB, "
            f"peer {row['peer'].get('step_peak_mib', float('nan')):.0f} MiB")  # fmt: skip
        rows.append(row)
    return rows


# -- import time ---------------------------------------------------------------------------------
_IMPORT = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
_STATEMENTS = {  # label -> (statement, peer that must be available)
    "import torch": ("import torch", None),
    "import vaekit": ("import vaekit", None),
    "from pythae.models import VAE": ("from pythae.models import VAE", "pythae"),
    "from diffusers import AutoencoderKL": ("from diffusers import AutoencoderKL", "diffusers"),
}


def import_times(repeats: int, log) -> dict:
    """Median seconds of the import statement alone, each in a fresh interpreter,
    interleaved: torch, vaekit (which imports torch), and peers for context."""
    stmts = {k: s for k, (s, peer) in _STATEMENTS.items()
             if peer is None or peer_status(peer).available}  # fmt: skip
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    times: dict[str, list[float]] = {k: [] for k in stmts}
    for stmt in stmts.values():  # one untimed round: warm the OS file cache for all alike
        subprocess.run([sys.executable, "-W", "ignore", "-c", stmt], env=env, capture_output=True)
    for _ in range(repeats):
        for label, stmt in stmts.items():
            out = subprocess.run([sys.executable, "-W", "ignore", "-c", _IMPORT.format(stmt=stmt)],
                                 env=env, capture_output=True, text=True, check=True)  # fmt: skip
            times[label].append(float(out.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(v) for k, v in times.items()}
    torch_s = med["import torch"]
    result = {"seconds": med, "repeats": repeats,
              "ratio_vs_torch": {k: v / torch_s for k, v in med.items()}}  # fmt: skip
    log(f"[import] vaekit/torch = {result['ratio_vs_torch']['import vaekit']:.3f} "
        f"(torch {torch_s:.2f} s, vaekit {med['import vaekit']:.2f} s)")  # fmt: skip
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memory-worker", metavar="PRESET", required=True)
    ap.add_argument("--peer", action="store_true", help="measure the preset's nearest peer")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--without", nargs="*", default=[])
    args = ap.parse_args()
    from common import exclude_peers

    exclude_peers(args.without)
    print(json.dumps(memory_worker(args.memory_worker, args.batch, args.threads, args.device,
                                   args.peer)))  # fmt: skip


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
