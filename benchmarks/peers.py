"""Contenders: vaekit models and their peers behind one small interface.

A :class:`Contender` is a model, its training loss, its optimiser and an adapter to a
``vk.VAE`` so that the same vaekit metrics (PSNR, SSIM, ELBO, active units, FD) score every
system alike. Peers come from their PyPI packages:

- **pythae** 0.1.2 (Chadebec et al. 2022): ``pythae.models.VAE`` with its MNIST benchmark
  ResNet and conv encoder/decoder, or its default MLP nets; loss ``0.5·SSE + KL`` (its
  ``reconstruction_loss="mse"`` default), Adam 1e-4, batch 64.
- **diffusers** ``AutoencoderKL`` (Rombach et al. 2022), trained LDM-style with L1 + 1e-6 KL
  (the ``kl_weight`` of LDM's ``LPIPSWithDiscriminator`` without its LPIPS and GAN terms),
  data in [-1, 1], Adam(β = 0.5, 0.9) at LDM's base rate 4.5e-6 × batch size.
- **vanilla**: the conv VAE most tutorials copy (PyTorch-VAE's ``VanillaVAE``, AntixK):
  stride-2 conv + BatchNorm + LeakyReLU encoder, ``ConvTranspose2d`` decoder, MSE (mean) +
  0.00025 · KL, Adam 5e-3 with a 0.95-per-epoch decay. Written here; sigmoid output because the
  data are in [0, 1] (the original ends in tanh).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from common import PeerUnavailable, require
from torch import nn

import vaekit as vk

Shape = tuple[int, int, int]


@dataclass
class Contender:
    """One trainable system and how to score it."""

    name: str
    peer: str | None  # PyPI package it comes from; None for vaekit / the in-benchmark reference
    model: nn.Module
    input_shape: Shape  # what the model eats, (C, H, W)
    loss: Callable[[nn.Module, torch.Tensor, int], torch.Tensor]  # (model, x, step) -> scalar
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]
    eval_vae: Callable[[], vk.VAE]  # adapter: [0, 1] images at input_shape -> vk.VAE API
    to_input: Callable[[torch.Tensor], torch.Tensor] = lambda x: x  # [0, 1] data -> model input
    likelihood: dict | None = None  # kwargs of vk.metrics.elbo_nll when the loss is an ELBO
    clip_grad: float | None = None
    lr_per_epoch: float | None = None  # multiplicative decay per epoch (vanilla)
    notes: str = ""
    extra: dict = field(default_factory=dict)
    # modules trained next to the model but not part of it (a discriminator, a loss with
    # parameters): moved to the model's device by the training loop
    companions: tuple[nn.Module, ...] = ()
    # a second optimiser's step after the model's, on the same batch (the discriminator's):
    # step index -> None; called by the training loop after every optimiser step of the model
    second_step: Callable[[int], None] | None = None

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def crop_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` pixels (pythae's MNIST nets eat the 28x28 content)."""
    off = (x.shape[-1] - size) // 2
    return x[..., off : off + size, off : off + size] if off else x


# -- vaekit ------------------------------------------------------------------------------------
def fmnist_spatial_config(**overrides) -> vk.VAEConfig:
    """The xray-spatial family at 32 px: ResBlocks, GroupNorm/SiLU, a 4x8x8 spatial latent."""
    kw = dict(image_size=32, in_channels=1, widths=(32, 64), attention_at=(), latent_channels=4)
    return vk.presets.config("xray128-spatial", **{**kw, **overrides})


