"""vk.losses.Adversarial: the losses' values, the adaptive weight, R1, the two steps, bad inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import vaekit as vk
from vaekit.functional import adaptive_weight, discriminator_loss, generator_loss, r1_penalty

LOSSES = vk.losses.ADVERSARIAL_LOSSES


def tiny_vae(seed: int = 0, **kw) -> vk.VAE:
    torch.manual_seed(seed)
    cfg = vk.VAEConfig(
        in_channels=1, image_size=24, widths=(4, 8), latent_dim=4, attention_at=(), **kw
    )
    return vk.VAE(cfg)


def tiny_disc(seed: int = 1, norm: str = "batch") -> vk.discriminators.PatchGAN:
    torch.manual_seed(seed)
    return vk.discriminators.build("patchgan", in_channels=1, width=4, layers=2, norm=norm)


def images(n: int = 4, seed: int = 2) -> torch.Tensor:
    return torch.rand(n, 1, 24, 24, generator=torch.Generator().manual_seed(seed))


# -- the losses on known logits ------------------------------------------------------------------
def test_values_on_known_logits():
    r = torch.tensor([[2.0], [0.5], [-1.0]])
    f = torch.tensor([[-2.0], [0.0], [3.0]])
    # hinge: relu(1 - r) = (0, 0.5, 2), relu(1 + f) = (0, 1, 4)
    assert discriminator_loss(r, f).item() == pytest.approx(0.5 * (2.5 / 3 + 5 / 3))
    assert generator_loss(f).item() == pytest.approx(-1 / 3)
    # non-saturating: -log sigmoid(r) and -log(1 - sigmoid(f))
    ns = 0.5 * (-torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean()).item()
    assert discriminator_loss(r, f, loss="non_saturating").item() == pytest.approx(ns, rel=1e-6)
    g_ns = -torch.log(torch.sigmoid(f)).mean().item()
    assert generator_loss(f, loss="non_saturating").item() == pytest.approx(g_ns, rel=1e-6)
    # least squares: (r - 1)^2 = (1, 0.25, 4), f^2 = (4, 0, 9); (f - 1)^2 = (9, 1, 4)
    assert discriminator_loss(r, f, loss="least_squares").item() == pytest.approx(
        0.5 * (5.25 / 3 + 13 / 3)
    )
    assert generator_loss(f, loss="least_squares").item() == pytest.approx(14 / 3)


@settings(max_examples=25, deadline=None)
@given(
    loss=st.sampled_from(LOSSES),
    b=st.integers(1, 4),
    hw=st.integers(1, 3),
    seed=st.integers(0, 10_000),
)
def test_a_perfect_discriminator_scores_best(loss, b, hw, seed):
    """Confident, correct logits give a lower D loss than confused ones, on any map shape."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(b, 1, hw, hw, generator=g) * 0.1
    good = discriminator_loss(1.5 + noise, -1.5 + noise, loss=loss)
    confused = discriminator_loss(-1.5 + noise, 1.5 + noise, loss=loss)
    assert good.ndim == 0 and good < confused
    # the generator prefers logits that say "real"
    assert generator_loss(1.5 + noise, loss=loss) < generator_loss(-1.5 + noise, loss=loss)
    if loss == "hinge":  # past the margins the hinge D loss is exactly 0
        assert good.item() == 0.0


@pytest.mark.parametrize("loss", LOSSES)
def test_losses_gradcheck_float64(loss):
    g = torch.Generator().manual_seed(0)
    r = torch.randn(3, 1, 2, 2, dtype=torch.float64, generator=g) * 2
    f = torch.randn(3, 1, 2, 2, dtype=torch.float64, generator=g) * 2
    # keep the hinge's logits off its kinks at +-1
    r = torch.where((r - 1).abs() < 0.05, r + 0.3, r).requires_grad_(True)
    f = torch.where((f + 1).abs() < 0.05, f + 0.3, f).requires_grad_(True)
    assert discriminator_loss(r, f, loss=loss).dtype == torch.float64
    assert torch.autograd.gradcheck(lambda r, f: discriminator_loss(r, f, loss=loss), (r, f))
    assert torch.autograd.gradcheck(lambda f: generator_loss(f, loss=loss), (f,))


