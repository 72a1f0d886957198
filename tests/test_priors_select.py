"""vk.priors.select and the record of an ex-post fit: held-out log-likelihood, the overfitting
and too-few-latents warnings, float32 EM against float64, the fit state through save/load."""

from __future__ import annotations

import json
import math
import re
import sys
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vaekit as vk


def clusters(n: int = 600, d: int = 2, k: int = 3, seed: int = 0) -> torch.Tensor:
    """``n`` latents around ``k`` well separated centres in ``d`` dims."""
    g = torch.Generator().manual_seed(seed)
    centres = 6.0 * torch.randn(k, d, generator=g)
    labels = torch.arange(n) % k
    return centres[labels] + torch.randn(n, d, generator=g)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def quiet_fit(prior, latents, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return prior.fit(latents, progress=False, **kw)


# -- select ------------------------------------------------------------------------------------
def test_select_picks_the_true_mixture_not_a_memorising_one():
    latents = clusters(n=240, d=6, k=3)
    cands = [
        {"name": "gmm", "components": k, "covariance": "full", "reg": 1e-3} for k in (1, 3, 20)
    ]
    sel = vk.priors.select(latents, cands, generator=gen(1), progress=False)
    assert sel.name == "gmm:3:full" and sel.best.components == 3 and sel.best.is_fitted
    rows = {r["name"]: r for r in sel.table}
    assert list(rows) == ["gmm:1:full", "gmm:3:full", "gmm:20:full"]
    # more components fit the fit latents better and the held-out ones worse
    big, true = rows["gmm:20:full"], rows["gmm:3:full"]
    assert big["fit_log_prob"] > true["fit_log_prob"]
    assert big["heldout_log_prob"] < true["heldout_log_prob"] - 0.05
    assert sel.criterion == "heldout_log_prob" and sel.higher_is_better
    assert (sel.num_fit, sel.num_heldout) == (216, 24)
    for row in sel.table:
        assert row["score"] == row["heldout_log_prob"] and row["fit_seconds"] >= 0
    md = sel.to_markdown()
    assert "| **gmm:3:full** |" in md and md.count("\n") == 2 + len(sel.table) - 1
    assert "best='gmm:3:full'" in str(sel)
    assert list(sel.priors) == list(rows) and sel.priors["gmm:3:full"] is sel.best
    assert all(p.is_fitted for p in sel.priors.values())


def test_select_is_reproducible_with_a_seeded_generator():
    latents = clusters(n=300, d=3)
    a = vk.priors.select(latents, ["gmm", {"name": "gmm", "components": 3}], generator=gen(5),
                         progress=False)  # fmt: skip
    b = vk.priors.select(latents, ["gmm", {"name": "gmm", "components": 3}], generator=gen(5),
                         progress=False)  # fmt: skip
    assert a.name == b.name
    assert [r["score"] for r in a.table] == [r["score"] for r in b.table]
    torch.testing.assert_close(a.best.means, b.best.means, rtol=0, atol=0)


def test_select_with_a_score_ranks_priors_without_a_density():
    latents = clusters(n=400, d=2, k=2)

    def score(prior):  # lower is better: distance of the samples' mean to the latents' mean
        s = prior.sample(2000, generator=gen(3))
        return float((s.mean(0) - latents.mean(0)).norm())

    cands = [
        {"name": "gmm", "components": 2},
        {"name": "diffusion", "fit": {"iterations": 30, "batch_size": 64}, "sample_steps": 5},
    ]
    sel = vk.priors.select(latents, cands, score=score, generator=gen(0), progress=False)
    assert sel.criterion == "score" and not sel.higher_is_better
    scores = [r["score"] for r in sel.table]
    assert sel.name == sel.table[scores.index(min(scores))]["name"]
    diffusion = sel.table[1]
    assert diffusion["name"] == "diffusion" and math.isnan(diffusion["heldout_log_prob"])


def test_select_reports_a_failed_candidate_and_keeps_the_others():
    latents = clusters(n=60, d=3)
    bad = vk.priors.GaussianMixture(2, max_iter=5)
    bad.fit = lambda *a, **k: (_ for _ in ()).throw(ValueError("singular covariance"))
    sel = vk.priors.select(latents, [bad, "gmm"], generator=gen(0), progress=False)
    assert sel.name == "gmm:10:full"
    assert sel.table[0]["note"] == "failed: singular covariance"
    assert math.isnan(sel.table[0]["score"])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"candidates": []}, ValueError, r"candidates is empty"),
        ({"candidates": ["mog"]}, ValueError, r"'mog' is not fitted on latents"),
        ({"candidates": ["diffusion"]}, ValueError,
         r"\['LatentDiffusion'\] have no density.*pass score="),
        ({"candidates": [3]}, TypeError, r"a candidate is a prior name .* got int 3"),
        ({"candidates": [{"name": "gmm", "fit": 3}]}, TypeError, r"'fit' must be a dict"),
        ({"candidates": [{"components": 3}]}, TypeError, r"a candidate is a prior name"),
        ({"val_fraction": 0.0}, ValueError, r"val_fraction must be > 0"),
        ({"val_fraction": 1.0}, ValueError, r"val_fraction must be in \(0, 1\), got 1.0"),
        ({"val_fraction": 0.001}, ValueError, r"leave 100 to fit and 0 to score"),
        ({"score": 3}, TypeError, r"score must be a function of a fitted prior, got int"),
    ],
)  # fmt: skip
def test_select_bad_inputs(kwargs, error, message):
    with pytest.raises(error, match=message):
        vk.priors.select(clusters(n=100), progress=False, **kwargs)