RECIPES = {
    # examples/recipes/fmnist32.json (the Quickstart): Bernoulli likelihood, beta 0.8, AdamW 2e-3
    "bce-beta0.8": dict(recon="bce", beta=0.8, free_bits=0.0, lr=2e-3, likelihood="bernoulli"),
    # the same at β = 1: the ELBO's own balance, so prior samples land where the data are
    "bce-beta1": dict(recon="bce", beta=1.0, free_bits=0.0, lr=2e-3, likelihood="bernoulli"),
    # the same with the vanilla reference's step size: AdamW 5e-3, x0.95 per epoch
    "bce-beta1-lr5e-3": dict(
        recon="bce", beta=1.0, free_bits=0.0, lr=5e-3, lr_per_epoch=0.95, likelihood="bernoulli"
    ),
    # spatial latent, reconstruction first: L1 + SSIM, a light KL with free bits
    "l1-ssim-spatial": dict(
        recon={"l1": 1.0, "ssim": 0.2}, beta=0.05, free_bits=0.0, lr=2e-3, likelihood=None
    ),
    # generic recipe for the speed part on other presets
    "mse": dict(recon="mse", beta=1.0, free_bits=0.0, lr=1e-3, likelihood=None),
    # the sharpness part: the fmnist32 recipe + a spectral term (|ΔF| of the orthonormal FFT,
    # on the scale of an L1 in pixels); the Bernoulli likelihood stays the main term
    "bce-fft-beta0.8": dict(
        recon={"bce": 1.0, "fft": 0.1}, beta=0.8, free_bits=0.0, lr=2e-3, likelihood=None
    ),
    # the levers of sharpness on the fmnist32 model (benchmarks/sharpness.py). A pixel loss's
    # β is the scale of the likelihood it stands for at PSNR ≈ 20 dB (L1 = Laplace with
    # b ≈ 0.05; MSE = Gaussian with 2σ² ≈ 0.02), so each sits at the balance of recon and KL
    # that the Bernoulli recipe has by construction
    "bce-beta0.1": dict(recon="bce", beta=0.1, free_bits=0.0, lr=2e-3, likelihood=None),
    "l1-beta0.05": dict(recon="l1", beta=0.05, free_bits=0.0, lr=2e-3, likelihood=None),
    "mse-beta0.02": dict(recon="mse", beta=0.02, free_bits=0.0, lr=2e-3, likelihood=None),
    "l1-fft-beta0.05": dict(
        recon={"l1": 1.0, "fft": 0.1}, beta=0.05, free_bits=0.0, lr=2e-3, likelihood=None
    ),
    "multiscale-beta0.05": dict(
        recon=lambda: vk.losses.MultiScale({"l1": 1.0, "ssim": 0.5, "fft": 0.1}, scales=2),
        beta=0.05, free_bits=0.0, lr=2e-3, likelihood=None,
    ),
    # σ-VAE (Rybkin et al. 2021): the batch's maximum-likelihood σ, a Gaussian ELBO that
    # balances itself; a learned scalar σ reaches the same optimum, but at lr 2e-3 its log σ²
    # moves ~2e-3 per step, too slow for a budget of a few hundred steps
    "gaussian-optimal-beta0.8": dict(
        recon=lambda: vk.losses.GaussianNLLLoss(sigma="optimal"),
        beta=0.8, free_bits=0.0, lr=2e-3, likelihood=None,
    ),
    # VGG16 features need torchvision's ImageNet file; the benchmark never downloads it
    "l1-perceptual-beta0.05": dict(
        recon=lambda: {"l1": 1.0, "perceptual": (_perceptual(), 0.1)},
        beta=0.05, free_bits=0.0, lr=2e-3, likelihood=None,
    ),
}  # fmt: skip


def _perceptual() -> nn.Module:
    """VGG16 perceptual loss with ImageNet weights from the local torch hub cache only."""
    try:
        return vk.losses.PerceptualLoss(download=False)
    except vk.losses.WeightsNotFoundError as err:  # the row says which file is missing
        what = str(err).split(". On a machine with internet")[0]  # the file and where, not how
        raise PeerUnavailable(
            f"{what} (the benchmark never downloads; a random backbone would measure nothing)"
        ) from None