def test_unknown_loss_and_bad_logits():
    with pytest.raises(ValueError, match=r"loss must be one of \['hinge', 'non_saturating'"):
        generator_loss(torch.zeros(2, 1), loss="wasserstein")
    with pytest.raises(TypeError, match="floating-point"):
        discriminator_loss(torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="batch dimension"):
        generator_loss(torch.tensor(1.0))


# -- the adaptive weight -------------------------------------------------------------------------
def test_adaptive_weight_is_the_ratio_of_the_two_gradient_norms():
    vae, disc = tiny_vae(), tiny_disc()
    x = images()
    out = vae(x)
    w = vae.decoder.last_layer
    rec = F.l1_loss(out.recon, x)
    g = generator_loss(disc(out.recon))
    # by hand: the two gradients at the last layer, each from its own backward pass
    vae.zero_grad()
    rec.backward(retain_graph=True)
    rec_norm = w.grad.norm().item()
    vae.zero_grad()
    g.backward(retain_graph=True)
    g_norm = w.grad.norm().item()
    vae.zero_grad()
    lam = adaptive_weight(rec, g, w, weight=0.5)
    assert lam.item() == pytest.approx(0.5 * rec_norm / (g_norm + 1e-4), rel=1e-5)
    assert not lam.requires_grad
    assert w.grad is None or w.grad.abs().sum() == 0  # it did not accumulate into .grad
    assert adaptive_weight(rec, g, w, weight=0.5, max_weight=1e-3).item() == pytest.approx(1e-3)
    assert adaptive_weight(rec, g, w, weight=0.0).item() == 0.0
    # a module with a .weight is accepted for its weight
    assert adaptive_weight(rec, g, vae.decoder.out_conv, weight=0.5).item() == lam.item()


def test_decoder_last_layer_is_the_final_conv_weight():
    for variance in ("none", "pixel"):
        vae = tiny_vae(variance=variance)
        assert vae.decoder.last_layer is vae.decoder.out_conv.weight
        assert isinstance(vae.decoder.last_layer, nn.Parameter)


def test_vaeloss_total_adds_lambda_times_the_generator_loss():
    vae, disc = tiny_vae(), tiny_disc()
    x = images()
    adv = vk.losses.Adversarial(disc, weight=0.5, last_layer=vae.decoder.last_layer)
    with_adv = vk.losses.VAELoss(recon="l1", beta=0.01, adversarial=adv)
    plain = vk.losses.VAELoss(recon="l1", beta=0.01)
    torch.manual_seed(3)
    out = vae(x)
    res, ref = with_adv(out, x, step=5), plain(out, x, step=5)
    lam, g = res.terms["adv_weight"], res.terms["adv"]
    assert lam.item() > 0
    torch.testing.assert_close(res.total, ref.total + lam * g)
    assert g.item() == pytest.approx(-disc(out.recon).mean().item(), rel=1e-5)
    # the VAE's gradient at the last layer is the reconstruction's plus lambda times the
    # adversarial one, whose norm is `weight` times the reconstruction's
    (grad_total,) = torch.autograd.grad(res.total, vae.decoder.last_layer, retain_graph=True)
    (grad_ref,) = torch.autograd.grad(ref.total, vae.decoder.last_layer, retain_graph=True)
    adv_part = (grad_total - grad_ref).norm() / grad_ref.norm()
    rec_only = F.l1_loss(out.recon, x)
    (grad_rec,) = torch.autograd.grad(rec_only, vae.decoder.last_layer, retain_graph=True)
    assert adv_part.item() == pytest.approx(0.5 * grad_rec.norm().item() / grad_ref.norm().item(),
                                            rel=1e-3)  # fmt: skip


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("adaptive", [True, False])
def test_generator_step_gradients_match_plain_autograd_and_leave_the_discriminator(loss, adaptive):
    """The term's graph stops at the images (the discriminator is differentiated once, for its
    input): every VAE gradient equals autograd of lambda * L_G(D(x_hat)) in float64, and the
    discriminator's weights get none."""
    vae, disc = tiny_vae().double(), tiny_disc(norm="group").double()
    x = images().double()
    adv = vk.losses.Adversarial(
        disc, loss, weight=0.7, adaptive=adaptive, last_layer=vae.decoder.last_layer
    )
    torch.manual_seed(3)
    out = vae(x)
    rec = F.l1_loss(out.recon, x)
    res = adv.generator_loss(out.recon, step=0, recon_loss=rec)
    lam = res.terms["adv_weight"]
    grads = torch.autograd.grad(rec + res.total, list(vae.parameters()), retain_graph=True)
    g_plain = generator_loss(disc(out.recon), loss=loss)
    torch.testing.assert_close(res.total, lam * g_plain)
    ref = torch.autograd.grad(
        rec + lam * g_plain, list(vae.parameters()), allow_unused=True, retain_graph=True
    )
    for got, want in zip(grads, ref, strict=True):
        torch.testing.assert_close(got, torch.zeros_like(got) if want is None else want)
    res = adv.generator_loss(out.recon, step=0, recon_loss=rec)
    res.total.backward()
    assert all(p.grad is None for p in disc.parameters())


