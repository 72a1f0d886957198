"""The benchmark suite runs end to end (a minimal `benchmarks/run.py --quick`) and writes its
JSON and markdown; a peer that is missing is a row that says so. No timing is asserted."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# one worker runs the module's shared quick run (scripts/test.sh uses --dist loadgroup)
pytestmark = pytest.mark.xdist_group("benchmarks")
DATA = Path(os.environ.get("VAEKIT_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    if not (DATA / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not installed in {DATA}")
    out = tmp_path_factory.mktemp("bench")
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick",
        "--parts", "import,losses,speed,flops,memory,quality,priors",
        "--systems", "vaekit-fmnist32", "pythae-resnet", "diffusers-kl",
        "--prior-fit-images", "256", "--flow-iterations", "5", "--diffusion-iterations", "5",
        "--two-stage-epochs", "1",
        "--without", "diffusers",  # stands in for a peer that is not installed
        "--budget-images", "64", "--budget-minutes", "0.002", "--test-images", "64",
        "--batch", "4", "--flops-batch", "1", "--loss-shapes", "1x3x32x32,1x1x64x64",
        "--classifier-images", "512", "--repeats", "1",
        "--warmup", "1", "--import-repeats", "1", "--speed-variants", "eager",
        "--out", str(out), "--name", "t",
    ]  # fmt: skip
    env = {**os.environ, "VAEKIT_BENCH_CACHE": str(out / "cache"), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "t.json").read_text()), (out / "t.md").read_text()


def test_json_has_every_part(quick_run):
    res, _ = quick_run
    assert not res["errors"]
    assert set(res["parts"]) == {
        "import", "losses", "speed", "flops", "memory", "quality", "priors"
    }  # fmt: skip
    meta = res["meta"]
    assert meta["mode"] == "quick" and meta["versions"]["torch"] and meta["machine"]["cpu"]
    assert res["parts"]["import"]["ratio_vs_torch"]["import torch"] == 1.0
    assert res["parts"]["flops"]["variants"]["eager"]["ratio"] > 0
    assert [r["preset"] for r in res["parts"]["speed"]["rows"]] == ["fmnist32"]
    assert res["parts"]["memory"][0]["ours"]["step_peak_mib"] > 0


def test_quality_rows_and_missing_peer(quick_run):
    res, _md = quick_run
    q = res["parts"]["quality"]
    assert 0.0 < q["classifier"]["accuracy"] <= 1.0
    ours = q["systems"]["vaekit-fmnist32"]
    assert set(ours["results"]) == {"images", "time"}
    r = ours["results"]["images"]
    assert r["psnr"] > 0 and 0 <= r["active_units"] <= 32 and r["neg_elbo"] is not None
    assert q["systems"]["diffusers-kl"]["unavailable"] == "excluded with --without"
    pythae = q["systems"]["pythae-resnet"]
    assert "results" in pythae or "not installed" in pythae["unavailable"]
    assert res["meta"]["peers"]["diffusers"]["available"] is False


def test_priors_rows(quick_run):
    res, md = quick_run
    p = res["parts"]["priors"]
    assert list(p["systems"]) == ["vaekit-fmnist32", "vaekit-spatial", "pythae-resnet"]
    assert p["fit_images"] == 256 and p["samples"] == p["test_images"] == 64
    quality = res["parts"]["quality"]["systems"]["vaekit-fmnist32"]["results"]
    for name, latents in (("vaekit-fmnist32", [256, 32]), ("vaekit-spatial", [256, 4, 8, 8])):
        results = p["systems"][name]["results"]
        assert set(results) == {"images", "time"}
        for which, r in results.items():
            assert r["latents"] == latents and r["psnr"] > 0
            assert set(r["priors"]) == {"standard_normal", "gmm-full", "gmm-diag", "flow",
                                        "diffusion"}  # fmt: skip
            for prior, row in r["priors"].items():
                assert "error" not in row, (name, prior, row)
                assert math.isfinite(row["fd_samples"]) and row["fd_samples"] >= 0
                if prior != "standard_normal":
                    assert row["fit_seconds"] >= 0 and row["sample_seconds"] >= 0
            if name == "vaekit-fmnist32":  # the quality part's weights, scored again
                assert r["fd_recon"] == pytest.approx(quality[which]["fd_recon"])
                assert r["priors"]["standard_normal"]["fd_samples"] == pytest.approx(
                    quality[which]["fd_samples"]
                )
    pythae = p["systems"]["pythae-resnet"]
    if "results" in pythae:
        for r in pythae["results"].values():
            assert set(r["priors"]) == {"standard_normal", "pythae-gmm", "pythae-two-stage"}
            assert all("error" not in row for row in r["priors"].values()), r["priors"]
    targets = p["targets"]
    assert any("≤ 0.6 × its N(0, I) sample FD" in t["target"] for t in targets)
    assert any("≤ 1.2 × its reconstruction FD" in t["target"] for t in targets)
    costs = [t for t in targets if "≤ 30 s" in t["target"] or "≤ 1 min" in t["target"]]
    assert costs and all(t["met"] is None for t in costs)  # 256 latents: too small to judge
    assert "| `vaekit-spatial` |" in md and "LatentDiffusion" in md
    assert "not judged: run smaller than the target" in md


def test_markdown_tables(quick_run):
    _, md = quick_run
    for heading in ("## Peers", "## Quality at equal budget", "## Training-step throughput",
                    "## Achieved FLOP/s", "## Peak memory", "## Loss throughput",
                    "## Import time", "## Targets", "## Priors: samples from fitted priors",
                    "## Targets (priors)"):  # fmt: skip
        assert heading in md
    assert "| `vaekit-fmnist32` |" in md
    assert "| `diffusers-kl` |" in md and "excluded with --without" in md
    assert "| diffusers |" in md  # the peers table lists it, with the reason


# -- merging pieces of a run (``run.py --render a.json b.json``) ---------------------------------
sys.path.insert(0, str(ROOT / "benchmarks"))
from report import merge, render  # noqa: E402


def _split(res: dict, parts: set[str], systems: set[str] | None = None) -> dict:
    """One piece of ``res``: some parts, and for quality and priors some systems (as
    ``--parts``/``--systems``/``--prior-systems``)."""
    out = json.loads(json.dumps(res))
    out["parts"] = {k: v for k, v in out["parts"].items() if k in parts}
    for name in ("quality", "priors"):
        if systems is not None and name in out["parts"]:
            part = out["parts"][name]
            part["systems"] = {k: v for k, v in part["systems"].items() if k in systems}
    return out


def test_merge_of_pieces_gives_back_the_whole_run(quick_run):
    res, _ = quick_run
    names = list(res["parts"]["quality"]["systems"])
    prior_names = list(res["parts"]["priors"]["systems"])
    assert len(prior_names) > 1
    pieces = [
        _split(res, {"quality", "priors"}, {names[0], prior_names[0]}),
        _split(res, {"quality", "import"}, set(names[1:])),
        _split(res, {"priors"}, set(prior_names[1:])),
        _split(res, set(res["parts"]) - {"quality", "import", "priors"}),
    ]
    merged = merge(pieces)
    # quality and priors rows pooled, both parts' targets re-checked on the pool
    assert merged["parts"] == res["parts"]
    assert len(merged["meta"]["pieces"]) == 4
    md = render(merged)
    assert "merged from 4 runs" in md and "| `vaekit-fmnist32` |" in md
    other = _split(res, {"priors"}, set(prior_names[1:]))
    other["parts"]["priors"]["settings"]["flow_iterations"] += 1
    with pytest.raises(ValueError, match=r"priors rows of run 1 .* different 'settings'"):
        merge([pieces[0], other])
    with pytest.raises(ValueError, match=r"priors system\(s\) \[.*\] appear in more than one"):
        merge([pieces[0], pieces[2], pieces[2]])


def _quality_run(systems: dict, accuracy: float = 0.9) -> dict:
    meta = {
        "mode": "full", "date": "2026-01-01 10:00 UTC", "command": "python benchmarks/run.py",
        "seconds": 60.0, "versions": {"vaekit": "0"}, "peers": {},
        "machine": {"cpu": "x", "cpu_count": 2, "torch_threads": 2, "device": "cpu",
                    "platform": "p", "python": "3", "load_average": [0.1, 0.1, 0.1]},
    }  # fmt: skip
    result = lambda fd: {"fd_samples": fd, "psnr": 20.0}
    q = {
        "classifier": {"accuracy": accuracy}, "train_images": 10, "test_images": 10,
        "prior_samples": 10, "budget": {"images": 1},
        "systems": {n: {"latent": "flat", "results": {"images": result(fd), "time": result(fd)}}
                    for n, fd in systems.items()},
    }  # fmt: skip
    return {"meta": meta, "parts": {"quality": q}, "errors": {}}


def test_merge_rechecks_targets_on_the_pooled_rows():
    ours = _quality_run({"vaekit-fmnist32": 50.0})
    assert ours["parts"]["quality"].get("targets") is None
    merged = merge([ours, _quality_run({"vanilla": 40.0}), _quality_run({"pythae-mlp": 60.0})])
    by_images, by_time = merged["parts"]["quality"]["targets"]
    for t in (by_images, by_time):
        assert t["met"] is False and t["best_peer"] == "vanilla: 40.00"
    assert "(time budget)" in by_time["target"]
    merged = merge([ours, _quality_run({"pythae-mlp": 60.0})])
    assert all(t["met"] for t in merged["parts"]["quality"]["targets"])


@pytest.mark.parametrize(
    "other, match",
    [
        (_quality_run({"vanilla": 1.0}, accuracy=0.5), "different 'classifier'"),
        (_quality_run({"vaekit-fmnist32": 1.0}), r"system\(s\) \['vaekit-fmnist32'\]"),
    ],
)
def test_merge_refuses_rows_it_cannot_compare(other, match):
    with pytest.raises(ValueError, match=match):
        merge([_quality_run({"vaekit-fmnist32": 50.0}), other])


def test_merge_refuses_other_machines_versions_and_repeated_parts():
    a, b = _quality_run({"a": 1.0}), _quality_run({"b": 1.0})
    b["meta"]["versions"] = {"vaekit": "1"}
    with pytest.raises(ValueError, match="different 'versions'"):
        merge([a, b])
    b = _quality_run({"b": 1.0})
    b["meta"]["machine"]["cpu"] = "y"
    with pytest.raises(ValueError, match=r"different machine \(cpu"):
        merge([a, b])
    a["parts"]["import"] = b["parts"]["import"] = {}
    b["meta"]["machine"]["cpu"] = "x"
    with pytest.raises(ValueError, match="part 'import' appears in more than one run"):
        merge([a, b])
    with pytest.raises(ValueError, match="at least one"):
        merge([])


def test_merge_takes_the_newest_description_of_a_peer_and_refuses_another_version():
    a, b = _quality_run({"a": 1.0}), _quality_run({"b": 1.0})
    peer = {"version": "0.1", "available": True, "reason": None, "used_for": "VAE"}
    a["meta"]["peers"] = {"pythae": peer}
    b["meta"]["peers"] = {"pythae": {**peer, "used_for": "VAE; samplers"}}
    b["meta"]["date"] = "2026-01-02 10:00 UTC"
    for runs in ([a, b], [b, a]):
        assert merge(runs)["meta"]["peers"]["pythae"]["used_for"] == "VAE; samplers"
    b["meta"]["peers"]["pythae"]["version"] = "0.2"
    with pytest.raises(ValueError, match="different 'peers'"):
        merge([a, b])


def test_render_cli_merges_pieces(quick_run, tmp_path):
    res, _ = quick_run
    paths = []
    for i, parts in enumerate([{"quality"}, set(res["parts"]) - {"quality"}]):
        paths.append(tmp_path / f"piece{i}.json")
        paths[-1].write_text(json.dumps(_split(res, parts)))
    run = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--out", str(tmp_path)]
    proc = subprocess.run([*run, "--render", *map(str, paths), "--name", "all"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "all.json").read_text())["parts"] == res["parts"]
    assert "merged from 2 runs" in (tmp_path / "all.md").read_text()
    proc = subprocess.run([*run, "--render", str(paths[0]), str(paths[0]), "--name", "x"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode != 0 and "appear in more than one run" in proc.stderr