def vaekit_contender(
    name: str,
    config: vk.VAEConfig,
    recipe: str,
    channels_last: bool = True,
    adversarial: dict | None = None,
) -> Contender:
    """A vaekit VAE trained with ``RECIPES[recipe]``; ``adversarial`` adds a PatchGAN term
    (keys: ``weight``, ``loss``, ``start`` step, discriminator ``width``, ``layers``, ``norm``
    and its AdamW ``lr``, ``betas``; see ``benchmarks/sharpness.py``)."""
    r = RECIPES[recipe]
    vae = vk.VAE(config)
    if channels_last:
        vae = vae.to(memory_format=torch.channels_last)
    adv = disc = None
    if adversarial is not None:
        a = adversarial
        disc = vk.discriminators.build("patchgan", in_channels=config.in_channels,
                                       width=a["width"], layers=a["layers"], norm=a["norm"])  # fmt: skip
        adv = vk.losses.Adversarial(disc, loss=a["loss"], weight=a["weight"], start=a["start"],
                                    last_layer=vae.decoder.last_layer)  # fmt: skip
    recon = r["recon"]() if callable(r["recon"]) else r["recon"]
    loss_fn = vk.losses.VAELoss(
        recon=recon, kl=vk.losses.KL(free_bits=r["free_bits"]), beta=r["beta"], adversarial=adv
    )
    batch: dict = {}  # the VAE step's output and data, for the discriminator's step

    def loss(model, x, step):
        out = model(x)
        if adv is not None:
            batch.update(out=out, x=x)
        return loss_fn(out, x, step=step).total

    second_step = None
    if adv is not None:
        d_opt = torch.optim.AdamW(disc.parameters(), lr=a["lr"], betas=a["betas"], weight_decay=0)

        def second_step(step: int) -> None:
            out, x = batch.pop("out"), batch.pop("x")
            if adv.active(step):
                d = loss_fn.discriminator_loss(out, x, step=step)
                d_opt.zero_grad(set_to_none=True)
                d.total.backward()
                d_opt.step()

    likelihood = {"likelihood": r["likelihood"]} if r["likelihood"] else None
    notes = f"recipe {recipe}; {'channels_last' if channels_last else 'NCHW'}"
    if adv is not None:
        notes += (f"; PatchGAN width {a['width']}, {a['layers']} layers, {a['norm']} norm, "
                  f"{a['loss']}, adaptive weight × {a['weight']:g} from step {a['start']}")  # fmt: skip
    return Contender(
        name=name,
        peer=None,
        model=vae,
        input_shape=config.data_shape,
        loss=loss,
        make_optimizer=lambda m: torch.optim.AdamW(m.parameters(), lr=r["lr"], weight_decay=1e-4),
        eval_vae=lambda: vae,
        to_input=(lambda x: x.contiguous(memory_format=torch.channels_last))
        if channels_last
        else (lambda x: x),
        likelihood=likelihood,
        clip_grad=5.0,
        lr_per_epoch=r.get("lr_per_epoch"),
        notes=notes,
        companions=(loss_fn,) if disc is None else (loss_fn, disc),
        second_step=second_step,
    )


# -- pythae ------------------------------------------------------------------------------------
PYTHAE_NETS = {  # (dataset, kind) -> (encoder, decoder class names), input shape, latent dim
    ("mnist", "resnet"): ("Encoder_ResNet_VAE_MNIST", "Decoder_ResNet_AE_MNIST", (1, 28, 28), 16),
    ("mnist", "conv"): ("Encoder_Conv_VAE_MNIST", "Decoder_Conv_AE_MNIST", (1, 28, 28), 16),
    ("cifar", "resnet"): ("Encoder_ResNet_VAE_CIFAR", "Decoder_ResNet_AE_CIFAR", (3, 32, 32), 32),
    ("cifar", "conv"): ("Encoder_Conv_VAE_CIFAR", "Decoder_Conv_AE_CIFAR", (3, 32, 32), 32),
    ("celeba", "resnet"): (
        "Encoder_ResNet_VAE_CELEBA", "Decoder_ResNet_AE_CELEBA", (3, 64, 64), 64
    ),
    ("celeba", "conv"): ("Encoder_Conv_VAE_CELEBA", "Decoder_Conv_AE_CELEBA", (3, 64, 64), 64),
}  # fmt: skip


class _PythaeEncoder(nn.Module):
    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, x):
        out = self.encoder(x)
        return out.embedding, out.log_covariance


class _PythaeDecoder(nn.Module):
    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, z):
        return self.decoder(z)["reconstruction"]


def pythae_model(dataset: str | None, kind: str, shape: Shape | None = None):
    """pythae VAE: benchmark nets for (dataset, kind), or its default MLP nets (kind="mlp")."""
    require("pythae")
    from pythae.models import VAE, VAEConfig

    if kind == "mlp":
        shape = shape or (1, 28, 28)
        cfg = VAEConfig(input_dim=shape, latent_dim=16)
        return VAE(cfg), shape, 16
    import importlib

    enc_name, dec_name, shape, latent = PYTHAE_NETS[(dataset, kind)]
    nets = importlib.import_module(f"pythae.models.nn.benchmarks.{dataset}")
    cfg = VAEConfig(input_dim=shape, latent_dim=latent)
    model = VAE(cfg, encoder=getattr(nets, enc_name)(cfg), decoder=getattr(nets, dec_name)(cfg))
    return model, shape, latent