def test_the_loss_does_not_own_the_discriminator():
    vae, disc = tiny_vae(), tiny_disc()
    adv = vk.losses.Adversarial(disc, last_layer=vae.decoder.last_layer)
    loss_fn = vk.losses.VAELoss(recon="l1", adversarial=adv)
    assert list(loss_fn.parameters()) == []  # the VAE optimizer's loss params stay the VAE's
    assert loss_fn.state_dict() == {}
    assert adv.discriminator is disc and adv.last_layer is vae.decoder.last_layer


# -- the discriminator step ----------------------------------------------------------------------
@pytest.mark.parametrize("loss", LOSSES)
def test_discriminator_step_sends_no_gradient_into_the_vae(loss):
    vae, disc = tiny_vae(), tiny_disc()
    x = images()
    loss_fn = vk.losses.VAELoss(
        recon="l1",
        adversarial=vk.losses.Adversarial(disc, loss, last_layer=vae.decoder.last_layer),
    )
    out = vae(x)
    d = loss_fn.discriminator_loss(out, x, step=0)
    d.total.backward()
    assert all(p.grad is None for p in vae.parameters())
    assert all(p.grad is not None for p in disc.parameters())
    assert sum(p.grad.abs().sum() for p in disc.parameters()) > 0
    assert set(d.terms) == {"d_loss", "logits_real", "logits_fake"}
    torch.testing.assert_close(d.total, d.terms["d_loss"])
    assert d.terms["logits_real"].item() == pytest.approx(disc(x).mean().item(), abs=1e-2)


def test_discriminator_learns_to_tell_real_from_blurred():
    """A few D steps on sharp vs box-blurred images separate their logits (the signal the
    decoder then follows)."""
    disc = tiny_disc(norm="group")
    adv = vk.losses.Adversarial(disc, adaptive=False)
    opt = torch.optim.Adam(disc.parameters(), lr=2e-3, betas=(0.5, 0.9))
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        x = (torch.rand(8, 1, 24, 24, generator=g) > 0.5).float()
        blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        d = adv.discriminator_loss(x, blurred)
        opt.zero_grad()
        d.total.backward()
        opt.step()
    assert d.terms["logits_real"] > 0.5 > -0.5 > d.terms["logits_fake"]


