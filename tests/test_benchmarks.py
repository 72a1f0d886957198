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
# the sharpness part's systems in the shared quick run: the recipe and its adversarial twin
# (every target), the spatial one without its reference, a missing peer
SHARPNESS_SYSTEMS = ("vaekit-fmnist32", "vaekit-fmnist32-adv", "vaekit-spatial-adv", "diffusers-kl")
# and of its levers: the recipe, the one that needs ImageNet weights, the adversarial one (the
# others train in test_every_lever_takes_a_training_step)
LEVERS = ("bce", "perceptual", "adversarial")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    if not (DATA / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not installed in {DATA}")
    out = tmp_path_factory.mktemp("bench")
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick",
        "--parts", "import,losses,speed,flops,memory,quality,priors,sharpness,sharpness-levers",
        "--systems", "vaekit-fmnist32", "pythae-resnet", "diffusers-kl",
        "--sharpness-systems", *SHARPNESS_SYSTEMS, "--sharpness-repeats", "1",
        "--levers", *LEVERS, "--lever-images", "64",
        "--prior-fit-images", "256", "--flow-iterations", "5", "--diffusion-iterations", "5",
        "--edm-iterations", "5",
        "--two-stage-epochs", "1",
        "--without", "diffusers",  # stands in for a peer that is not installed
        "--budget-images", "64", "--budget-minutes", "0.002", "--test-images", "64",
        "--batch", "4", "--flops-batch", "1", "--loss-shapes", "1x3x32x32,1x1x64x64",
        "--classifier-images", "512", "--repeats", "1",
        "--warmup", "1", "--import-repeats", "1", "--speed-variants", "eager",
        "--threads", "1",  # the other xdist worker has the second core
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
        "import", "losses", "speed", "flops", "memory", "quality", "priors", "sharpness",
        "sharpness-levers",
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
            assert set(r["priors"]) == {"standard_normal", "gmm-full", "gmm-full-f64",
                                        "gmm-diag", "flow", "diffusion", "edm", "select"}  # fmt: skip
            sel = r["priors"]["select"]
            scores = {c["name"]: c["score"] for c in sel["candidates"]}
            # ranked by the FD of decoded samples (against training images): the lowest wins
            assert sel["criterion"] == "score" and scores[sel["chosen"]] == min(scores.values())
            assert all(c["sample_seconds"] >= 0 for c in sel["candidates"])
            assert f"chose `{sel['chosen']}`" in md
            for prior in ("gmm-full", "gmm-full-f64", "gmm-diag"):  # (the flow's 256-latent
                # batch leaves it nothing to hold out of 256 latents)
                assert math.isfinite(r["priors"][prior]["heldout_log_prob"]), prior
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
    for name in ("vaekit-fmnist32", "vaekit-spatial"):  # issue 19's: select's choice, EM speed
        assert any(t["target"].startswith(f"{name} + `vk.priors.select`'s choice") for t in targets)
    assert sum("float64 EM with its old stop rule" in t["target"] for t in targets) == 2
    costs = [t for t in targets if "≤ 30 s" in t["target"] or "≤ 1 min" in t["target"]]
    assert costs and all(t["met"] is None for t in costs)  # 256 latents: too small to judge
    assert "| `vaekit-spatial` |" in md and "LatentDiffusion" in md
    assert "not judged: run smaller than the target" in md
    assert "EDMDiffusion 5 steps, " in md
    old = json.loads(json.dumps(res))  # a run from before the EDM prior: no such setting
    del old["parts"]["priors"]["settings"]["edm_iterations"]
    assert "EDMDiffusion" not in render(old).split("steps, pythae's second stage")[0][-40:]


SHARPNESS_FIELDS = ("psnr", "ssim", "fd_recon", "fd_samples_normal", "sharpness_recon",
                    "contrast_recon")  # fmt: skip


def test_sharpness_rows(quick_run):
    res, md = quick_run
    p = res["parts"]["sharpness"]
    assert list(p["systems"]) == list(SHARPNESS_SYSTEMS)
    assert p["settings"]["adversarial"]["start"] == 0  # 30% of a one-step budget
    assert p["real"]["sharpness"] > 0 and p["fit_images"] == 256
    assert p["systems"]["diffusers-kl"]["unavailable"] == "excluded with --without"
    for name in SHARPNESS_SYSTEMS[:3]:
        row = p["systems"][name]
        assert set(row["results"]) == {"images", "time"}, name
        for r in row["results"].values():
            assert "error" not in r, (name, r)
            assert r["prior"] == ("gmm-diag" if "spatial" in name else "gmm-full")
            for key in (*SHARPNESS_FIELDS, "fd_samples", "sharpness_samples", "contrast_samples"):
                assert math.isfinite(r[key]) and r[key] >= 0, (name, key)
        t = row["timing"]
        assert t["step_ms"] > 0 and t["batch"] == 64
        assert ("ratio" in t) == name.endswith("-adv")
    t = p["systems"]["vaekit-fmnist32-adv"]["timing"]
    assert t["reference"] == "vaekit-fmnist32" and t["step_ms_without_d"] > 0 and t["ratio"] > 0
    targets = [t["target"] for t in p["targets"]]
    for what in ("reconstruction sharpness ratio ≥ 0.8", "reconstruction FD ≤ 0.7 ×",
                 "PSNR lower by ≤ 1.0 dB", "samples (best prior) sharpness ratio ≥ 0.7",
                 "sample FD (best prior) not worse"):  # fmt: skip
        assert any(t.startswith(f"vaekit-fmnist32-adv: {what}") for t in targets), what
    # the spatial recipe was not run: only the targets that need no reference
    spatial = [t for t in targets if t.startswith("vaekit-spatial-adv: ") and "budget)" in t]
    assert len(spatial) == 4 and all("sharpness ratio" in t for t in spatial)
    assert sum("with the D step" in t for t in targets) == 2
    assert "## Sharpness: reconstructions and samples" in md and "## Targets (sharpness)" in md
    assert "| `vaekit-spatial-adv` |" in md and "GMM diag" in md


def test_sharpness_levers_rows(quick_run):
    res, md = quick_run
    p = res["parts"]["sharpness-levers"]
    assert list(p["systems"]) == list(LEVERS) and p["budget"]["images"] == 64
    for name, row in p["systems"].items():
        if "unavailable" in row:  # no ImageNet VGG16 file here: the row says which
            assert name == "perceptual" and "vgg16-397923af.pth" in row["unavailable"], row
            continue
        assert set(row["results"]) == {"images"}, name
        r = row["results"]["images"]
        assert all(math.isfinite(r[k]) and r[k] >= 0 for k in SHARPNESS_FIELDS), (name, r)
    assert "## Sharpness levers on `fmnist32`" in md and "| `adversarial` |" in md


def test_every_lever_takes_a_training_step():
    import quality
    import sharpness
    import torch
    from common import PeerUnavailable

    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    for name, (build, *_) in sharpness.lever_systems(start=0).items():
        try:
            c = build()
        except PeerUnavailable:  # the perceptual lever without ImageNet weights
            assert name == "perceptual"
            continue
        model, _, step = quality.training_step(c, torch.device("cpu"))
        before = [p.detach().clone() for p in model.parameters()]
        loss = step(c.to_input(x), 0)
        assert torch.isfinite(loss), name
        assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters())), name


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
    """One piece of ``res``: some parts, and for the parts whose rows pool some systems (as
    ``--parts``/``--systems``/``--prior-systems``/``--sharpness-systems``/``--levers``)."""
    out = json.loads(json.dumps(res))
    out["parts"] = {k: v for k, v in out["parts"].items() if k in parts}
    for name in ("quality", "priors", "sharpness", "sharpness-levers"):
        if systems is not None and name in out["parts"]:
            part = out["parts"][name]
            part["systems"] = {k: v for k, v in part["systems"].items() if k in systems}
    return out


