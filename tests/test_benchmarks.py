"""The benchmark suite runs end to end (a minimal `benchmarks/run.py --quick`) and writes its
JSON and markdown; a peer that is missing is a row that says so. No timing is asserted."""

from __future__ import annotations

import json
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
        "--parts", "import,losses,speed,flops,memory,quality",
        "--systems", "vaekit-fmnist32", "pythae-resnet", "diffusers-kl",
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
    assert set(res["parts"]) == {"import", "losses", "speed", "flops", "memory", "quality"}
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


def test_markdown_tables(quick_run):
    _, md = quick_run
    for heading in ("## Peers", "## Quality at equal budget", "## Training-step throughput",
                    "## Achieved FLOP/s", "## Peak memory", "## Loss throughput",
                    "## Import time", "## Targets"):  # fmt: skip
        assert heading in md
    assert "| `vaekit-fmnist32` |" in md
    assert "| `diffusers-kl` |" in md and "excluded with --without" in md
    assert "| diffusers |" in md  # the peers table lists it, with the reason