def test_r1_penalty_against_per_image_autograd():
    disc = tiny_disc(norm="none")  # a per-image discriminator: the batch does not mix
    x = images(3).requires_grad_(True)
    logits = disc(x)
    expected = 0.0
    for i in range(3):
        xi = x[i : i + 1].detach().requires_grad_(True)
        (gi,) = torch.autograd.grad(disc(xi).sum(), xi)
        expected += gi.square().sum().item() / 3
    assert r1_penalty(x, logits).item() == pytest.approx(expected, rel=1e-5)
    adv = vk.losses.Adversarial(disc, r1_gamma=10.0, adaptive=False)
    fake = images(3, seed=7)
    d = adv.discriminator_loss(x.detach(), fake)
    assert d.terms["r1"].item() == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(d.total, d.terms["d_loss"] + 5.0 * d.terms["r1"])
    d.total.backward()  # the penalty is differentiable in the discriminator's weights
    assert all(p.grad is not None for p in disc.parameters())
    with pytest.raises(ValueError, match="requires_grad_"):
        r1_penalty(x.detach(), logits)


# -- start, validation, schedules of use ---------------------------------------------------------
class CountingDisc(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.in_channels = 1
        self.inner = tiny_disc()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_nothing_before_start():
    vae, disc = tiny_vae(), CountingDisc()
    adv = vk.losses.Adversarial(disc, start=10, last_layer=vae.decoder.last_layer)
    loss_fn = vk.losses.VAELoss(recon="l1", adversarial=adv)
    plain = vk.losses.VAELoss(recon="l1")
    x = images()
    out = vae(x)
    res = loss_fn(out, x, step=9)
    torch.testing.assert_close(res.total, plain(out, x, step=9).total, rtol=0, atol=0)
    assert res.terms["adv"] == 0 and res.terms["adv_weight"] == 0
    d = loss_fn.discriminator_loss(out, x, step=9)
    d.total.backward()  # a no-op the training loop may still call
    assert d.total.item() == 0 and set(d.terms) == {"d_loss", "logits_real", "logits_fake"}
    assert disc.calls == 0 and not adv.active(9) and adv.active(10)
    assert loss_fn(out, x, step=10).terms["adv_weight"] > 0
    assert disc.calls == 1
    with pytest.raises(TypeError, match=r"starts at step 10.*pass step"):
        loss_fn(out, x)
    with pytest.raises(TypeError, match=r"starts at step 10.*pass step"):
        adv.discriminator_loss(x, out.recon)


def test_validation_under_no_grad_reports_but_does_not_add():
    vae, disc = tiny_vae(), tiny_disc()
    loss_fn = vk.losses.VAELoss(
        recon="l1", adversarial=vk.losses.Adversarial(disc, last_layer=vae.decoder.last_layer)
    )
    x = images()
    with torch.no_grad():
        out = vae(x)
        res = loss_fn(out, x)
        ref = vk.losses.VAELoss(recon="l1")(out, x)
    assert res.terms["adv_weight"] == 0 and res.terms["adv"] != 0
    torch.testing.assert_close(res.total, ref.total)
    fixed = vk.losses.Adversarial(disc, weight=0.25, adaptive=False)
    with torch.no_grad():
        assert fixed.generator_loss(out.recon).terms["adv_weight"].item() == 0.25


# -- bad inputs ----------------------------------------------------------------------------------
def test_bad_inputs():
    vae, disc = tiny_vae(), tiny_disc()
    x = images()
    out = vae(x)
    with pytest.raises(TypeError, match=r"discriminator must be an nn\.Module"):
        vk.losses.Adversarial("patchgan")
    with pytest.raises(ValueError, match="loss must be one of"):
        vk.losses.Adversarial(disc, loss="wgan")
    with pytest.raises(ValueError, match="weight"):
        vk.losses.Adversarial(disc, weight=-1.0)
    with pytest.raises(ValueError, match="start"):
        vk.losses.Adversarial(disc, start=-5)
    with pytest.raises(ValueError, match="r1_gamma"):
        vk.losses.Adversarial(disc, r1_gamma=float("nan"))
    with pytest.raises(TypeError, match="last_layer must be the decoder's last weight"):
        vk.losses.Adversarial(disc, last_layer="out_conv")
    with pytest.raises(TypeError, match="without one"):
        vk.losses.Adversarial(disc, last_layer=nn.ReLU())
    with pytest.raises(ValueError, match="requires no gradient"):
        vk.losses.Adversarial(disc, last_layer=torch.zeros(3))
    with pytest.raises(TypeError, match=r"adversarial must be a vaekit\.losses\.Adversarial"):
        vk.losses.VAELoss(recon="l1", adversarial=disc)
    with pytest.raises(ValueError, match="no adversarial term"):
        vk.losses.VAELoss(recon="l1").discriminator_loss(out, x)
    # adaptive without a last layer, or without the reconstruction loss
    no_layer = vk.losses.VAELoss(recon="l1", adversarial=vk.losses.Adversarial(disc))
    with pytest.raises(ValueError, match=r"needs the decoder's last layer.*vae.decoder.last_layer"):
        no_layer(out, x)
    with pytest.raises(ValueError, match="needs recon_loss="):
        vk.losses.Adversarial(disc, last_layer=vae.decoder.last_layer).generator_loss(out.recon)
    # a layer that is not the one that made the images
    other = tiny_vae(seed=5)
    wrong = vk.losses.Adversarial(disc, last_layer=other.decoder.last_layer)
    with pytest.raises(ValueError, match="sends no gradient to last_layer"):
        vk.losses.VAELoss(recon="l1", adversarial=wrong)(out, x)
    # wrong channels for the discriminator, mismatched or non-finite batches
    adv = vk.losses.Adversarial(disc, adaptive=False)
    with pytest.raises(ValueError, match=r"fake must have 1 channel\(s\), got 3"):
        adv.generator_loss(torch.rand(2, 3, 24, 24))
    with pytest.raises(ValueError, match="same shape"):
        adv.discriminator_loss(x, x[:, :, :12])
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="fake must be finite"):
        adv.discriminator_loss(x, bad)
    with pytest.raises(ValueError, match="real must be finite"):
        adv.discriminator_loss(bad, x)
    with pytest.raises(ValueError, match="step"):
        adv.generator_loss(x, step=-1)