def test_merge_of_pieces_gives_back_the_whole_run(quick_run):
    res, _ = quick_run
    names = list(res["parts"]["quality"]["systems"])
    prior_names = list(res["parts"]["priors"]["systems"])
    assert len(prior_names) > 1
    sharp = {"sharpness", "sharpness-levers"}
    levers = set(res["parts"]["sharpness-levers"]["systems"])
    pooled = {"quality", "import", "priors", *sharp}
    pieces = [
        _split(res, {"quality", "priors"}, {names[0], prior_names[0]}),
        _split(res, {"quality", "import"}, set(names[1:])),
        _split(res, {"priors"}, set(prior_names[1:])),
        _split(res, sharp, {"vaekit-fmnist32", "bce"}),  # the adversarial rows apart
        _split(res, sharp, set(SHARPNESS_SYSTEMS[1:]) | levers - {"bce"}),
        _split(res, set(res["parts"]) - pooled),
    ]
    merged = merge(pieces)
    # quality, priors and sharpness rows pooled, the parts' targets re-checked on the pool
    assert merged["parts"] == res["parts"]
    assert len(merged["meta"]["pieces"]) == 6
    md = render(merged)
    assert "merged from 6 runs" in md and "| `vaekit-fmnist32` |" in md
    other = _split(res, {"priors"}, set(prior_names[1:]))
    other["parts"]["priors"]["settings"]["flow_iterations"] += 1
    with pytest.raises(ValueError, match=r"priors rows of run 1 .* different 'settings'"):
        merge([pieces[0], other])
    with pytest.raises(ValueError, match=r"priors system\(s\) \[.*\] appear in more than one"):
        merge([pieces[0], pieces[2], pieces[2]])


