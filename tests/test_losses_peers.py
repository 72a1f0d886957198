"""Each vaekit loss in the benchmark's peer table is paired with a peer that computes the same
value (benchmarks/losses.py::_peer_pairs), so its timing row compares like with like."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import losses as loss_bench  # noqa: E402  (benchmarks/losses.py)
from common import peer_status  # noqa: E402

PAIRS = loss_bench._peer_pairs()
# network losses: same architecture, but each side draws its own random weights
RANDOM_WEIGHTS = ("lpips",)


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{ours} vs {peer}" for ours, _, _, peer, _ in PAIRS])
def test_peer_computes_the_same_value(pair):
    ours_label, ours_build, package, _, peer_build = pair
    if ours_label.startswith(RANDOM_WEIGHTS):
        pytest.skip("random backbones on both sides: the values differ by their weights")
    status = peer_status(package)
    if not status.available:
        pytest.skip(f"{package}: {status.reason}")
    side = 176 if ours_label.startswith("ms_ssim") else 48  # MS-SSIM peers need > 160 px
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, side, side, generator=g)
    recon = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = peer_build()
        expected = peer(recon, x)
    # rtol 1e-3: implementations of one definition differ a little (piq's MS-SSIM by 2e-4);
    # another definition (kornia's (1 - SSIM) / 2, L1 vs squared spectra) is off by far more
    torch.testing.assert_close(ours_build()(recon, x), expected, rtol=1e-3, atol=1e-6)