def test_reserved_term_names():
    with pytest.raises(ValueError, match="not one of"):
        vk.losses.Weighted({"adv": (vk.losses.build("l1"), 1.0)})


# -- autocast, compile -------------------------------------------------------------------------
def test_bf16_autocast_gives_float32_terms_and_finite_gradients():
    vae, disc = tiny_vae(), tiny_disc()
    loss_fn = vk.losses.VAELoss(
        recon="l1", adversarial=vk.losses.Adversarial(disc, last_layer=vae.decoder.last_layer)
    )
    x = images(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = vae(x)
        res = loss_fn(out, x, step=0)
        d = loss_fn.discriminator_loss(out, x, step=0)
    assert res.total.dtype == torch.float32 and d.total.dtype == torch.float32
    assert res.terms["adv_weight"].dtype == torch.float32 and res.terms["adv_weight"] > 0
    res.total.backward()
    d.total.backward()
    assert all(torch.isfinite(p.grad).all() for p in disc.parameters() if p.grad is not None)


def test_compiled_vae_and_discriminator_match_eager():
    vae, disc = tiny_vae(), tiny_disc(norm="group")
    x = images(2)

    def run(v, dsc):
        adv = vk.losses.Adversarial(dsc, last_layer=vae.decoder.last_layer)
        loss_fn = vk.losses.VAELoss(recon="l1", adversarial=adv)
        out = v(x)
        return loss_fn(out, x, step=0), loss_fn.discriminator_loss(out, x, step=0)

    vae.eval()
    eager_g, eager_d = run(vae, disc)
    compiled_g, compiled_d = run(
        torch.compile(vae, backend="eager"), torch.compile(disc, backend="eager")
    )
    torch.testing.assert_close(compiled_g.total, eager_g.total)
    torch.testing.assert_close(compiled_g.terms["adv_weight"], eager_g.terms["adv_weight"])
    torch.testing.assert_close(compiled_d.total, eager_d.total)
    compiled_g.total.backward()
    compiled_d.total.backward()
    assert vae.decoder.last_layer.grad is not None
