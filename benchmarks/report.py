"""Markdown for a results JSON, and the generated section of docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path

BEGIN = "<!-- BEGIN GENERATED RESULTS: python benchmarks/run.py --full --write-docs -->"
END = "<!-- END GENERATED RESULTS -->"


def _f(v, fmt=".3g", missing="—") -> str:
    if v is None:
        return missing
    if isinstance(v, float) and v != v:
        return missing
    return format(v, fmt)


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(sep) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def render(res: dict, level: int = 1) -> str:
    h = "#" * level
    meta, m = res["meta"], res["meta"]["machine"]
    lines = [
        f"{h} vaekit benchmarks: {meta['mode']} run, {meta['date']}",
        "",
        f"- machine: {m['cpu']}, {m['cpu_count']} logical CPUs, torch threads "
        f"{m['torch_threads']}, device `{m['device']}`"
        + (f" ({m['gpu']})" if m.get("gpu") else "")
        + f"; load average at start {m.get('load_average')}",
        f"- platform: {m['platform']}, Python {m['python']}",
        "- versions: "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v is not None),
        f"- command: `{meta['command']}`",
        f"- wall time of the whole run: {meta.get('seconds', 0) / 60:.1f} min",
        "",
        "Ratios compare numbers measured in this same run; absolute times are for context only.",
        "",
        f"{h}# Peers",
        "",
    ]
    rows = [
        [name, p["version"] or "—", p["used_for"], "used" if p["available"] else p["reason"]]
        for name, p in meta["peers"].items()
    ]
    lines += [*_table(["peer", "version", "used for", "status"], rows, "llll"), ""]
    parts = res.get("parts", {})
    if "quality" in parts:
        lines += _quality(parts["quality"], h)
    if "speed" in parts:
        lines += _speed(parts["speed"], h)
    if "flops" in parts:
        lines += _flops(parts["flops"], h)
    if "memory" in parts:
        lines += _memory(parts["memory"], h)
    if "losses" in parts:
        lines += _losses(parts["losses"], h)
    if "import" in parts:
        lines += _import(parts["import"], h)
    if res.get("errors"):
        lines += [f"{h}# Errors", ""] + [f"- {k}: `{v}`" for k, v in res["errors"].items()]
        lines += [""]
    return "\n".join(lines).rstrip() + "\n"


def _quality(q: dict, h: str) -> list[str]:
    clf, b = q["classifier"], q["budget"]
    lines = [
        f"{h}# Quality at equal budget (Fashion-MNIST)",
        "",
        f"Same data ({q['train_images']:,} training images), seed {b['seed']}, batch "
        f"{b['batch_size']}; scored on {q['test_images']:,} test images and "
        f"{q['prior_samples']:,} prior samples. FD: Fréchet distance in the 128-d features of "
        f"a Fashion-MNIST classifier ({clf['train_images']:,} images, {clf['epochs']} epochs) "
        f"with test accuracy **{clf['accuracy']:.3f}**; the floor FD(train, test) is "
        f"**{clf['fd_train_test']:.3f}**.",
        "",
    ]
    systems = q["systems"]
    titles = {
        "images": f"{b['images']:,} training images seen",
        "time": f"{b['seconds'] / 60:g} min of training wall-clock",
    }
    for which, title in titles.items():
        lines += [f"{h}## Budget: {title}", ""]
        rows = []
        for name, s in systems.items():
            if "unavailable" in s:
                rows.append([f"`{name}`", "—", "—", "—"] + ["—"] * 6 + [s["unavailable"]])
                continue
            r = s.get("results", {}).get(which)
            at = s.get("at", {}).get(which)
            if r is None:
                rows.append([f"`{name}`", _f(s.get("params", 0) / 1e6, ".2f") + " M", "—", "—"]
                            + ["—"] * 6 + [s.get("stopped") or "not reached"])  # fmt: skip
                continue
            elbo = "—" if r["neg_elbo"] is None else f"{r['neg_elbo']:.1f} ({r['likelihood']})"
            rows.append([
                f"`{name}`", f"{s['params'] / 1e6:.2f} M", f"{at['images']:,}",
                f"{at['seconds']:.0f}", f"{r['psnr']:.2f}", f"{r['ssim']:.3f}", elbo,
                f"{r['active_units']}/{r['latent_dims']}", f"{r['fd_recon']:.2f}",
                f"{r['fd_samples']:.2f}", s.get("stopped") or "",
            ])  # fmt: skip
        lines += _table(
            ["system", "params", "images", "s", "PSNR dB", "SSIM", "−ELBO nats/img",
             "active", "FD recon", "FD samples", "note"],
            rows, "lrrrrrlrrrl",
        )  # fmt: skip
        lines += [""]
    lines += [f"{h}## Systems", ""]
    lines += [f"- `{n}`: {s['description']}" + (f" ({s['notes']})" if s.get("notes") else "")
              for n, s in systems.items()]  # fmt: skip
    lines += ["", f"{h}## Targets", ""]
    rows = [[t["target"], t["ours"], t["best_peer"], "**met**" if t["met"] else "not met"]
            for t in q.get("targets", [])]  # fmt: skip
    lines += [*_table(["target", "vaekit", "best peer", "result"], rows, "llll"), ""]
    return lines


def _speed(s: dict, h: str) -> list[str]:
    lines = [
        f"{h}# Training-step throughput",
        "",
        f"Images/s of forward + loss + backward + optimiser step, {s['threads']} CPU threads "
        f"(or the GPU with bf16 autocast), median of {s['repeats']} steps after "
        f"{s['warmup']} warm-up (+1 when compiled), vaekit and peer interleaved. Peer: the "
        "peer model for the same image shape with the nearest parameter count. Batch "
        f"{s['batch']}, halved on CPU while one step of both exceeds "
        f"{s.get('max_gflop', 0):g} GFLOP (column *batch*). GFLOP/s: counted FLOPs per image × "
        "images/s.",
        "",
    ]
    rows = []
    for r in s["rows"]:
        peer = "—" if not r.get("peer") else f"{r['peer']} ({r['peer_params'] / 1e6:.1f} M)"
        name = f"`{r['preset']}` ({r['params'] / 1e6:.1f} M)"
        for variant, v in r["variants"].items():
            if "error" in v:
                rows.append([name, variant, str(r.get("batch", "")), "", "", "", "", "",
                             v["error"]])  # fmt: skip
                continue
            rows.append([
                name, variant, str(r.get("batch", "")), _f(v.get("ratio"), ".2f"),
                _f(v["ours_img_s"], ".1f"), _f(v.get("peer_img_s"), ".1f"),
                _f(v.get("ours_gflops"), ".1f"), _f(v.get("peer_gflops"), ".1f"), peer,
            ])  # fmt: skip
    lines += _table(
        ["preset", "variant", "batch", "vaekit / peer", "vaekit img/s", "peer img/s",
         "vaekit GFLOP/s", "peer GFLOP/s", "peer model"],
        rows, "llrrrrrrl",
    )  # fmt: skip
    skipped = s.get("skipped_variants")
    if skipped:
        lines += ["", f"Not run: {skipped} (`--speed-variants`)."]
    return [*lines, ""]


def _flops(f: dict, h: str) -> list[str]:
    lines = [
        f"{h}# Achieved FLOP/s vs the machine's matmul",
        "",
        f"`{f['preset']}` training step at batch {f['batch']}: FLOPs counted by "
        "`torch.utils.flop_counter` (forward + backward matmuls/convs), divided by the step "
        f"time, over dense matmul FLOP/s measured in this run "
        f"({f['matmul_flops'] / 1e9:.1f} GFLOP/s). Target on CPU: ≥ 0.3.",
        "",
    ]
    rows = [[v, _f(x["ratio"], ".3f"), _f(x["achieved_flops"] / 1e9, ".1f"),
             _f(x["flops_per_step"] / 1e9, ".1f"), _f(x["seconds"], ".3f")]
            for v, x in f["variants"].items()]  # fmt: skip
    lines += _table(["variant", "achieved / matmul", "GFLOP/s", "GFLOP/step", "s/step"], rows)
    return [*lines, ""]


def _memory(rows_in: list[dict], h: str) -> list[str]:
    lines = [
        f"{h}# Peak memory per training step",
        "",
        "Each model in a fresh process: peak RSS during two training steps minus the RSS "
        "before the model was built (CUDA: `max_memory_allocated`), at the batch of the "
        "throughput table. vaekit in channels_last, the peer in its default layout.",
        "",
    ]
    rows = []
    for r in rows_in:
        o, p = r["ours"], r["peer"]
        key = "cuda_max_allocated_mib" if "cuda_max_allocated_mib" in o else "step_peak_mib"
        ratio = o[key] / p[key] if key in o and key in p and p[key] else None
        rows.append([f"`{r['preset']}`", str(r.get("batch", "")), _f(o.get(key), ".0f"), p.get("model", "—"),
                     _f(p.get(key), ".0f"), _f(ratio, ".2f"),
                     o.get("error", "") + p.get("error", "")])  # fmt: skip
    lines += _table(["preset", "batch", "vaekit MiB", "peer model", "peer MiB", "vaekit / peer",
                     "note"], rows, "lrrlrrl")  # fmt: skip
    return [*lines, ""]


def _losses(rows_in: dict, h: str) -> list[str]:
    lines = [
        f"{h}# Loss throughput",
        "",
        "Forward + backward milliseconds, vaekit and the peer interleaved; "
        "peer / vaekit > 1 means vaekit is faster.",
        "",
    ]
    rows = []
    for r in rows_in["rows"]:
        shape = "×".join(map(str, r["shape"]))
        if "unavailable" in r:
            rows.append([f"`{r['loss']}`", shape, r["peer"], "", "", r["unavailable"]])
        else:
            rows.append([f"`{r['loss']}`", shape, r["peer"], _f(r["ours_ms"], ".1f"),
                         _f(r["peer_ms"], ".1f"), _f(r["speedup"], ".2f")])  # fmt: skip
    lines += _table(["vaekit loss", "input", "peer", "vaekit ms", "peer ms", "peer / vaekit"],
                    rows, "lllrrr")  # fmt: skip
    return [*lines, ""]


def _import(i: dict, h: str) -> list[str]:
    lines = [
        f"{h}# Import time",
        "",
        f"Median of {i['repeats']} fresh interpreters (the import statement only). "
        "Target: `import vaekit` ≤ 1.15 × `import torch`.",
        "",
    ]
    rows = [[f"`{m}`", _f(s, ".3f"), _f(i["ratio_vs_torch"][m], ".3f")]
            for m, s in i["seconds"].items()]  # fmt: skip
    lines += _table(["statement", "seconds", "× import torch"], rows)
    return [*lines, ""]


def write_docs(md: str, docs: Path) -> None:
    """Replace the generated block of docs/benchmarks.md with ``md`` (rendered at level 3)."""
    text = docs.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{docs} has no generated-results markers ({BEGIN!r} ... {END!r})")
    new = text.split(BEGIN)[0] + BEGIN + "\n\n" + md + "\n" + END + text.split(END, 1)[1]
    docs.write_text(new)