def pythae_contender(name: str, dataset: str | None, kind: str, shape=None) -> Contender:
    model, shape, latent = pythae_model(dataset, kind, shape)

    def loss(m, x, step):
        return m({"data": x}).loss

    def eval_vae():
        return vk.VAE(
            encoder=_PythaeEncoder(model.encoder),
            decoder=_PythaeDecoder(model.decoder),
            latent_shape=(latent,),
        )

    nets = "default MLP nets" if kind == "mlp" else f"{dataset.upper()} benchmark {kind} nets"
    return Contender(
        name=name,
        peer="pythae",
        model=model,
        input_shape=shape,
        loss=loss,
        make_optimizer=lambda m: torch.optim.Adam(m.parameters(), lr=1e-4),
        eval_vae=eval_vae,
        to_input=lambda x: crop_to(x, shape[-1]),
        # 0.5·SSE + KL is the Gaussian (σ = 1) negative ELBO up to the constant D/2·log 2π
        likelihood={"likelihood": "gaussian", "sigma": 1.0},
        notes=f"pythae VAE, {nets}, latent {latent}, mse loss, Adam 1e-4",
        extra={"dataset": dataset, "kind": kind},
    )


# -- diffusers ---------------------------------------------------------------------------------
def diffusers_model(in_channels: int, size: int, blocks: tuple[int, ...], layers: int = 1):
    require("diffusers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=in_channels,
        out_channels=in_channels,
        down_block_types=("DownEncoderBlock2D",) * len(blocks),
        up_block_types=("UpDecoderBlock2D",) * len(blocks),
        block_out_channels=blocks,
        layers_per_block=layers,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=size,
    )


class _DiffusersEncoder(nn.Module):
    def __init__(self, ae: nn.Module):
        super().__init__()
        self.ae = ae

    def forward(self, x):
        dist = self.ae.encode(x * 2 - 1).latent_dist
        return dist.mean, dist.logvar


class _DiffusersDecoder(nn.Module):
    def __init__(self, ae: nn.Module):
        super().__init__()
        self.ae = ae

    def forward(self, z):
        return ((self.ae.decode(z).sample + 1) / 2).clamp(0, 1)


LDM_KL_WEIGHT = 1e-6


def diffusers_contender(
    name: str, shape: Shape, blocks: tuple[int, ...], layers: int = 1, batch_size: int = 64
) -> Contender:
    ae = diffusers_model(shape[0], shape[-1], blocks, layers)

    def loss(m, x, step):
        # LDM: rec loss summed over pixels / batch, KL summed over latents / batch
        post = m.encode(x).latent_dist
        rec = m.decode(post.sample()).sample
        b = x.shape[0]
        return (rec - x).abs().sum() / b + LDM_KL_WEIGHT * post.kl().sum() / b

    latent = (4, shape[1] // 2 ** (len(blocks) - 1), shape[2] // 2 ** (len(blocks) - 1))
    return Contender(
        name=name,
        peer="diffusers",
        model=ae,
        input_shape=shape,
        loss=loss,
        make_optimizer=lambda m: torch.optim.Adam(
            m.parameters(), lr=4.5e-6 * batch_size, betas=(0.5, 0.9)
        ),
        eval_vae=lambda: vk.VAE(
            encoder=_DiffusersEncoder(ae), decoder=_DiffusersDecoder(ae), latent_shape=latent
        ),
        to_input=lambda x: x * 2 - 1,
        notes=f"AutoencoderKL blocks {blocks}, {layers} layer(s)/block, latent {latent}, "
        "L1 + 1e-6 KL, Adam(0.5, 0.9)",
    )


# -- vanilla reference (written here, the common tutorial VAE) -----------------------------------
class VanillaVAE(nn.Module):
    """Stride-2 conv encoder, ConvTranspose decoder (PyTorch-VAE's VanillaVAE layout)."""

    def __init__(
        self, in_channels: int = 1, size: int = 32, latent_dim: int = 128,
        hidden: tuple[int, ...] = (32, 64, 128, 256),
    ) -> None:  # fmt: skip
        super().__init__()
        layers, c = [], in_channels
        for h in hidden:
            layers += [nn.Conv2d(c, h, 3, 2, 1), nn.BatchNorm2d(h), nn.LeakyReLU()]
            c = h
        self.encoder = nn.Sequential(*layers)
        self.bottom = size // 2 ** len(hidden)
        flat = hidden[-1] * self.bottom**2
        self.fc_mu, self.fc_var = nn.Linear(flat, latent_dim), nn.Linear(flat, latent_dim)
        self.decoder_input = nn.Linear(latent_dim, flat)
        rev, layers = hidden[::-1], []
        for a, b in itertools.pairwise(rev):
            layers += [nn.ConvTranspose2d(a, b, 3, 2, 1, output_padding=1), nn.BatchNorm2d(b)]
            layers += [nn.LeakyReLU()]
        h0 = hidden[0]
        layers += [nn.ConvTranspose2d(h0, h0, 3, 2, 1, output_padding=1), nn.BatchNorm2d(h0)]
        layers += [nn.LeakyReLU(), nn.Conv2d(h0, in_channels, 3, padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*layers)
        self.hidden, self.latent_dim = hidden, latent_dim

    def encode(self, x):
        h = self.encoder(x).flatten(1)
        return self.fc_mu(h), self.fc_var(h)

    def decode(self, z):
        h = self.decoder_input(z).view(-1, self.hidden[-1], self.bottom, self.bottom)
        return self.decoder(h)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar


class _Call(nn.Module):
    def __init__(self, model: nn.Module, method: str):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, x):
        return getattr(self.model, self.method)(x)


VANILLA_KLD_WEIGHT = 0.00025


def vanilla_contender(
    name: str, shape: Shape, hidden=(32, 64, 128, 256), latent_dim: int = 128
) -> Contender:
    model = VanillaVAE(shape[0], shape[-1], latent_dim, hidden)

    def loss(m, x, step):
        recon, mu, logvar = m(x)
        kld = torch.mean(-0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=1))
        return F.mse_loss(recon, x) + VANILLA_KLD_WEIGHT * kld

    return Contender(
        name=name,
        peer=None,
        model=model,
        input_shape=shape,
        loss=loss,
        make_optimizer=lambda m: torch.optim.Adam(m.parameters(), lr=5e-3),
        eval_vae=lambda: vk.VAE(
            encoder=_Call(model, "encode"),
            decoder=_Call(model, "decode"),
            latent_shape=(latent_dim,),
        ),
        lr_per_epoch=0.95,
        notes=f"conv {hidden} + ConvTranspose, latent {latent_dim}, MSE + 0.00025 KL, Adam 5e-3",
    )