@pytest.mark.parametrize(
    ("latents", "message"),
    [
        (torch.zeros(10), r"\(N, D\) flat or \(N, C, h, w\) spatial"),
        (torch.full((10, 2), math.nan), r"latents.*NaN|non-finite|finite"),
        ([[1.0, 2.0]], r"latents must be a torch.Tensor, got list"),
    ],
)
def test_select_bad_latents(latents, message):
    with pytest.raises((TypeError, ValueError), match=message):
        vk.priors.select(latents, progress=False)


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 300), n=st.integers(2, 100_000))
def test_default_candidates_respect_the_data_each_needs(d, n):
    cands = vk.priors.default_candidates((d,), n)
    for c in cands:
        k = c.get("components")
        if c["name"] == "gmm" and c["covariance"] == "full":
            assert n >= k * d and n >= 10 * k
        elif c["name"] == "gmm":
            assert n >= 10 * k
        else:
            assert c == {"name": "flow"} and n >= 256
    assert ({"name": "gmm", "components": 1, "covariance": "diag"} in cands) == (n >= 10)
    # with a diffusion prior (select's candidates when given a score): the same, and one more
    wide = vk.priors.default_candidates((d,), n, diffusion=True)
    assert wide[: len(cands)] == cands
    assert wide[len(cands) :] == ([{"name": "diffusion"}] if n >= 256 else [])
    spatial = vk.priors.default_candidates((1, d, 1), n, diffusion=True)
    assert ({"name": "edm"} in spatial) == (n >= 256) and {"name": "diffusion"} not in spatial


def test_select_with_a_score_and_no_candidates_adds_the_diffusion_prior(monkeypatch):
    latents = torch.randn(300, 2, 2, 2, generator=gen(0))
    module = sys.modules["vaekit.priors.select"]
    asked = []

    def small_candidates(shape, n, *, diffusion=False):  # the defaults, with minutes of
        asked.append(diffusion)  # training cut to a few steps
        out = vk.priors.default_candidates(shape, n, diffusion=diffusion)
        for c in out:
            if c["name"] in ("flow", "edm"):
                c["fit"] = {"iterations": 2}
            if c["name"] == "edm":
                c.update(sample_steps=2, channels=4, blocks=1)
        return out

    monkeypatch.setattr(module, "default_candidates", small_candidates)
    seen = []

    def score(prior):
        seen.append(type(prior).__name__)
        return float(len(seen))  # the first candidate fitted wins

    sel = vk.priors.select(latents, score=score, generator=gen(0), progress=False)
    assert asked == [True] and seen[-2:] == ["Flow", "EDMDiffusion"]
    assert [r["name"] for r in sel.table][-2:] == ["flow", "edm"]
    assert sel.name == "gmm:1:diag" and sel.criterion == "score"
    sel = vk.priors.select(latents, generator=gen(0), progress=False)
    assert asked == [True, False] and "edm" not in [r["name"] for r in sel.table]