def _meta() -> dict:
    return {
        "mode": "full", "date": "2026-01-01 10:00 UTC", "command": "python benchmarks/run.py",
        "seconds": 60.0, "versions": {"vaekit": "0"}, "peers": {},
        "machine": {"cpu": "x", "cpu_count": 2, "torch_threads": 2, "device": "cpu",
                    "platform": "p", "python": "3", "load_average": [0.1, 0.1, 0.1]},
    }  # fmt: skip


def _quality_run(systems: dict, accuracy: float = 0.9) -> dict:
    meta = _meta()
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


# -- the sharpness part's targets, table and merge, on synthetic results ------------------------
def _sharpness_result(**kw) -> dict:
    return {"psnr": 20.0, "ssim": 0.7, "fd_recon": 30.0, "fd_samples_normal": 70.0,
            "prior": "gmm-full", "fd_samples": 35.0, "sharpness_recon": 0.3,
            "contrast_recon": 0.9, "sharpness_samples": 0.2, "contrast_samples": 0.8, **kw}  # fmt: skip


def _sharpness_run(systems: dict, timed_steps: int = 20) -> dict:
    """A run with only the sharpness part: ``{name: (result at both budgets, timing)}``."""
    at = {"images": 30016, "steps": 469, "seconds": 100.0}
    part = {
        "classifier": {"accuracy": 0.9, "fd_train_test": 0.03}, "train_images": 10,
        "fit_images": 10, "test_images": 10, "samples": 10, "threads": 2,
        "budget": {"images": 30000, "seconds": 300.0, "batch_size": 64, "seed": 0},
        "settings": {"adversarial": {"weight": 0.5, "loss": "hinge", "start": 141, "width": 64,
                                     "layers": 3, "norm": "batch", "lr": 2e-4,
                                     "betas": [0.5, 0.9]},
                     "best_prior": {"flat": "gmm-full", "spatial": "gmm-diag"},
                     "timed_steps": timed_steps},
        "real": {"sharpness": 0.05, "contrast": 0.35},
        "systems": {n: {"description": n, "latent": "flat", "at": {"images": at, "time": at},
                        "results": {"images": r, "time": r}, "timing": t}
                    for n, (r, t) in systems.items()},
    }  # fmt: skip
    return {"meta": _meta(), "parts": {"sharpness": part}, "errors": {}}


RECIPE = (_sharpness_result(), {"batch": 64, "step_ms": 300.0})


def _adv(ratio: float = 1.4, **kw) -> tuple[dict, dict]:
    timing = {"batch": 64, "step_ms": 300.0 * ratio, "step_ms_without_d": 350.0,
              "reference": "vaekit-fmnist32", "reference_step_ms": 300.0, "ratio": ratio}  # fmt: skip
    return _sharpness_result(**kw), timing


