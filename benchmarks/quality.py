"""Quality at equal budget: every system trains on the same data with the same seed until it
has seen a fixed number of images *and* until a fixed wall-clock time has passed; the weights
at each of the two budgets are scored on the Fashion-MNIST test images.

Metrics (all computed by vaekit's own metric functions on every system, through an adapter):

- PSNR and SSIM of reconstructions (decoder of the posterior mean) on the 28x28 image content;
- test -ELBO (nats per image, one posterior sample) where the training loss is an ELBO, in
  the system's own likelihood (so only same-likelihood rows compare);
- active units (Burda et al. 2016: ``Var_x E_q[z_i|x] > 0.01``);
- Fréchet distance (FD) in the 128-d feature space of a small Fashion-MNIST classifier
  (``vk.metrics.ClassifierFeatures``, trained once and cached), for reconstructions and for as
  many prior samples ``z ~ N(0, I)`` (temperature 1) as test images. The classifier's test
  accuracy and FD(train, test) — the floor a perfect model would reach — are reported with it.

Images are compared on their 28x28 content: the 2-px zero border that ``pad_to=32`` adds is
cropped for PSNR/SSIM and re-zeroed before the classifier, so no system gains or loses on a
border it never had to model (pythae's MNIST nets take 28x28).
"""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from dataclasses import dataclass, field

import torch
from common import CACHE, PeerUnavailable, crop28, fashion_mnist, pad32, peer_status
from peers import (
    Contender,
    crop_to,
    diffusers_contender,
    fmnist_spatial_config,
    pythae_contender,
    vaekit_contender,
    vanilla_contender,
)
from report import BUDGETS, targets

import vaekit as vk

# name -> (builder, description, peer package or None, latent kind)
SYSTEMS = {
    "vaekit-fmnist32": (
        lambda: vaekit_contender("vaekit-fmnist32", vk.presets.config("fmnist32"), "bce-beta0.8"),
        "vaekit `fmnist32` preset, quickstart recipe (Bernoulli, β 0.8, AdamW 2e-3)",
        None,
        "flat",
    ),
    "vaekit-fmnist32-small": (
        lambda: vaekit_contender(
            "vaekit-fmnist32-small",
            vk.presets.config("fmnist32", widths=(16, 32, 64), depth=0),
            "bce-beta1",
        ),
        "vaekit `fmnist32` with widths (16, 32, 64), depth 0: a fifth of the FLOPs "
        "(Bernoulli, β 1, AdamW 2e-3)",
        None,
        "flat",
    ),
    "vaekit-fmnist32-mid": (
        lambda: vaekit_contender(
            "vaekit-fmnist32-mid",
            vk.presets.config("fmnist32", widths=(24, 48, 96), depth=0),
            "bce-beta1",
        ),
        "vaekit `fmnist32` with widths (24, 48, 96), depth 0: between the two above "
        "(Bernoulli, β 1, AdamW 2e-3)",
        None,
        "flat",
    ),
    "vaekit-fmnist32-small-lr": (
        lambda: vaekit_contender(
            "vaekit-fmnist32-small-lr",
            vk.presets.config("fmnist32", widths=(16, 32, 64), depth=0),
            "bce-beta1-lr5e-3",
        ),
        "`vaekit-fmnist32-small` with the vanilla reference's step size "
        "(Bernoulli, β 1, AdamW 5e-3, ×0.95 per epoch)",
        None,
        "flat",
    ),
    "vaekit-spatial": (
        lambda: vaekit_contender("vaekit-spatial", fmnist_spatial_config(), "l1-ssim-spatial"),
        "vaekit xray-spatial family at 32 px, latent 4×8×8 (L1 + 0.2 SSIM, β 0.05)",
        None,
        "spatial",
    ),
    "pythae-resnet": (
        lambda: pythae_contender("pythae-resnet", "mnist", "resnet"),
        "pythae VAE, MNIST benchmark ResNet nets, its BaseTrainer at defaults",
        "pythae",
        "flat",
    ),
    "pythae-conv": (
        lambda: pythae_contender("pythae-conv", "mnist", "conv"),
        "pythae VAE, MNIST benchmark conv nets, its BaseTrainer at defaults",
        "pythae",
        "flat",
    ),
    "pythae-mlp": (
        lambda: pythae_contender("pythae-mlp", None, "mlp"),
        "pythae VAE, its default (MLP) nets, its BaseTrainer at defaults",
        "pythae",
        "flat",
    ),
    "diffusers-kl": (
        lambda: diffusers_contender("diffusers-kl", (1, 32, 32), (32, 64, 64)),
        "diffusers AutoencoderKL (32, 64, 64), latent 4×8×8, L1 + 1e-6 KL (LDM)",
        "diffusers",
        "spatial",
    ),
    "vanilla": (
        lambda: vanilla_contender("vanilla", (1, 32, 32)),
        "reference conv VAE (ConvTranspose decoder, MSE + 0.00025 KL), in the benchmark",
        None,
        "flat",
    ),
}