def test_select_default_candidates_on_spatial_latents():
    g = gen(0)
    latents = torch.randn(250, 2, 2, 2, generator=g) * torch.tensor([1.0, 0.1]).view(2, 1, 1)
    sel = vk.priors.select(latents, generator=gen(0), progress=False)
    names = [r["name"] for r in sel.table]
    assert names == ["gmm:1:diag", "gmm:10:diag", "gmm:1:full", "gmm:5:full", "gmm:10:full",
                     "gmm:20:full"]  # fmt: skip
    assert sel.best.latent_shape == (2, 2, 2)
    assert sel.best.sample(3, generator=g).shape == (3, 2, 2, 2)


# -- the fit's record --------------------------------------------------------------------------
def test_gmm_fit_reports_fit_and_heldout_log_likelihood():
    latents = clusters(n=500, d=3)
    gmm = quiet_fit(vk.priors.GaussianMixture(3), latents, generator=gen(0))
    r = gmm.fit_report
    assert (r["n_fit"], r["n_heldout"], r["dims"]) == (450, 50, 3)
    assert r["seconds"] >= 0 and abs(r["fit_log_prob"] - r["heldout_log_prob"]) < 0.25
    assert r["fit_log_prob"] == pytest.approx(gmm.history[-1] / 3, abs=1e-6)
    full = quiet_fit(vk.priors.GaussianMixture(3), latents, generator=gen(0), val_fraction=0)
    assert full.fit_report["n_fit"] == 500 and "heldout_log_prob" not in full.fit_report