def test_sharpness_targets_are_judged_against_the_recipe_without_the_term():
    from report import sharpness_targets

    adv = _adv(psnr=19.2, fd_recon=18.0, sharpness_recon=0.85, sharpness_samples=0.6,
               fd_samples=34.0)  # fmt: skip
    part = _sharpness_run({"vaekit-fmnist32": RECIPE, "vaekit-fmnist32-adv": adv})
    met = {t["target"]: t["met"] for t in sharpness_targets(part["parts"]["sharpness"])}
    pre = "vaekit-fmnist32-adv: "
    for which in ("images", "time"):
        assert met[f"{pre}reconstruction sharpness ratio ≥ 0.8 ({which} budget)"] is True
        assert met[f"{pre}reconstruction FD ≤ 0.7 × the recipe's ({which} budget)"] is True
        assert met[f"{pre}PSNR lower by ≤ 1.0 dB ({which} budget)"] is True  # -0.8 dB
        assert met[f"{pre}samples (best prior) sharpness ratio ≥ 0.7 ({which} budget)"] is False
        assert met[f"{pre}sample FD (best prior) not worse ({which} budget)"] is True
    d_step = [t for t in met if "with the D step ≤ 1.5 ×" in t]
    assert len(met) == 11 and d_step == [f"{pre}training step with the D step ≤ 1.5 × the "
                                         "recipe's without the term"]  # fmt: skip
    assert met[d_step[0]] is True
    worse = _adv(ratio=1.6, psnr=18.9, fd_recon=21.5)
    part = _sharpness_run({"vaekit-fmnist32": RECIPE, "vaekit-fmnist32-adv": worse})
    met = {t["target"]: t["met"] for t in sharpness_targets(part["parts"]["sharpness"])}
    assert not any(v for k, v in met.items() if "PSNR" in k or "FD ≤" in k or "D step" in k)


def test_sharpness_table_renders_and_merge_pools_its_rows():
    recipe = _sharpness_run({"vaekit-fmnist32": RECIPE})
    adv = _sharpness_run({"vaekit-fmnist32-adv": _adv(fd_recon=18.0, sharpness_recon=0.9)})
    merged = merge([recipe, adv])  # the target pairs rows from two pieces
    part = merged["parts"]["sharpness"]
    assert list(part["systems"]) == ["vaekit-fmnist32", "vaekit-fmnist32-adv"]
    assert any(t["target"].startswith("vaekit-fmnist32-adv: reconstruction FD") and t["met"]
               for t in part["targets"])  # fmt: skip
    md = render(merged)
    assert "## Sharpness: reconstructions and samples" in md and "## Step time" in md
    assert "| `vaekit-fmnist32-adv` | 30,016 | 20.00 | 0.700 | 18.00 |" in md
    assert "| `vaekit-fmnist32-adv` | 420 | 350 | `vaekit-fmnist32` | 300 | 1.40 |" in md
    assert "**met**" in md and "not met" in md and "GaussianMixture(10, diag) on spatial" in md
    with pytest.raises(ValueError, match=r"sharpness rows of run 1 .* different 'settings'"):
        merge([recipe, _sharpness_run({"vaekit-fmnist32-adv": _adv()}, timed_steps=3)])
    with pytest.raises(ValueError, match=r"sharpness system\(s\) \['vaekit-fmnist32'\]"):
        merge([recipe, recipe])


def test_issue19_prior_targets():
    from report import prior_targets

    def result(fd_select, f32, f64, edm_fit):
        return {
            "psnr": 20.0, "fd_recon": 5.0, "latents": [60_000, 4, 8, 8],
            "priors": {
                "standard_normal": {"fd_samples": 100.0},
                "gmm-full": {"fd_samples": 8.0, "fit_seconds": f32, "heldout_log_prob": 0.745},
                "gmm-full-f64": {"fd_samples": 8.0, "fit_seconds": f64,
                                 "heldout_log_prob": 0.749},
                "select": {"fd_samples": fd_select, "chosen": "edm", "candidates": [
                    {"name": "edm", "fit_seconds": edm_fit, "sample_seconds": 50.0}]},
            },
        }  # fmt: skip

    p = {"samples": 10_000, "threads": 2, "systems": {"vaekit-spatial": {"results": {
        "images": result(4.9, 100.0, 250.0, 480.0), "time": result(5.2, 100.0, 150.0, 700.0),
    }}}}  # fmt: skip
    met = {t["target"]: t["met"] for t in prior_targets(p)}
    pre = "vaekit-spatial + `vk.priors.select`'s choice: sample FD ≤ 1.0 × its reconstruction FD"
    assert met[f"{pre} (images budget)"] is True and met[f"{pre} (time budget)"] is False
    speed = [v for k, v in met.items() if "float64 EM with its old stop rule" in k]
    assert speed == [True, False]  # 2.5× and 1.5× faster, held-out log p 0.5% lower
    assert met["EDMDiffusion fit ≤ 10 min (vaekit-spatial latents)"] is False  # 700 s at one
    assert met["EDMDiffusion 10,000 samples ≤ 1 min (vaekit-spatial latents)"] is True