@dataclass
class Budget:
    images: int
    seconds: float | None  # None: the images budget only (the sharpness part's levers)
    max_seconds: float  # give up on the images budget after this long
    batch_size: int = 64

    @property
    def names(self) -> tuple[str, ...]:
        """The budgets this run stops at: ``("images", "time")`` or ``("images",)``."""
        return BUDGETS if self.seconds is not None else ("images",)


# -- classifier for the Fréchet distance ---------------------------------------------------------
def classifier(train_limit: int | None, epochs: int, seed: int = 0):
    """The FD feature extractor, fitted once on the training images and cached."""
    n = train_limit or 60_000
    path = CACHE / f"fmnist32-classifier-n{n}-e{epochs}-s{seed}.safetensors"
    if path.is_file():
        try:
            return vk.metrics.ClassifierFeatures.load(path), True
        except ValueError:
            path.unlink()
    x, y = fashion_mnist("train", limit=train_limit)
    clf = vk.metrics.ClassifierFeatures.fit(
        x, y, num_classes=10, epochs=epochs, batch_size=128, seed=seed
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    clf.save(path)
    return clf, False


@dataclass
class Scoring:
    """What every part that scores models on the test images shares: the data, the FD
    classifier, the test images' features and the classifier's row of the results."""

    clf: vk.metrics.ClassifierFeatures
    x_train: torch.Tensor
    x_test: torch.Tensor
    device: torch.device
    real: torch.Tensor | None = None  # classifier features of x_test
    classifier: dict = field(default_factory=dict)  # accuracy, images, epochs, floor FD

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return vk.metrics.extract_features(self.clf, images.to(self.device), batch_size=500)

    def fd(self, images: torch.Tensor) -> float:
        """FD of ``images`` (32x32, zero border) against the test images."""
        return vk.metrics.fid(self.real, self.features(images))


def scoring(args, device, log, part: str) -> Scoring:
    """Load the data and the (cached) FD classifier of a run: :class:`Scoring`."""
    clf_limit = None if args.classifier_images >= 60_000 else args.classifier_images
    clf_epochs = 1 if args.quick else 2
    t = time.perf_counter()
    clf, cached = classifier(clf_limit, clf_epochs, args.seed)
    clf = clf.to(device)
    log(f"[{part}] classifier {'loaded from cache' if cached else 'trained'} "
        f"({time.perf_counter() - t:.1f} s)")  # fmt: skip
    x_train, _ = fashion_mnist("train", limit=args.train_images)
    x_test, y_test = fashion_mnist("test", limit=args.test_images)
    sc = Scoring(clf, x_train, x_test, device)
    sc.real = sc.features(x_test)
    sc.classifier = {
        "accuracy": clf.accuracy(x_test.to(device), y_test.to(device)),
        "train_images": clf_limit or 60_000,
        "epochs": clf_epochs,
        "fd_train_test": vk.metrics.fid(sc.features(x_train[: len(x_test)]), sc.real),
    }
    return sc


# -- training ------------------------------------------------------------------------------------
def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class _Budgets:
    """Watches a run and keeps the weights at each budget; the clock pauses while copying."""

    def __init__(self, model, budget: Budget):
        self.model, self.budget = model, budget
        self.snapshots: dict[str, dict] = {}
        self.at: dict[str, dict] = {}
        self.images = self.steps = 0
        self.paused = 0.0
        self.t0 = time.perf_counter()
        self.stopped: str | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0 - self.paused

    def _take(self, which: str) -> None:
        t = time.perf_counter()
        self.snapshots[which] = _snapshot(self.model)
        self.at[which] = {
            "images": self.images, "steps": self.steps, "seconds": round(self.elapsed(), 2)
        }  # fmt: skip
        self.paused += time.perf_counter() - t

    def after_step(self, batch: int) -> bool:
        """Count a step; True when training should stop."""
        self.images += batch
        self.steps += 1
        if "images" not in self.snapshots and self.images >= self.budget.images:
            self._take("images")
        timed = self.budget.seconds is not None
        if timed and "time" not in self.snapshots and self.elapsed() >= self.budget.seconds:
            self._take("time")
        if len(self.snapshots) == len(self.budget.names):
            return True
        if self.elapsed() >= self.budget.max_seconds:
            self.stopped = (
                f"images budget not reached: stopped after {self.images} images, "
                f"{self.elapsed():.0f} s"
            )
            return True
        return False


def training_step(c: Contender, device):
    """``(model, optimizer, step)`` for the contender on ``device``: ``step(x, i)`` is one
    training step on batch ``x`` at step index ``i`` (forward, loss, backward, clipping, the
    optimiser; then ``c.second_step``, a discriminator's, unless ``second=False``) and returns
    the loss. A non-finite loss is returned before any update. Shared by the training loop and
    the sharpness part's step timing."""
    model = c.model.to(device).train()
    for m in c.companions:
        m.to(device).train()
    opt = c.make_optimizer(model)

    def step(x: torch.Tensor, i: int, *, second: bool = True) -> torch.Tensor:
        loss = c.loss(model, x, i)
        if not torch.isfinite(loss):
            return loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if c.clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), c.clip_grad)
        opt.step()
        if second and c.second_step is not None:
            c.second_step(i)
        return loss

    return model, opt, step