def test_overfitting_and_too_few_latents_warn_naming_the_fix():
    latents = clusters(n=120, d=6, k=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vk.priors.GaussianMixture(20, reg=1e-3).fit(latents, generator=gen(0), progress=False)
    messages = [str(w.message) for w in caught]
    assert all(w.category is RuntimeWarning and w.filename == __file__ for w in caught)
    assert len(messages) == 2, messages
    assert re.fullmatch(
        r"GaussianMixture\(20, 'full'\) on 108 latents of 6 dims: 5 latents per component for "
        r"a 6x6 covariance, too few to estimate it \(it will overfit\); use covariance='diag', "
        r"fewer components \(at most 18\), or more latents", messages[0]
    )  # fmt: skip
    assert re.fullmatch(
        r"GaussianMixture overfits its 108 latents: log-likelihood -?[\d.]+ nats/dim on them, "
        r"-?[\d.]+ on 12 held-out ones; use fewer components, covariance='diag', a larger reg "
        r"\(now 0.001\) or vk.priors.select", messages[1]
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a mixture the data support: no warning
        vk.priors.GaussianMixture(2).fit(clusters(n=400, d=2, k=2), generator=gen(0),
                                         progress=False)  # fmt: skip


def test_flow_fit_reports_heldout_and_diffusion_its_size():
    latents = clusters(n=600, d=4)
    flow = vk.priors.Flow(layers=2, hidden=16).fit(
        latents, iterations=20, batch_size=64, generator=gen(0), progress=False
    )
    assert flow.fit_report["n_heldout"] == 60
    assert math.isfinite(flow.fit_report["heldout_log_prob"])
    diff = vk.priors.LatentDiffusion(sample_steps=3).fit(
        latents, iterations=5, batch_size=64, generator=gen(0), progress=False
    )
    assert diff.fit_report["n_fit"] == 600 and "fit_log_prob" not in diff.fit_report


def test_float32_em_matches_float64():
    latents = clusters(n=3000, d=16, k=4) + 50.0  # far from the origin: centring matters
    fits = {
        p: quiet_fit(vk.priors.GaussianMixture(4, precision=p), latents, generator=gen(0))
        for p in ("float32", "float64")
    }
    a, b = fits["float32"], fits["float64"]
    assert a.history[-1] == pytest.approx(b.history[-1], rel=1e-4)
    torch.testing.assert_close(a.means, b.means, rtol=0, atol=1e-3)
    # a diagonal mixture runs its EM in float64 on CPU whatever precision says
    x, y = (
        quiet_fit(vk.priors.GaussianMixture(4, "diag", precision=p), latents, generator=gen(0))
        for p in ("float32", "float64")
    )
    assert x.history == y.history and torch.equal(x.scales, y.scales)
    # the float32 diagonal E-step (GPUs) forms the squares in blocks: it matches float64's GEMMs
    means, scales = x.means.double() - 50.0, x.scales.double()
    z = latents.double() - 50.0
    ref = x._component_log_prob(z, means, scales)
    got = x._component_log_prob(z.float(), means.float(), scales.float())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match=r"precision must be one of \['float32', 'float64'\]"):
        vk.priors.GaussianMixture(2, precision="half")


@pytest.mark.parametrize("d", [2, 16])
def test_em_stops_when_the_log_likelihood_per_dimension_settles(d):
    latents = clusters(n=2000, d=d, k=4)
    gmm = quiet_fit(vk.priors.GaussianMixture(6, tol=1e-3), latents, generator=gen(0))
    steps = [abs(b - a) / d for a, b in zip(gmm.history, gmm.history[1:], strict=False)]
    assert gmm.converged and gmm.n_iter == len(steps) >= 2
    assert steps[-1] < 1e-3 and min(steps[:-1]) >= 1e-3  # per dimension, not per latent


def test_fit_state_survives_save_and_load(tmp_path):
    cfg = vk.VAEConfig(in_channels=1, image_size=8, widths=(4,), latent_dim=3, attention_at=(),
                       block="conv")  # fmt: skip
    vae = vk.VAE(cfg)
    gmm = quiet_fit(vk.priors.GaussianMixture(2), clusters(n=200, d=3), generator=gen(0))
    vae.prior = gmm
    vae.save(tmp_path / "m.safetensors")
    loaded = vk.VAE.load(tmp_path / "m.safetensors").prior
    assert loaded.fit_state() == gmm.fit_state()
    assert loaded.n_iter == gmm.n_iter >= 1 and loaded.converged == gmm.converged
    assert loaded.history == gmm.history and loaded.fit_report["n_heldout"] == 20
    again = vk.VAE(cfg, prior=vk.priors.GaussianMixture(2))  # in place: same name and config
    again.load_weights(tmp_path / "m.safetensors")
    assert again.prior.fit_state() == gmm.fit_state()
    spec = vk.priors.to_config(gmm)
    assert json.loads(json.dumps(spec)) == spec and spec["fit"]["n_iter"] == gmm.n_iter
    old = {"name": spec["name"], "config": spec["config"]}  # a file from before the record
    back = vk.priors.from_config(old, gmm.state_dict())
    assert back.is_fitted and back.history == [] and back.fit_report == {}
    g = lambda: gen(7)
    torch.testing.assert_close(back.sample(5, generator=g()), gmm.sample(5, generator=g()),
                               rtol=0, atol=0)  # fmt: skip


def test_bad_fit_states():
    gmm = vk.priors.GaussianMixture(2)
    with pytest.raises(ValueError, match=r"records \['history', 'fit_report', 'n_iter', "
                       r"'converged'\] from a fit, got unknown keys \['bogus'\]"):  # fmt: skip
        gmm.load_fit_state({"bogus": 1})
    with pytest.raises(TypeError, match=r"a fit state must be a dict, got list"):
        gmm.load_fit_state([])
    with pytest.raises(ValueError, match=r"'mog' is not fitted ex post, yet the config has 'fit'"):
        vk.priors.from_config({"name": "mog", "config": {"components": 2}, "fit": {}})
    with pytest.raises(ValueError, match=r"as written by vk.priors.to_config"):
        vk.priors.from_config({"name": "gmm", "config": {}, "extra": 1})
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\), got 1"):
        gmm.fit(clusters(n=50), val_fraction=1, progress=False)