# -- peers of a preset, for the speed part ---------------------------------------------------------
DIFFUSERS_MENU = [
    ((32, 64), 1), ((32, 64, 128), 1), ((64, 128, 256), 1), ((64, 128, 256, 256), 1),
    ((64, 128, 256, 256), 2), ((128, 256, 512), 1), ((128, 256, 512, 512), 1),
    ((128, 256, 512, 512), 2),
]  # fmt: skip
VANILLA_MENU = [
    ((32, 64, 128, 256), 128), ((32, 64, 128, 256, 512), 128), ((64, 128, 256, 512), 256),
    ((128, 256, 512, 1024), 256),
]  # fmt: skip


def _count(build: Callable[[], nn.Module]) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build().parameters())


def peer_candidates(shape: Shape) -> list[tuple[str, str | None, Callable[[], Contender]]]:
    """(label, peer package, builder) of every peer model that takes images of ``shape``."""
    c, h, _ = shape
    out: list[tuple[str, str | None, Callable[[], Contender]]] = []
    for dataset, (cc, hh) in {"mnist": (1, 32), "cifar": (3, 32), "celeba": (3, 64)}.items():
        if (cc, hh) == (c, h):  # pythae's MNIST nets eat the same data at its native 28 px
            for kind in ("resnet", "conv"):
                label = f"pythae VAE {dataset} {kind}"
                out.append(
                    (label, "pythae", lambda d=dataset, k=kind, n=label: pythae_contender(n, d, k))
                )
    if c == 1 and h == 32:
        out.append(("pythae VAE default MLP", "pythae",
                    lambda: pythae_contender("pythae VAE default MLP", None, "mlp")))  # fmt: skip
    for blocks, layers in DIFFUSERS_MENU:
        if h % 2 ** (len(blocks) - 1) == 0 and h // 2 ** (len(blocks) - 1) >= 4:
            label = f"diffusers AutoencoderKL {blocks}x{layers}"
            out.append((label, "diffusers",
                        lambda b=blocks, ly=layers, n=label: diffusers_contender(n, shape, b, ly)))  # fmt: skip
    for hidden, latent in VANILLA_MENU:
        if h % 2 ** len(hidden) == 0:
            label = f"vanilla VAE {hidden} z{latent}"
            out.append((label, None,
                        lambda hd=hidden, z=latent, n=label: vanilla_contender(n, shape, hd, z)))  # fmt: skip
    return out


def nearest_peer(
    shape: Shape, params: int, available: Callable[[str], bool]
) -> tuple[str, str | None, Callable[[], Contender], int] | None:
    """The peer model of ``shape`` whose parameter count is nearest (in ratio) to ``params``."""
    best = None
    for label, peer, build in peer_candidates(shape):
        if peer is not None and not available(peer):
            continue
        n = _count(lambda b=build: b().model)
        score = abs(math.log(n / params))
        if best is None or score < best[0]:
            best = (score, label, peer, build, n)
    return None if best is None else best[1:]