def train_own_loop(c: Contender, x_train: torch.Tensor, budget: Budget, seed: int, device):
    """The loop every system without its own trainer gets: same order of batches for all."""
    model, opt, train_step = training_step(c, device)
    gen = torch.Generator().manual_seed(seed)
    watch = _Budgets(model, budget)
    n, bs = len(x_train), budget.batch_size
    perm, pos, step = torch.randperm(n, generator=gen), 0, 0
    while True:
        if pos + bs > n:
            perm, pos = torch.randperm(n, generator=gen), 0
            if c.lr_per_epoch:
                for g in opt.param_groups:
                    g["lr"] *= c.lr_per_epoch
        x = c.to_input(x_train[perm[pos : pos + bs]].to(device))
        pos += bs
        loss = train_step(x, step)
        if not torch.isfinite(loss):
            watch.stopped = f"diverged: loss {float(loss)} at step {step}"
            break
        step += 1
        if watch.after_step(bs):
            break
    return watch


class _StopTraining(Exception):
    pass


def train_pythae(c: Contender, x_train: torch.Tensor, budget: Budget, seed: int, device):
    """pythae's own BaseTrainer at its defaults (Adam 1e-4, batch 64), our seed, stopped by a
    callback at the budgets."""
    import logging

    from pythae.data.datasets import BaseDataset
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback

    for name in [n for n in logging.root.manager.loggerDict if n.startswith("pythae")]:
        logging.getLogger(name).setLevel(logging.WARNING)  # its INFO banner on stdout
    x = c.to_input(x_train)
    dataset = BaseDataset(x, torch.zeros(len(x)))
    n, bs = len(x), budget.batch_size
    holder: dict = {}

    class Watch(TrainingCallback):
        def on_epoch_begin(self, training_config, **kwargs):
            holder["pos"] = 0

        def on_train_step_end(self, training_config, **kwargs):
            size = min(bs, n - holder["pos"])
            holder["pos"] += size
            if holder["watch"].after_step(size):
                raise _StopTraining

    with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = BaseTrainerConfig(
            output_dir=out, seed=seed, per_device_train_batch_size=bs,
            no_cuda=device.type != "cuda",
        )  # fmt: skip
        trainer = BaseTrainer(c.model, train_dataset=dataset, training_config=cfg,
                              callbacks=[Watch()])  # fmt: skip
        holder["watch"] = watch = _Budgets(trainer.model, budget)
        try:
            trainer.train()
            for which in budget.names:  # ran out of epochs first (not at realistic budgets)
                if which not in watch.snapshots:
                    watch._take(which)
        except _StopTraining:
            pass
        except ArithmeticError as err:  # pythae's "NaN detected in train loss"
            watch.stopped = f"diverged: {err}"
    c.model = trainer.model
    return watch


# systems whose trained weights are kept for a later part (the priors part); filled by run.py
KEEP: set[str] = set()
_TRAINED: dict[str, tuple[Contender, _Budgets]] = {}


def train_system(
    name: str, x_train: torch.Tensor, budget: Budget, seed: int, device, log, systems=None
):
    """Build and train the system ``name`` of ``systems`` (default :data:`SYSTEMS`) to the
    budgets: ``(contender, watch)``.

    Systems in :data:`KEEP` are trained once per process: a second call (the priors or
    sharpness part after the quality part) gets the same weights back. Raises
    ``PeerUnavailable``.
    """
    if name in _TRAINED:
        log(f"[train] {name}: the weights trained earlier in this run")
        return _TRAINED[name]
    builder = (systems or SYSTEMS)[name][0]
    torch.manual_seed(seed)
    c = builder()
    log(f"[train] {name}: {c.params / 1e6:.2f} M params, training ...")
    trainer = train_pythae if c.peer == "pythae" else train_own_loop
    watch = trainer(c, x_train, budget, seed, device)
    if name in KEEP:
        _TRAINED[name] = (c, watch)
    return c, watch


def train_or_skip(
    name: str, section: dict, x_train, budget: Budget, seed: int, device, log, part, systems=None
):
    """Record system ``name``'s row in ``section["systems"]`` (description, peer, latent) and
    train it: ``(row, contender, watch)``, or ``None`` when its peer is missing (then
    ``row["unavailable"]`` says why). ``systems``: a table shaped like :data:`SYSTEMS` (its
    default). Shared by the quality, priors and sharpness parts."""
    systems = systems or SYSTEMS
    _, description, peer, latent = systems[name]
    row = {"description": description, "peer": peer, "latent": latent}
    section["systems"][name] = row
    if peer is not None and not peer_status(peer).available:
        row["unavailable"] = peer_status(peer).reason
        log(f"[{part}] {name}: {row['unavailable']}")
        return None
    try:
        c, watch = train_system(name, x_train, budget, seed, device, log, systems)
    except PeerUnavailable as err:
        row["unavailable"] = str(err)
        log(f"[{part}] {name}: {row['unavailable']}")
        return None
    return row, c, watch


# -- evaluation --------------------------------------------------------------------------------
@torch.no_grad()
def _batched(fn, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    return torch.cat([fn(x[i : i + batch]).float().cpu() for i in range(0, len(x), batch)])


@torch.no_grad()
def reconstructions(c: Contender, x_test: torch.Tensor, device) -> torch.Tensor:
    """Decoder of the posterior mean of every test image, 32x32 with a zero border, on CPU."""
    vae = c.eval_vae().to(device).eval()
    return pad32(_batched(vae.reconstruct, crop_to(x_test, c.input_shape[-1]).to(device)))


@torch.no_grad()
def evaluate(c: Contender, sc: Scoring, seed: int, recon: torch.Tensor | None = None) -> dict:
    """The quality table's numbers for the contender's current weights, on ``sc``'s test
    images and as many N(0, I) samples; ``recon``: its :func:`reconstructions` of them when
    the caller has them already."""
    x_test, device, n_samples = sc.x_test, sc.device, len(sc.x_test)
    vae = c.eval_vae().to(device).eval()
    size = c.input_shape[-1]
    x_in = crop_to(x_test, size).to(device)
    if recon is None:
        recon = reconstructions(c, x_test, device)
    gen = torch.Generator(device=device).manual_seed(seed)
    samples = torch.cat(
        [
            vae.sample(min(500, n_samples - i), generator=gen).float().cpu()
            for i in range(0, n_samples, 500)
        ]
    ).clamp(0, 1)
    samples = pad32(samples)
    out = {
        "psnr": float(vk.metrics.psnr(crop28(recon), crop28(x_test))),
        "ssim": float(vk.metrics.ssim(crop28(recon), crop28(x_test))),
        "fd_recon": sc.fd(recon),
        "fd_samples": sc.fd(samples),
        "active_units": int(vk.metrics.active_units(vae, x_in)),
        "latent_dims": int(math.prod(vae.latent_shape)),
        "neg_elbo": None,
        "likelihood": None,
    }
    if c.likelihood:
        g = torch.Generator(device=device).manual_seed(seed)
        nll = vk.metrics.elbo_nll(vae, x_in, k=1, generator=g, **c.likelihood)
        out["neg_elbo"] = float(nll)
        out["likelihood"] = (
            c.likelihood["likelihood"]
            + (f" σ={c.likelihood['sigma']}" if "sigma" in c.likelihood else "")
            + f", {size}×{size}"
        )
    return out


def run_quality(args, device, log) -> dict:
    """Train and score every requested system; returns the JSON section."""
    seed = args.seed
    sc = scoring(args, device, log, "quality")
    x_train, n_test = sc.x_train, len(sc.x_test)
    section = {
        "classifier": sc.classifier,
        "train_images": len(x_train),
        "test_images": n_test,
        "prior_samples": n_test,
        "budget": {
            "images": args.budget_images,
            "seconds": args.budget_seconds,
            "batch_size": 64,
            "seed": seed,
        },
        "systems": {},
    }
    budget = Budget(args.budget_images, args.budget_seconds, args.max_train_seconds)
    for name in args.systems:
        trained = train_or_skip(name, section, x_train, budget, seed, device, log, "quality")
        if trained is None:
            continue
        row, c, watch = trained
        peer = row["peer"]
        row.update(
            params=c.params, notes=c.notes, version=peer_status(peer).version if peer else None
        )
        row["stopped"] = watch.stopped
        row["at"] = watch.at
        row["images_per_second"] = round(watch.images / max(watch.elapsed(), 1e-9), 1)
        row["results"] = {}
        for which, state in watch.snapshots.items():
            c.model.load_state_dict(state)
            t = time.perf_counter()
            row["results"][which] = evaluate(c, sc, seed)
            log(f"[quality] {name} @ {which} budget {watch.at[which]}: "
                + ", ".join(f"{k} {v:.4g}" for k, v in row["results"][which].items()
                            if isinstance(v, float))
                + f" (eval {time.perf_counter() - t:.0f} s)")  # fmt: skip
        del c, watch
    section["targets"] = targets(section["systems"])
    return section
