"""Write the example notebooks from the cell sources below (the single source of truth).

    python examples/notebooks/_build.py          # (re)write the .ipynb files
    python examples/notebooks/_build.py --check  # exit 1 if a committed notebook differs

The notebooks are stored without outputs, with deterministic cell ids, so diffs stay small
and ``tests/test_notebooks.py`` can check that the committed files match this script. Edit
the cells here, not in Jupyter, then rerun the script (and ``ruff format examples/notebooks``,
which must leave the files unchanged).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def _join(parts: tuple[str, ...], sep: str) -> str:
    return sep.join(textwrap.dedent(part).strip("\n") for part in parts)


def md(*parts: str) -> tuple[str, str, list[str]]:
    """A markdown cell; each part is dedented on its own, parts are joined by a blank line."""
    return ("markdown", _join(parts, "\n\n"), [])


def code(*parts: str, tags: tuple[str, ...] = ()) -> tuple[str, str, list[str]]:
    """A code cell; parts are joined by two blank lines (PEP 8 around top-level defs)."""
    return ("code", _join(parts, "\n\n\n"), list(tags))


SETUP_DOC = """
    **Run size.** By default this notebook runs at its instructive size (a few minutes on a
    laptop CPU). With the environment variable `VAEKIT_NOTEBOOK_SMALL=1` it trains on a tiny
    subset for a few dozen steps; that is how the test suite runs it, in well under a minute.
    The pictures are then much rougher, and the text is written to hold for both sizes: where
    it says what to look for, check it against the numbers your run printed.
"""

SHOW = r'''
def show(grid, title=None, zoom=2.5):
    """Draw a vk.viz grid, a (C, H, W) tensor in [0, 1], at `zoom` screen pixels per pixel."""
    _, h, w = grid.shape
    _, ax = plt.subplots(figsize=(zoom * w / 100, zoom * h / 100 + 0.3), dpi=100)
    image = grid.permute(1, 2, 0).squeeze(-1)  # (H, W) for grey, (H, W, 3) for colour
    ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    plt.show()
'''

# -- 01 ---------------------------------------------------------------------------------------
QUICKSTART = [
    md(
        """
        # Quickstart: a VAE on Fashion-MNIST in your own training loop

        This notebook trains vaekit's `fmnist32` preset on Fashion-MNIST with a short, ordinary
        PyTorch loop, then looks at what the model learned: reconstructions, samples at several
        temperatures, interpolations, and a few numbers (PSNR, the ELBO and the IWAE bound,
        bits per dimension).

        vaekit gives you parts (a model, a loss, schedules, metrics, pictures); the loop stays
        yours. Everything here runs on a CPU.
        """,
        SETUP_DOC,
    ),
    code(
        r"""
        %matplotlib inline
        import json
        import os
        import time

        import matplotlib.pyplot as plt
        import torch

        import vaekit as vk

        SMALL = os.environ.get("VAEKIT_NOTEBOOK_SMALL") == "1"
        STEPS = 20 if SMALL else 500  # optimiser steps
        BATCH = 16 if SMALL else 64
        N_TRAIN = 2_000 if SMALL else 60_000  # training images the batches are drawn from
        N_TEST = 100 if SMALL else 1_000  # held-out images for the numbers at the end
        N_NLL, IWAE_K = (50, 8) if SMALL else (500, 32)  # images and samples for the IWAE bound
        torch.manual_seed(0)
        print(f"{'small' if SMALL else 'full'} run: {STEPS} steps of {BATCH} images")
        """,
        SHOW,
    ),
    md(
        """
        ## Data

        `vk.data.load_fashion_mnist` reads the four IDX files that the Debian package
        `dataset-fashion-mnist` installs under `/usr/share/datasets/fashion-mnist/` (or a
        folder given as `root=` or in `$VAEKIT_FASHION_MNIST`). It returns float images in
        [0, 1], zero-padded from 28×28 to 32×32 for the `fmnist32` preset, and integer labels.
        If the files are missing it raises a `FileNotFoundError` that says how to install them.
        The notebook deliberately does not fall back to random data: a VAE trained on noise
        would teach nothing.
        """
    ),
    code(
        """
        x_train, _ = vk.data.load_fashion_mnist("train", limit=N_TRAIN)
        x_test, y_test = vk.data.load_fashion_mnist("test", limit=N_TEST)
        print(tuple(x_train.shape), x_train.dtype, f"values in [{x_train.min()}, {x_train.max()}]")
        print([vk.data.FASHION_MNIST_CLASSES[int(i)] for i in y_test[:8]])
        show(vk.viz.make_grid(x_test[:16], nrow=8), "test images")
        """
    ),
    md(
        """
        ## The model

        `vk.presets.build("fmnist32")` returns a plain `vk.VAE` built from a `vk.VAEConfig`: a
        small convolutional encoder and decoder (widths 32 and 64, BatchNorm, LeakyReLU), a
        flat 32-dimensional latent and a sigmoid output, so reconstructions lie in [0, 1]. The
        decoder upsamples by interpolation followed by a convolution, never `ConvTranspose2d`,
        so there are no checkerboard artifacts. The mean and log-variance heads start near
        zero: q(z|x) ≈ N(0, I) at step 0, and `exp(logvar)` cannot overflow.

        The model and the training images go into `channels_last` memory layout: the same
        numbers, faster convolutions on CPU.
        """
    ),
    code(
        """
        vae = vk.presets.build("fmnist32")
        print(vae.config)
        n_params = sum(p.numel() for p in vae.parameters())
        print(f"{n_params / 1e6:.2f} M parameters, latent shape {vae.latent_shape}")
        vae = vae.to(memory_format=torch.channels_last)
        x_train = x_train.contiguous(memory_format=torch.channels_last)
        """
    ),
    md(
        """
        ## The loss and two schedules

        `vk.losses.VAELoss` adds a reconstruction loss and the KL divergence on one honest
        scale. The reconstruction loss here is `bce`, a Bernoulli likelihood, averaged per
        pixel; `VAELoss` divides the KL (nats per image) by the number of pixels
        D = 1·32·32 = 1024, so

            total = BCE per pixel + β · KL / D.

        With β = 1 this is exactly the negative ELBO per pixel, whatever the image size.
        β = 0.8, the `fmnist32` recipe, weighs the KL a little less for crisper
        reconstructions.

        `vk.schedules` objects are pure functions of the step (nothing to save when you resume):

        - β warms up linearly from 0 to 0.8 over the first quarter of training (KL warm-up,
          Bowman et al. 2016), so the encoder starts using the latent before the KL pulls on it;
        - the learning rate follows a cosine from 2e-3 down to 2e-4. A schedule is just a
          number per step; nothing ties it to β.
        """
    ),
    code(
        """
        beta = vk.schedules.Linear(0.0, 0.8, steps=STEPS // 4)
        lr = vk.schedules.Cosine(2e-3, 2e-4, steps=STEPS)
        loss_fn = vk.losses.VAELoss(recon=vk.losses.build("bce"), kl=vk.losses.KL(), beta=beta)
        opt = torch.optim.AdamW(vae.parameters(), lr=lr(0), weight_decay=1e-4)
        print(beta, lr, sep="\\n")
        print("beta at 0, 1/8, 1/4 and the end:", [beta(s) for s in (0, STEPS // 8, STEPS // 4, STEPS)])
        """
    ),
    md(
        """
        ## The training loop

        Draw a random batch, run the model, compute the loss, step. `loss_fn(out, x, step=step)`
        returns a `LossOutput`: `total` to backpropagate, `terms` (every part, detached, for
        logging: `bce`, `recon`, `kl`, `kl_raw`) and the `beta` it used at this step.
        """
    ),
    code(
        """
        gen = torch.Generator().manual_seed(0)
        D = x_train[0].numel()
        history = []
        vae.train()
        t0 = time.perf_counter()
        for step in range(STEPS):
            for group in opt.param_groups:
                group["lr"] = lr(step)
            x = x_train[torch.randint(len(x_train), (BATCH,), generator=gen)]
            res = loss_fn(vae(x), x, step=step)
            opt.zero_grad(set_to_none=True)
            res.total.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 5.0)
            opt.step()
            if step % max(1, STEPS // 50) == 0 or step == STEPS - 1:
                row = {"step": step, "total": res.total.item(), "bce": res.terms["bce"].item()}
                row.update({"kl / D": res.terms["kl"].item() / D, "beta": res.beta})
                history.append(row)
            if step % max(1, STEPS // 5) == 0 or step == STEPS - 1:
                kl_nats = res.terms["kl"].item()
                print(f"step {step:4d}  total {res.total.item():.4f}  KL {kl_nats:6.2f} nats")
        train_seconds = time.perf_counter() - t0
        print(f"{STEPS} steps in {train_seconds:.0f} s ({1000 * train_seconds / STEPS:.0f} ms per step)")
        """
    ),
    md(
        """
        `vk.viz.plot_history` draws the loss terms on the left axis (log scale) and β (dashed)
        on the right. The KL starts near 0, because the posterior starts at the prior. While β
        is still small it typically shoots up, as the encoder puts information about each
        image into z; as β rises, the KL is squeezed back to what the reconstructions are
        worth. The BCE falls quickly at first, then slowly. In a short run the curves are
        noisy and still moving.
        """
    ),
    code(
        """
        vk.viz.plot_history(history, log_scale=True, title="training")
        plt.show()
        """
    ),
    md(
        """
        ## Reconstructions

        `vae.reconstruct(x)` decodes the posterior mean. In the grid, odd rows are test images
        and the row below each holds their reconstructions. Look for the right garment and
        silhouette with smoothed-away detail: prints, logos and knit texture vanish first. That
        is what a per-pixel likelihood through a 32-number bottleneck does; notebook 03 compares
        reconstruction losses that fight blur. After a short run, expect rough, blurry shapes.
        """
    ),
    code(
        """
        vae.eval()
        with torch.no_grad():
            x_hat = vae.reconstruct(x_test)
        show(vk.viz.reconstruction_grid(x_test[:16], x_hat[:16], nrow=8), "inputs and reconstructions")
        """
    ),
    md(
        """
        ## Samples at several temperatures

        `vk.viz.sample_grid` decodes z = t·ε with ε ~ N(0, I), one row per temperature t and
        the same ε in every column, so reading down a column shows what t does to one sample.
        t = 1 samples the model as trained; t < 1 stays nearer the centre of the prior and
        gives more typical, smoother images; t > 1 reaches into regions the decoder rarely saw.

        Samples usually look worse than reconstructions: the decoder learned the region of
        latent space the encoder uses, and prior samples also land outside it. If samples only
        look right well below t = 1, measure it with `vk.metrics.aggregate_posterior_gap`
        (notebook 02).
        """
    ),
    code(
        """
        temperatures = (0.5, 0.8, 1.0, 1.2)
        g = torch.Generator().manual_seed(1)
        grid = vk.viz.sample_grid(vae, n=10, temperatures=temperatures, generator=g)
        show(grid, f"prior samples, one row per temperature {temperatures}")
        """
    ),
    md(
        """
        ## Interpolations

        `vk.viz.interpolation_grid` encodes two images, walks between their posterior means
        (spherical interpolation by default, `method="linear"` for a straight line) and decodes
        each point; each row is framed by the two inputs. A gradual morph, without sudden jumps
        or unrecognisable images halfway, means the latent space is continuous between the two
        garments. After a short run the in-between images are blurry.
        """
    ),
    code(
        """
        show(vk.viz.interpolation_grid(vae, x_test[:4], x_test[4:8], steps=8), "interpolations")
        """
    ),
    md(
        """
        ## Numbers: PSNR, ELBO, IWAE, bits per dimension

        - **PSNR** of the reconstructions, in dB (higher is better): 10·log10(1 / MSE) for images
          in [0, 1], per image, then averaged. **SSIM** compares local structure (1 is perfect).
        - `vk.metrics.elbo_nll`: the negative ELBO in nats per image,
          E_q[−log p(x|z)] + KL(q(z|x) ‖ p(z)), an upper bound on the negative log-likelihood.
        - `vk.metrics.iwae_nll(k=K)`: the importance-weighted bound (Burda et al. 2016). It is
          at most the ELBO (in expectation) and approaches the true NLL as K grows; the gap
          between the two says how far q(z|x) is from the true posterior.
        - `vk.metrics.bits_per_dim`: NLL / (D · ln 2), per pixel and in bits, so it does not
          depend on the image size.

        An honest caveat: Fashion-MNIST is grey-level, and the Bernoulli "likelihood" of grey
        targets is a cross-entropy, not a normalised probability of the 256-level image. Use
        these values to compare your own runs with each other (same data, same 32×32 padding;
        the zero border is easy to predict and lowers per-pixel averages), not with published
        tables.
        """
    ),
    code(
        """
        g = torch.Generator().manual_seed(0)
        neg_elbo = vk.metrics.elbo_nll(vae, x_test[:N_NLL], generator=g).item()
        iwae = vk.metrics.iwae_nll(vae, x_test[:N_NLL], k=IWAE_K, generator=g).item()
        metrics = {
            "steps": STEPS,
            "train_seconds": round(train_seconds, 1),
            "test_psnr_db": vk.metrics.psnr(x_hat, x_test).item(),
            "test_ssim": vk.metrics.ssim(x_hat, x_test).item(),
            "neg_elbo_nats": neg_elbo,
            "iwae_nll_nats": iwae,
            "iwae_k": IWAE_K,
            "bits_per_dim": vk.metrics.bits_per_dim(iwae, D),
            "kl_nats": vk.metrics.kl_per_dim(vae, x_test).sum().item(),
            "active_units": vk.metrics.active_units(vae, x_test),
        }
        print(json.dumps(metrics, indent=2))
        print(f"IWAE-{IWAE_K} is {neg_elbo - iwae:.1f} nats below the ELBO bound")
        """,
        tags=("metrics",),
    ),
    md(
        """
        ## Save, load, and where to go next

        `vae.save(path)` writes one safetensors file holding the weights and the config as JSON
        (no pickled code); `vk.VAE.load(path)` rebuilds the model from it.
        """
    ),
    code(
        """
        vae.save("fmnist32-quickstart.safetensors")
        again = vk.VAE.load("fmnist32-quickstart.safetensors").eval()
        with torch.no_grad():
            same = torch.allclose(again.reconstruct(x_test[:8]), x_hat[:8], atol=1e-5)
        print("reloaded model gives the same reconstructions:", same)
        """
    ),
    md(
        """
        Next:

        - `02-diagnosing-collapse-and-ghosting.ipynb`: what goes wrong when β is far too large
          or about zero, and which metric tells you.
        - `03-choosing-a-reconstruction-loss.ipynb`: L1, SSIM, FFT and perceptual terms against
          blur.
        - `examples/train.py` is the full trainer (validation, checkpoints, resuming, DDP);
          `bash scripts/quickstart.sh` runs it on the `fmnist32` recipe.
        """
    ),
]

# -- 02 ---------------------------------------------------------------------------------------
COLLAPSE = [
    md(
        """
        # Diagnosing posterior collapse and ghosting

        Two failures turn up again and again when training VAEs:

        - **Posterior collapse**: the KL term wins, q(z|x) equals the prior for every image,
          the decoder ignores z, and every reconstruction and sample is the same average image.
        - **Ghosting**: the KL term is (almost) switched off; reconstructions are good but
          samples from N(0, I) are faint smudges, because prior samples land where the decoder
          was never trained.

        We produce both on purpose, next to a healthy run, read them with `vk.metrics`, and
        then try the standard fixes: free bits for collapse; sampling from a distribution
        fitted to the latents, or training with an honest β, for ghosting.

        To keep four training runs affordable on a CPU, the model is a narrower `fmnist32`
        (widths 16 and 32, 16 latent dimensions) at Fashion-MNIST's native 28×28.
        """,
        SETUP_DOC,
    ),
    code(
        r"""
        %matplotlib inline
        import json
        import os

        import matplotlib.pyplot as plt
        import torch

        import vaekit as vk

        SMALL = os.environ.get("VAEKIT_NOTEBOOK_SMALL") == "1"
        STEPS = 25 if SMALL else 400
        BATCH = 32 if SMALL else 64
        N_TRAIN = 2_000 if SMALL else 60_000
        N_TEST = 200 if SMALL else 2_000  # images for the latent metrics
        N_NLL = 64 if SMALL else 500  # images for the (slower) likelihood bounds
        IWAE_K = 8 if SMALL else 64
        torch.manual_seed(0)

        x_train, _ = vk.data.load_fashion_mnist("train", limit=N_TRAIN, pad_to=None)
        x_test, _ = vk.data.load_fashion_mnist("test", limit=N_TEST, pad_to=None)
        x_train = x_train.contiguous(memory_format=torch.channels_last)
        cfg = vk.presets.config("fmnist32", image_size=28, widths=(16, 32), latent_dim=16)
        D = x_test[0].numel()  # 784 pixels
        print(f"{'small' if SMALL else 'full'} run: {STEPS} steps of {BATCH}; latent {cfg.latent_shape}")
        """,
        SHOW,
    ),
    md(
        """
        ## One training function, two knobs

        Every run below uses the same model, data, optimiser and step count with a Bernoulli
        likelihood (`bce`), so `VAELoss` computes BCE per pixel + β · KL / 784 (β = 1 is the
        negative ELBO per pixel). Only two things change: **β** (a number or a `vk.schedules`
        schedule) and **free bits** in `vk.losses.KL`.

        `diagnose` collects the numbers that tell the failures apart:

        | number | from | what it measures |
        |---|---|---|
        | `kl_nats`, the per-dimension plot | `vk.metrics.kl_per_dim` | information in z about x, per latent dimension |
        | `active_units` | `vk.metrics.active_units` | dimensions whose posterior mean varies across images (Var > 0.01) |
        | `mean_var_max`, `mean_var_min` | `vk.metrics.latent_activity` | the largest and smallest of those variances, the numbers `active_units` thresholds |
        | `gap_kl_per_dim`, `gap_eig_min`/`gap_eig_max`, `gap_mmd` vs `gap_mmd_noise` | `vk.metrics.aggregate_posterior_gap` | how far the latents of all images, together, are from N(0, I) |
        | `psnr_db` | `vk.metrics.psnr` | reconstruction fidelity |
        | `sample_contrast` | `vk.metrics.image_stats` of prior samples | do samples have the contrast of real images, or are they faint? |
        | `neg_elbo_nats`, `iwae_nll_nats` | `vk.metrics.elbo_nll`, `iwae_nll` | the likelihood bounds, nats per image (lower is better) |
        """
    ),
    code(
        '''
        def train(beta, free_bits=0.0, seed=0):
            """A fresh model trained for STEPS steps; returns it in eval mode."""
            torch.manual_seed(seed)
            vae = vk.VAE(cfg).to(memory_format=torch.channels_last)
            loss_fn = vk.losses.VAELoss(recon="bce", kl=vk.losses.KL(free_bits=free_bits), beta=beta)
            opt = torch.optim.Adam(vae.parameters(), lr=2e-3)
            gen = torch.Generator().manual_seed(seed)
            vae.train()
            for step in range(STEPS):
                x = x_train[torch.randint(len(x_train), (BATCH,), generator=gen)]
                res = loss_fn(vae(x), x, step=step)
                opt.zero_grad(set_to_none=True)
                res.total.backward()
                opt.step()
            bce, kl = res.terms["bce"].item(), res.terms["kl_raw"].item()
            print(f"trained: last batch bce {bce:.4f}, KL {kl:.2f} nats")
            return vae.eval()


        def diagnose(vae):
            g = torch.Generator().manual_seed(0)
            with torch.no_grad():
                x_hat = vae.reconstruct(x_test)
                samples = vae.sample(len(x_test), generator=g)
            kl = vk.metrics.kl_per_dim(vae, x_test)
            activity = vk.metrics.latent_activity(vae, x_test)  # Var_x of each posterior mean
            gap = vk.metrics.aggregate_posterior_gap(vae, x_test, generator=g)
            return {
                "kl_nats": kl.sum().item(),
                "kl_per_dim": kl.tolist(),
                "active_units": vk.metrics.active_units(vae, x_test),
                "mean_var_max": activity.max().item(),
                "mean_var_min": activity.min().item(),
                "gap_kl_per_dim": gap.kl_per_dim,
                "gap_eig_min": gap.eig_min,
                "gap_eig_max": gap.eig_max,
                "gap_mmd": gap.mmd,
                "gap_mmd_noise": gap.mmd_noise,
                "psnr_db": vk.metrics.psnr(x_hat, x_test).item(),
                "sample_contrast": vk.metrics.image_stats(samples).mean()["contrast"],
                "neg_elbo_nats": vk.metrics.elbo_nll(vae, x_test[:N_NLL], generator=g).item(),
                "iwae_nll_nats": vk.metrics.iwae_nll(vae, x_test[:N_NLL], k=IWAE_K, generator=g).item(),
            }


        def show_run(vae, name):
            with torch.no_grad():
                x_hat = vae.reconstruct(x_test[:8])
            show(vk.viz.reconstruction_grid(x_test[:8], x_hat, nrow=8), f"{name}: reconstructions")
            g = torch.Generator().manual_seed(1)
            grid = vk.viz.sample_grid(vae, n=8, temperatures=(1.0, 0.6), generator=g)
            show(grid, f"{name}: prior samples, t = 1.0 (top) and 0.6")


        real = {"sample_contrast": vk.metrics.image_stats(x_test).mean()["contrast"]}
        print(f"contrast of real test images: {real['sample_contrast']:.3f}")
        models, results = {}, {}
        '''
    ),
    md(
        """
        ## Run 1: posterior collapse (β = 100)

        With β = 100, every nat of information in z costs 100/784 ≈ 0.13 in a loss whose
        reconstruction part is a fraction of a nat per pixel: no image is worth encoding. (In
        real projects the same collapse comes from a loss-scaling mistake, such as a KL
        averaged over latent dimensions next to a reconstruction averaged over pixels, or from
        a decoder strong enough to model the images without z.)

        Expect every reconstruction to be nearly the same blurry average garment, and the
        samples to look alike.
        """
    ),
    code(
        """
        models["collapse"] = train(beta=100.0)
        results["collapse"] = diagnose(models["collapse"])
        show_run(models["collapse"], "collapse (beta = 100)")
        """
    ),
    md(
        """
        ## Run 2: ghosting (β = 0)

        With β = 0 the model is an autoencoder with noise: nothing pulls q(z|x) towards the
        prior. The posterior variances shrink and the posterior means spread over whatever
        region suits the decoder. Reconstructions are recognisable, but a z drawn from N(0, I)
        lands where no training image's latent was: expect faint, low-contrast smudges at
        t = 1.
        """
    ),
    code(
        """
        models["ghosting"] = train(beta=0.0)
        results["ghosting"] = diagnose(models["ghosting"])
        show_run(models["ghosting"], "ghosting (beta = 0)")
        """
    ),
    md(
        """
        ## Run 3: healthy (β warmed up to 1)

        The honest ELBO (β = 1), reached by a linear warm-up over the first half of training
        (`vk.schedules.Linear`), so the encoder starts using z before the KL pulls on it.
        Reconstructions are blurrier than with β = 0, and samples are blurry garments rather
        than smudges.
        """
    ),
    code(
        """
        models["healthy"] = train(beta=vk.schedules.Linear(0.0, 1.0, steps=STEPS // 2))
        results["healthy"] = diagnose(models["healthy"])
        show_run(models["healthy"], "healthy (beta warmed up to 1)")
        """
    ),
    md(
        """
        ## Reading the numbers

        The table and the KL of each latent dimension (sorted, log scale) put the three runs side
        by side.
        """
    ),
    code(
        """
        ROWS = [
            "kl_nats", "active_units", "mean_var_max", "mean_var_min", "gap_kl_per_dim", "gap_eig_min", "gap_eig_max", "gap_mmd",
            "gap_mmd_noise",
            "psnr_db", "sample_contrast", "neg_elbo_nats", "iwae_nll_nats",
        ]  # fmt: skip


        def table(results, rows=ROWS):
            # one column per run, and one for the real images where a number applies to them
            columns = {**results, "real images": real}
            print(f"{'':16s}" + "".join(f"{name:>22s}" for name in columns))
            for row in rows:
                cells = [f"{r[row]:22.4g}" if row in r else " " * 22 for r in columns.values()]
                print(f"{row:16s}" + "".join(cells))


        table(results)
        fig, ax = plt.subplots(figsize=(7, 3))
        for name, r in results.items():
            ax.plot(sorted(r["kl_per_dim"], reverse=True), marker="o", label=name)
        ax.set_yscale("log")
        ax.set_xlabel("latent dimension (sorted by KL)")
        ax.set_ylabel("KL, nats")
        ax.legend()
        plt.show()
        """
    ),
    md(
        """
        What separates the runs:

        - **Collapse**: the total KL is close to 0 nats and every dimension sits far below the
          others' (the bottom curve): z carries almost nothing about x. No posterior mean
          moves much across images: the largest variance of one, `mean_var_max`, is of the
          order of 0.01, the threshold `active_units` counts against (so it reads 0, or 1 or 2
          where a dimension sits just above it), while the healthy run has every dimension
          well above it. The aggregate-posterior gap is tiny *because*
          nothing is encoded: a collapsed model matches the prior trivially, so the gap alone
          would call it healthy; read it next to `kl_per_dim`. PSNR is the lowest of the three,
          and the samples are washed-out variations of one average garment.
        - **Ghosting**: the KL is by far the largest (top curve), and so is the gap:
          `gap_kl_per_dim` is many times the healthy run's, and `gap_mmd` is orders of
          magnitude above `gap_mmd_noise`, the value two sets of prior samples give. The
          eigenvalues say what shape the mismatch has: `gap_eig_min` ≪ 1 means the latents fill
          a thin slice of the space the prior covers, `gap_eig_max` ≫ 1 that they spread far
          wider than the prior. Without a KL, either can happen (which one depends on how long
          you train); both leave prior samples where the decoder was never trained. The
          samples' contrast is a fraction of the real images'. The −ELBO is the worst of the three: the bound charges
          for exactly the KL that makes sampling fail, however good the reconstructions are.
        - **Healthy**: in between on KL, all dimensions in use, and the best (lowest) −ELBO of
          the three. Its gap is far smaller than the ghosting run's; compare it with the
          ≲ 0.05 nats per dimension of a well-fitted model, which short runs rarely reach.

        IWAE-K is at most the ELBO in expectation; for a well-trained model the difference
        shows how much a better posterior could gain.
        """
    ),
    md(
        """
        ## Fixing collapse: free bits

        Free bits (Kingma et al. 2016): `vk.losses.KL(free_bits=λ)` averages the KL of each
        latent dimension over the batch and replaces it by max(λ, KL). Below λ nats a dimension
        gets no gradient from the KL, so there is nothing to gain by collapsing it. We keep the
        absurd β = 100 and give each of the 16 dimensions λ = 0.5 nats for free. (The other
        fixes, a sane β reached by a warm-up, are what the healthy run does.)
        """
    ),
    code(
        """
        models["collapse + free bits"] = train(beta=100.0, free_bits=0.5)
        results["collapse + free bits"] = diagnose(models["collapse + free bits"])
        show_run(models["collapse + free bits"], "beta = 100 with free bits 0.5")
        table({k: results[k] for k in ("collapse", "collapse + free bits")})
        """
    ),
    md(
        """
        Compare the two rows: with free bits the dimensions are active again and carry more
        information, and reconstructions improve. Each dimension can only hold about λ nats
        before β = 100 bites again, so this run stays far blurrier than the healthy one: free
        bits guarantee a minimum rate; they do not replace a sensible β. For collapse caused by
        a powerful decoder at β = 1, free bits and a KL warm-up are the standard pair.
        """
    ),
    md(
        """
        ## Fixing ghosting

        Three remedies, from cheapest to most thorough:

        1. **Sample at a lower temperature** (the second row of each sample grid above). It
           shrinks prior samples towards the centre, which helps only if that is where the
           latents are.
        2. **Sample from a distribution fitted to the latents** instead of N(0, I): ex-post
           density estimation (Ghosh et al. 2020; a second-stage VAE, Dai & Wipf 2019, is the
           stronger version). Below, a single Gaussian with full covariance, fitted to the
           posterior means of training images: a few lines of torch, no retraining.
        3. **Train with an honest β**, reached by a warm-up (the healthy run) or a cyclical
           schedule (Fu et al. 2019, sketched at the end).
        """
    ),
    code(
        """
        ghost = models["ghosting"]
        with torch.no_grad():
            mu = ghost.encode(x_train[:N_TEST]).mean  # posterior means, (N, 16)
            mean, cov = mu.mean(0), torch.cov(mu.T)
            chol = torch.linalg.cholesky(cov + 1e-4 * torch.eye(len(mean)))
            g = torch.Generator().manual_seed(1)
            z_fit = mean + torch.randn(len(x_test), len(mean), generator=g) @ chol.T
            fitted = ghost.decode(z_fit)
            prior = ghost.sample(len(x_test), generator=g)
        show(vk.viz.make_grid(prior[:16], nrow=8), "ghosting model: samples from N(0, I)")
        show(vk.viz.make_grid(fitted[:16], nrow=8), "ghosting model: samples from a fitted Gaussian")
        ghost_fix = {
            "prior_sample_contrast": vk.metrics.image_stats(prior).mean()["contrast"],
            "fitted_sample_contrast": vk.metrics.image_stats(fitted).mean()["contrast"],
            "real_contrast": real["sample_contrast"],
            "latent_std_range": [cov.diagonal().sqrt().min().item(), cov.diagonal().sqrt().max().item()],
        }
        print(json.dumps(ghost_fix, indent=2))
        """
    ),
    md(
        """
        The fitted Gaussian puts samples where the latents actually are (`latent_std_range`
        shows how far the latents' spread is from the prior's 1 per dimension), so its samples
        have contrast much closer to that of real images than the prior samples have. They can
        still mix garments: one Gaussian is a crude model of the latents; a mixture model or a
        second-stage VAE does better.

        **A cyclical β schedule** (Fu et al. 2019) repeats the warm-up a few times; each cycle
        lets the encoder re-learn to use z at low β before the KL is enforced again. It is a
        drop-in replacement for `beta=` above:
        """
    ),
    code(
        """
        cyclical = vk.schedules.Cyclical(total_steps=STEPS, cycles=4, ratio=0.5, start=0.0, end=1.0)
        steps = list(range(STEPS + 1))
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.plot(steps, [cyclical(s) for s in steps])
        ax.set_xlabel("step")
        ax.set_ylabel("beta")
        ax.set_title(repr(cyclical), fontsize=8)
        plt.show()
        # try it: train(beta=cyclical), then diagnose() it like the runs above
        """
    ),
    md(
        """
        ## Summary

        | symptom | numbers | fixes |
        |---|---|---|
        | all reconstructions and samples alike | KL ≈ 0, `active_units` ≈ 0, small gap (nothing encoded) | check the loss scaling; smaller β; KL warm-up; free bits |
        | good reconstructions, smudged samples | large KL, large gap: `eig_min` ≪ 1 or `eig_max` ≫ 1, `mmd` ≫ `mmd_noise`; low sample contrast | larger final β (warm-up, cyclical); lower temperature; sample from a density fitted to the latents |
        | blurry everything | sharpness from `vk.metrics.image_stats` far below the real images' | a better reconstruction loss (notebook 03) |

        The numbers of all runs, for the record (the test suite checks them):
        """
    ),
    code(
        """
        summary = {name: {k: v for k, v in r.items() if k != "kl_per_dim"} for name, r in results.items()}
        metrics = {"steps": STEPS, "real": real, "runs": summary, "ghost_fix": ghost_fix}
        print(json.dumps(metrics, indent=2))
        """,
        tags=("metrics",),
    ),
]

# -- 03 ---------------------------------------------------------------------------------------
LOSSES = [
    md(
        """
        # Choosing a reconstruction loss

        Pixel losses make VAEs blurry: when the decoder is unsure where an edge goes, the
        average of the candidates minimises L1 or MSE, and an average of sharp images is a
        blurry one. Terms that look at structure or frequency push back:

        | loss | what it compares |
        |---|---|
        | `l1` | pixels: the mean absolute difference |
        | `ssim` | local means, contrasts and correlations in 11×11 windows (Wang et al. 2004) |
        | `fft` | the 2-D Fourier spectra, so missing high frequencies (blur) cost directly |
        | `perceptual` | VGG16 feature maps (Johnson et al. 2016) |

        We train the same model four times with L1, L1 + SSIM, L1 + SSIM + FFT, and
        L1 + SSIM + FFT + perceptual, then compare the reconstructions side by side and with
        PSNR, SSIM and sharpness (`vk.metrics.image_stats`).

        The model is a narrower `fmnist32` (widths 16 and 32, 32 latent dimensions) at the
        native 28×28, so that four runs fit in a few minutes on a CPU.
        """,
        SETUP_DOC,
    ),
    code(
        r"""
        %matplotlib inline
        import json
        import math
        import os
        import time

        import matplotlib.pyplot as plt
        import torch

        import vaekit as vk

        SMALL = os.environ.get("VAEKIT_NOTEBOOK_SMALL") == "1"
        STEPS = 15 if SMALL else 400
        BATCH = 16 if SMALL else 64
        N_TRAIN = 2_000 if SMALL else 60_000
        N_TEST = 100 if SMALL else 1_000
        BETA = 0.05  # see "The KL weight" below
        torch.manual_seed(0)

        x_train, _ = vk.data.load_fashion_mnist("train", limit=N_TRAIN, pad_to=None)
        x_test, _ = vk.data.load_fashion_mnist("test", limit=N_TEST, pad_to=None)
        x_train = x_train.contiguous(memory_format=torch.channels_last)
        cfg = vk.presets.config("fmnist32", image_size=28, widths=(16, 32))
        print(f"{'small' if SMALL else 'full'} run: {STEPS} steps of {BATCH}; latent {cfg.latent_shape}")
        """,
        SHOW,
    ),
    md(
        """
        ## The perceptual loss needs ImageNet weights

        A perceptual loss is only as good as its features: the real one uses VGG16 trained on
        ImageNet. vaekit loads torchvision's file `vgg16-397923af.pth` from the torch hub cache,
        `$TORCH_HOME/hub/checkpoints/` (`~/.cache/torch/hub/checkpoints/` by default), and never
        downloads anything unless asked. We ask for it with `download=False`: if the file is
        cached, we get the real loss; if not, the error message says which file is needed,
        where to put it and where to download it.

        Without the file, this notebook falls back to `weights=None`, a **randomly initialised
        VGG16**. Be clear about what that is: random convolutional features still respond to
        edges and local patterns, so the term does something, but it is *not* the perceptual
        loss from the literature, and what you see below says nothing about how the real one
        behaves. To run the real comparison, fetch the file on a machine with internet (for
        example `python -c "import torchvision; torchvision.models.vgg16(weights='IMAGENET1K_V1')"`,
        which stores it in the cache), copy it into the directory named in the message, and
        rerun; or pass its path as `weights="/path/to/vgg16-397923af.pth"`.
        """
    ),
    code(
        """
        try:
            perceptual = vk.losses.build("perceptual", download=False)
            PERCEPTUAL = "perceptual (ImageNet VGG16)"
        except vk.losses.WeightsNotFoundError as err:
            print(f"{type(err).__name__}: {err}\\n")
            perceptual = vk.losses.build("perceptual", weights=None)
            PERCEPTUAL = "perceptual (RANDOM VGG16)"
        print("using:", PERCEPTUAL)
        """
    ),
    md(
        """
        ## How big is each term?

        The terms live on different scales, so their weights matter. A simple recipe: make
        each added term about as large as the L1 term on a *blurred* copy of real images, the
        failure we want it to punish. The cell measures each term on a blurred and on a noisy
        copy and derives the weights. (Equal values do not mean equal gradients; treat the
        weights as starting points to tune, and look at the pictures.)
        """
    ),
    code(
        """
        x = x_test[:64]
        blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        noisy = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
        terms = {name: vk.losses.build(name) for name in ("l1", "ssim", "fft")}
        terms["perceptual"] = perceptual
        with torch.no_grad():
            scale = {name: (loss(blurred, x).item(), loss(noisy, x).item()) for name, loss in terms.items()}
        for name, (b, n) in scale.items():
            print(f"{name:11s} blurred {b:.4f}   noisy {n:.4f}")


        def round_1sig(v):
            return float(f"{v:.1g}")


        weights = {name: round_1sig(scale["l1"][0] / b) for name, (b, _) in scale.items() if name != "l1"}
        print("weights:", weights)
        """
    ),
    md(
        """
        ## The four losses, and the KL weight

        Each reconstruction loss is a `vk.losses.Weighted` sum; `vk.losses.VAELoss` adds the KL
        with β = 0.05. L1 is not a likelihood, so β has no ELBO meaning here; reading L1 as a
        Laplace likelihood with scale b, the ELBO would weigh the KL by about b, and b ≈ 0.05 is
        the typical pixel error of these models.

        One confound to keep in mind: extra terms add to the reconstruction side while β stays
        the same, so the richer losses weigh the KL relatively less and typically keep more
        information in z (compare the `kl` each run prints, and the `KL nats` column below).
        Part of any difference between the rows comes from that, not from what the added term
        measures; a stricter comparison would tune β per loss until the KLs match.
        """
    ),
    code(
        """
        RECON_LOSSES = {
            "L1": {"l1": 1.0},
            "L1+SSIM": {"l1": 1.0, "ssim": weights["ssim"]},
            "L1+SSIM+FFT": {"l1": 1.0, "ssim": weights["ssim"], "fft": weights["fft"]},
            "L1+SSIM+FFT+" + PERCEPTUAL: {
                "l1": 1.0,
                "ssim": weights["ssim"],
                "fft": weights["fft"],
                "perceptual": (perceptual, weights["perceptual"]),
            },
        }


        def train(recon, seed=0):
            torch.manual_seed(seed)
            vae = vk.VAE(cfg).to(memory_format=torch.channels_last)
            loss_fn = vk.losses.VAELoss(recon=vk.losses.Weighted(recon), kl=vk.losses.KL(), beta=BETA)
            opt = torch.optim.Adam(vae.parameters(), lr=2e-3)
            gen = torch.Generator().manual_seed(seed)
            vae.train()
            t0 = time.perf_counter()
            for step in range(STEPS):
                x = x_train[torch.randint(len(x_train), (BATCH,), generator=gen)]
                res = loss_fn(vae(x), x, step=step)
                opt.zero_grad(set_to_none=True)
                res.total.backward()
                opt.step()
            ms = 1000 * (time.perf_counter() - t0) / STEPS
            print(f"{ms:5.0f} ms/step  " + "  ".join(f"{k} {v.item():.4f}" for k, v in res.terms.items()))
            return vae.eval(), ms


        models, ms_per_step = {}, {}
        for name, recon in RECON_LOSSES.items():
            print(name)
            models[name], ms_per_step[name] = train(recon)
        """
    ),
    md(
        """
        ## Side by side

        Top row: test images; below, one row of reconstructions per loss. Look at edges
        (sleeves, soles, straps), at small high-contrast details (prints, buttons, logos) and at
        overall contrast. In a short run all four are rough and the differences are subtle;
        they grow with training.
        """
    ),
    code(
        """
        n_show = 10
        with torch.no_grad():
            recons = {name: vae.reconstruct(x_test) for name, vae in models.items()}
        rows = {"test images": x_test[:n_show], **{k: v[:n_show] for k, v in recons.items()}}
        fig, axes = plt.subplots(len(rows), 1, figsize=(8, 1.1 * len(rows)), dpi=100)
        for ax, (name, images) in zip(axes, rows.items()):
            ax.imshow(vk.viz.make_grid(images, nrow=n_show)[0], cmap="gray", vmin=0, vmax=1)
            ax.set_axis_off()
            ax.set_title(name, fontsize=8, loc="left")
        plt.tight_layout()
        plt.show()
        """
    ),
    md(
        """
        ## Where the detail goes: the power spectrum

        Blur is missing high frequencies. The radially averaged power spectrum
        (`vk.metrics.radial_power_spectrum`: the mean power of the 2-D spectrum in rings of
        equal frequency) of the reconstructions, next to that of the test images, shows where
        each loss loses power: a curve that falls below the real one on the right-hand side is
        blurrier. `vk.viz.plot_spectrum` draws them, and below each one's power divided by the
        test images' (1 = as much detail as the data at that frequency).
        """
    ),
    code(
        """
        fig = vk.viz.plot_spectrum({"test images": x_test, **recons}, title="reconstructions")
        plt.show()
        """
    ),
    md(
        """
        ## The numbers

        - **PSNR** is the mean squared pixel error in decibels: it rewards getting each pixel
          right on average and does not single out blur (a blurry image can score well).
        - **SSIM** rewards local structure and contrast; a loss with an SSIM term optimises it
          directly.
        - **Sharpness ratio**: the variance of the Laplacian (`vk.metrics.image_stats`) of the
          reconstructions divided by that of the test images. Below 1 is blurrier than the data;
          above 1 means added high-frequency content, which can be real detail or artifacts
          (check the pictures).

        A loss that contains a metric's own term has a head start on that metric, so read the
        numbers together and with the pictures. The cell below prints the table and says which loss leads each metric
        *in this run*.
        """
    ),
    code(
        """
        real_sharpness = vk.metrics.image_stats(x_test).mean()["sharpness"]
        results = {}
        for name, x_hat in recons.items():
            results[name] = {
                "psnr_db": vk.metrics.psnr(x_hat, x_test).item(),
                "ssim": vk.metrics.ssim(x_hat, x_test).item(),
                "sharpness_ratio": vk.metrics.image_stats(x_hat).mean()["sharpness"] / real_sharpness,
                "kl_nats": vk.metrics.kl_per_dim(models[name], x_test).sum().item(),
                "ms_per_step": ms_per_step[name],
            }
        header = ("PSNR dB", "SSIM", "sharpness", "KL nats", "ms/step")
        print(f"{'':42s}" + "".join(f"{h:>10s}" for h in header))
        for name, r in results.items():
            row = f"{r['psnr_db']:10.2f}{r['ssim']:10.3f}{r['sharpness_ratio']:10.3f}"
            print(f"{name:42s}{row}{r['kl_nats']:10.1f}{r['ms_per_step']:10.0f}")
        print()
        base = results["L1"]
        for name, r in list(results.items())[1:]:
            d_psnr, d_ssim = r["psnr_db"] - base["psnr_db"], r["ssim"] - base["ssim"]
            sharper = r["sharpness_ratio"] / base["sharpness_ratio"]
            print(f"{name} vs L1: PSNR {d_psnr:+.2f} dB, SSIM {d_ssim:+.3f}, sharpness x{sharper:.2f}")
        print()
        print("highest PSNR:   ", max(results, key=lambda k: results[k]["psnr_db"]))
        print("highest SSIM:   ", max(results, key=lambda k: results[k]["ssim"]))
        closest = min(results, key=lambda k: abs(math.log(results[k]["sharpness_ratio"])))
        print("sharpness closest to the data:", closest)
        """
    ),
    md(
        """
        ## What to take away

        - After runs this short, every loss is far blurrier than the data: the sharpness ratios
          are well below 1 and the spectra fall below the real one at high frequencies. No
          added term removes blur on its own in a few hundred steps; longer training, a wider
          latent or a spatial latent matter as much.
        - Whether SSIM and FFT help *in your run* is what the "vs L1" lines, the table and the
          pictures say. Short runs are noisy and the KL confound above is real, so compare
          several seeds before you believe a small difference. In the literature, mixing L1
          with (MS-)SSIM beats L1 alone on perceived quality (Zhao et al. 2017), and L1 + SSIM,
          with a little FFT against missing high frequencies, is a cheap default worth trying
          first.
        - The perceptual term costs far more per step than the others (the `ms/step` column:
          a VGG16 forward and backward on every batch). If this notebook used a random VGG16,
          its row shows the effect of random features, not of a perceptual loss: get the
          ImageNet weights (above) before judging it. With real weights, also re-check the
          weight printed by the scale cell, since trained features have a different scale.
        - For a calibrated perceptual *metric* rather than a loss, `vk.losses.build("lpips")`
          needs its own weights file, found the same way.
        """
    ),
    code(
        """
        metrics = {"steps": STEPS, "perceptual": PERCEPTUAL, "weights": weights, "runs": results}
        print(json.dumps(metrics, indent=2))
        """,
        tags=("metrics",),
    ),
]

# -- 04 ---------------------------------------------------------------------------------------
PRIORS = [
    md(
        """
        # Priors: samples as good as the reconstructions

        A VAE that reconstructs well often samples badly. The decoder learned to decode the
        latents of training images; their mixture, the *aggregate posterior*, rarely fills the
        prior N(0, I), so a z drawn from N(0, I) often lands where no training image's latent
        was and decodes to a faint blend. This is the **reconstruction–generation gap**.

        This notebook measures the gap on a small Fashion-MNIST model, then closes it with
        `vk.priors`:

        - **ex-post priors**, fitted after training on the posterior means of the training
          images (Ghosh et al. 2020; Dai & Wipf 2019): `GaussianMixture` (full and diagonal
          covariances), `Flow` (RealNVP) and `LatentDiffusion`; the decoder is untouched;
        - **priors learned with the VAE**: `MixtureOfGaussians` and `VampPrior` (Tomczak &
          Welling 2018), trained by the same optimiser through the KL term.

        Each prior is judged by its samples: their contrast against the real images'
        (`vk.metrics.image_stats`), their Fréchet distance (FD) to the test images in the
        feature space of a small Fashion-MNIST classifier (`vk.metrics.ClassifierFeatures`),
        the log-density it gives held-out latents, and the time its fit takes. The model is a
        narrow `fmnist32` (widths 16 and 32, 16 latent dimensions) at the native 28×28, trained
        with a small β (0.1), the usual choice for sharp reconstructions, and the setting in
        which the gap is large. At full size it runs longer than the other notebooks: the flow
        and diffusion fits are training runs of their own.
        """,
        SETUP_DOC,
    ),
    code(
        r"""
        %matplotlib inline
        import json
        import os
        import time

        import matplotlib.pyplot as plt
        import torch

        import vaekit as vk

        SMALL = os.environ.get("VAEKIT_NOTEBOOK_SMALL") == "1"
        STEPS = 60 if SMALL else 1000  # optimiser steps of each VAE
        BATCH = 32 if SMALL else 64
        BETA = 0.1
        N_TRAIN = 2_000 if SMALL else 60_000  # training images: batches, latents, classifier
        N_TEST = 500 if SMALL else 5_000  # test images, and samples drawn from each prior
        FLOW_STEPS = 200 if SMALL else 3_000  # Adam steps of the flow's fit (its default)
        DIFFUSION = (
            dict(steps=200, sample_steps=20, hidden=128, depth=2) if SMALL else {}  # defaults
        )
        DIFFUSION_STEPS = 1_000 if SMALL else 8_000
        torch.manual_seed(0)

        x_train, y_train = vk.data.load_fashion_mnist("train", limit=N_TRAIN, pad_to=None)
        x_test, y_test = vk.data.load_fashion_mnist("test", limit=N_TEST, pad_to=None)
        cfg = vk.presets.config("fmnist32", image_size=28, widths=(16, 32), latent_dim=16)
        print(f"{'small' if SMALL else 'full'} run: {STEPS} steps of {BATCH}; latent {cfg.latent_shape}")
        """,
        SHOW,
    ),
    md(
        """
        ## A yardstick for samples

        The Fréchet distance needs features that know what Fashion-MNIST looks like.
        `vk.metrics.ClassifierFeatures` is a small CNN; fitted on the training images, its
        128-d penultimate layer is the feature space (no ImageNet weights, no download). Its
        test accuracy says how good a yardstick it is, and FD(train, test), two sets of real
        images, is the floor a perfect model would reach. FDs from another classifier do not
        compare with these.
        """
    ),
    code(
        """
        t = time.perf_counter()
        clf = vk.metrics.ClassifierFeatures.fit(
            x_train, y_train, num_classes=10, epochs=1 if SMALL else 2, batch_size=128, seed=0
        )
        real_features = vk.metrics.extract_features(clf, x_test, batch_size=500)


        def fd(images):
            return vk.metrics.fid(real_features, vk.metrics.extract_features(clf, images, batch_size=500))


        floor = fd(x_train[:N_TEST])
        real_contrast = vk.metrics.image_stats(x_test).mean()["contrast"]
        accuracy = clf.accuracy(x_test, y_test)
        print(f"classifier: {time.perf_counter() - t:.0f} s, test accuracy {accuracy:.3f}")
        print(f"FD floor (train vs test): {floor:.2f}; contrast of real test images: {real_contrast:.3f}")
        """
    ),
    md(
        """
        ## Train a VAE with N(0, I)

        One training function for every model of the notebook: the prior is its only
        argument. `vk.VAE(cfg, prior=...)` makes the prior part of the model (`vae.prior`),
        `VAELoss` takes the KL to it from the model's output (the closed form for N(0, I), a
        Monte Carlo estimate `log q(z|x) - log p(z)` for a mixture), and the optimiser
        trains its parameters with the rest. A VampPrior's pseudo-inputs start as training
        images.
        """
    ),
    code(
        '''
        def train(prior=None, seed=0):
            """A fresh model with `prior` (default N(0, I)) trained for STEPS steps, in eval mode."""
            torch.manual_seed(seed)
            vae = vk.VAE(cfg, prior=prior)
            if isinstance(vae.prior, vk.priors.VampPrior):
                vae.prior.init_pseudo_inputs(x_train, generator=torch.Generator().manual_seed(seed))
            loss_fn = vk.losses.VAELoss(recon="bce", kl=vk.losses.KL(), beta=BETA)
            opt = torch.optim.Adam(vae.parameters(), lr=2e-3)  # the prior's parameters included
            gen = torch.Generator().manual_seed(seed)
            t = time.perf_counter()
            vae.train()
            for step in range(STEPS):
                x = x_train[torch.randint(len(x_train), (BATCH,), generator=gen)]
                res = loss_fn(vae(x), x, step=step)
                opt.zero_grad(set_to_none=True)
                res.total.backward()
                opt.step()
            kind = "Monte Carlo" if "kl_mc" in res.terms else "closed form"
            print(
                f"{type(vae.prior).__name__}: {time.perf_counter() - t:.0f} s, last batch bce "
                f"{res.terms['bce'].item():.4f}, KL {res.terms['kl_raw'].item():.1f} nats ({kind})"
            )
            return vae.eval()


        def draw(vae, prior=None, n=N_TEST):
            """n samples of `vae`, from `prior` instead of its own when given (seeded)."""
            own = vae.prior
            if prior is not None:
                vae.prior = prior
            try:
                with torch.no_grad():
                    return vae.sample(n, generator=torch.Generator().manual_seed(1))
            finally:
                vae.prior = own


        vae = train()
        with torch.no_grad():
            recon = vae.reconstruct(x_test)
        show(vk.viz.reconstruction_grid(x_test[:8], recon[:8], nrow=8), "test images, reconstructions")
        show(vk.viz.make_grid(draw(vae, n=16), nrow=8), "samples from N(0, I)")
        '''
    ),
    md(
        """
        ## Measure the gap

        `vk.metrics.aggregate_posterior_gap` compares the latents of the test images, all
        together, with N(0, I): the KL between their moment-matched Gaussian and N(0, I) per
        dimension (well above 0.05 nats means a mismatch), the extreme eigenvalues of their
        covariance (`eig_min` ≪ 1: a direction the latents barely use; `eig_max` ≫ 1: one
        they spread far wider than the prior), and an MMD against its own noise level. Next
        to it, the FD of reconstructions and of N(0, I) samples: the gap in the picture's
        terms.
        """
    ),
    code(
        """
        gap = vk.metrics.aggregate_posterior_gap(vae, x_test, generator=torch.Generator().manual_seed(0))
        measured = {
            "gap_kl_per_dim": gap.kl_per_dim, "gap_eig_min": gap.eig_min, "gap_eig_max": gap.eig_max,
            "gap_mmd": gap.mmd, "gap_mmd_noise": gap.mmd_noise,
            "fd_reconstructions": fd(recon), "psnr_db": vk.metrics.psnr(recon, x_test).item(),
        }  # fmt: skip
        print(json.dumps(measured, indent=2))
        """
    ),
    md(
        """
        ## Ex-post priors: fit on the latents

        `vk.priors.encode_dataset` runs the encoder over the training images in eval mode
        and returns their posterior means, one `(N, 16)` tensor; every ex-post prior's `fit`
        takes it (a progress bar shows while it runs; `progress=False` here). The held-out
        latents of the test images score each fitted density: the mean log p(z) per latent,
        higher is better. `LatentDiffusion` has no tractable density, so it has no score.
        """
    ),
    code(
        """
        latents = vk.priors.encode_dataset(vae, x_train, progress=False)
        held_out = vk.priors.encode_dataset(vae, x_test, progress=False)
        ex_post = {
            "GMM full": (vk.priors.GaussianMixture(components=10, covariance="full"), {}),
            "GMM diag": (vk.priors.GaussianMixture(components=10, covariance="diag"), {}),
            "Flow": (vk.priors.Flow(), {"iterations": FLOW_STEPS}),
            "LatentDiffusion": (vk.priors.LatentDiffusion(**DIFFUSION), {"iterations": DIFFUSION_STEPS}),
        }
        priors = {"N(0, I)": vk.priors.StandardNormal(vae.latent_shape)}
        rows = {"N(0, I)": {"fit_seconds": 0.0}}
        for name, (prior, options) in ex_post.items():
            t = time.perf_counter()
            prior.fit(latents, generator=torch.Generator().manual_seed(0), progress=False, **options)
            rows[name] = {"fit_seconds": time.perf_counter() - t}
            priors[name] = prior
        for name, prior in priors.items():
            log_p = None
            if prior.has_log_prob:  # LatentDiffusion: samples only
                with torch.no_grad():
                    log_p = prior.log_prob(held_out).mean().item()
            rows[name]["heldout_log_p"] = log_p
            score = "(no density)" if log_p is None else f"{log_p:.1f} nats"
            print(f"{name:16s} fit {rows[name]['fit_seconds']:6.2f} s, held-out log p(z) {score}")

        gmm = priors["GMM full"]
        fig, ax = plt.subplots(figsize=(5, 2.5))
        ax.plot(gmm.history, marker=".")
        ax.set_xlabel("EM iteration")
        ax.set_ylabel("log-likelihood per latent")
        ax.set_title(f"GaussianMixture: {gmm.n_iter} iterations, converged {gmm.converged}", fontsize=9)
        plt.show()
        """
    ),
    md(
        """
        ## Priors learned with the VAE

        A learned prior moves with the encoder while the model trains: `MixtureOfGaussians`
        has learnable means, scales and weights (16 components, means drawn from N(0, I) at
        the start), `VampPrior` is the mixture of the encoder's own posteriors at 64 learned
        pseudo-inputs. Each is a new model trained like the first one; training with them is
        slower (the Monte Carlo KL, and for the VampPrior an encoder pass on the pseudo-inputs
        every step).
        """
    ),
    code(
        """
        learned = {}
        for name, prior in (
            ("MoG (learned)", vk.priors.MixtureOfGaussians(components=16)),
            ("VampPrior (learned)", vk.priors.VampPrior(pseudo_inputs=64)),
        ):
            t = time.perf_counter()
            learned[name] = train(prior)
            rows[name] = {"fit_seconds": None, "train_seconds": time.perf_counter() - t}
            with torch.no_grad():
                rows[name]["psnr_db"] = vk.metrics.psnr(learned[name].reconstruct(x_test), x_test).item()
        """
    ),
    md(
        """
        ## Compare the samples

        Every prior draws as many samples as there are test images, decoded by its model:
        the ex-post priors by the first model's decoder, the learned ones by their own.
        """
    ),
    code(
        """
        for name in rows:
            images = draw(learned[name]) if name in learned else draw(vae, priors[name])
            rows[name]["fd_samples"] = fd(images)
            rows[name]["sample_contrast"] = vk.metrics.image_stats(images).mean()["contrast"]
            show(vk.viz.make_grid(images[:16], nrow=8), name)

        print(f"{'':20s}{'FD samples':>12s}{'contrast':>10s}{'log p(z)':>10s}{'fit s':>8s}")
        recon_contrast = vk.metrics.image_stats(recon).mean()["contrast"]
        print(f"{'reconstructions':20s}{measured['fd_reconstructions']:12.2f}{recon_contrast:10.3f}")
        for name, r in rows.items():
            log_p = f"{r['heldout_log_p']:10.1f}" if r.get("heldout_log_p") is not None else " " * 10
            fit = f"{r['fit_seconds']:8.2f}" if r["fit_seconds"] is not None else "   (with the VAE)"
            print(f"{name:20s}{r['fd_samples']:12.2f}{r['sample_contrast']:10.3f}{log_p}{fit}")
        print(f"{'real test images':20s}{floor:12.2f}{real_contrast:10.3f}   <- FD floor: train vs test")
        """
    ),
    md(
        """
        ## Reading the numbers

        - **The gap.** N(0, I) samples are faint (a contrast far below the real images') and
          their FD is far above the reconstructions' FD: the latents do not fill N(0, I)
          (`gap_kl_per_dim` well above 0.05 nats, `gap_mmd` orders of magnitude above its
          noise level).
        - **A fitted Gaussian mixture closes most of it, in seconds.** The 10-component GMM
          gives held-out latents a much higher log-density than N(0, I), its samples have
          about the real images' contrast, and their FD drops to well under half of N(0, I)'s,
          close to the reconstructions' FD. Full covariances fit the latents better than
          diagonal ones (a higher held-out log p(z)) at the price of more parameters; for
          large spatial latents `covariance="diag"` is the affordable one.
        - **Flow and diffusion** model the latents' shape more freely, and their samples,
          too, are far closer to the test images than N(0, I)'s; the flow also gives
          held-out latents a much higher log-density than N(0, I). Whether they beat the
          mixture depends on their fit budget (a few hundred or thousand Adam steps in the
          small run, thousands at full size): compare the rows of your run. The diffusion
          prior has no density, only samples.
        - **Learned priors** change training itself. The VampPrior starts from training
          images and follows the encoder, so its samples are as good as the fitted mixture's
          without a second step. The learned `MixtureOfGaussians` needs time to move its
          means from N(0, I) to where the latents are: after a short run its samples are no
          better than N(0, I)'s; read its row at the size you ran.
        - **Cost.** A GMM fit takes seconds (EM, written in torch: k-means++ start,
          log-domain responsibilities, a stop when the log-likelihood stops rising); a flow
          or a diffusion fit is a training run of its own (minutes at full size). The learned
          priors cost training time on every step instead.

        To keep the best one, assign it and save: the prior travels in the model's file.
        """
    ),
    code(
        """
        vae.prior = gmm
        vae.save("fmnist-gmm.safetensors")
        again = vk.VAE.load("fmnist-gmm.safetensors").eval()
        g = lambda: torch.Generator().manual_seed(0)
        with torch.no_grad():
            same = torch.equal(again.sample(8, generator=g()), vae.sample(8, generator=g()))
        print(type(again.prior).__name__, "- same seeded samples after loading:", same)
        """
    ),
    md(
        """
        The same in the example trainer: `python examples/train.py --config
        examples/recipes/fmnist32.json --fit-prior gmm:10` fits the mixture after training and
        saves it into `best.safetensors`, with samples and FDs from both priors in its report
        (`--prior mog:16` or `--prior vamp:64` learn one with the model). The numbers of this
        run, for the record (the test suite checks them):
        """
    ),
    code(
        """
        metrics = {
            "steps": STEPS, "beta": BETA, "real_contrast": real_contrast, "fd_floor": floor,
            "gap": measured, "priors": rows, "saved_and_loaded_same_samples": same,
        }  # fmt: skip
        print(json.dumps(metrics, indent=2))
        """,
        tags=("metrics",),
    ),
]

# -- 05 ---------------------------------------------------------------------------------------
SHARP = [
    md(
        """
        # Sharp images: the same VAE without and with an adversarial term

        A VAE trained with a pixel likelihood is blurry: where the decoder is unsure of an
        edge, the image that minimises the expected pixel loss is the *average* of the
        candidates, and an average of sharp images is a blurred one. The remedy of VQGAN and
        of latent diffusion's autoencoder (Esser et al. 2021, Rombach et al. 2022) adds a
        second network, a **patch discriminator** (a PatchGAN, Isola et al. 2017), that learns
        to tell reconstructions from real images, and pushes the decoder towards what it
        calls real:

        - the discriminator D has its own optimizer and is trained on the hinge loss
          `0.5 · (mean relu(1 − D(x)) + mean relu(1 + D(x̂)))`, with x̂ detached;
        - the VAE's loss gains `λ · L_G` with `L_G = −mean D(x̂)`, and the **adaptive weight**
          `λ = 0.5 · ‖∇_w L_rec‖ / ‖∇_w L_G‖` at the decoder's last layer w makes the
          adversarial gradient that reaches the decoder half as large as the reconstruction's,
          whatever their raw scales;
        - the term starts after 30% of the run, once the autoencoder reconstructs.

        This notebook trains the `fmnist32` preset with its recipe (Bernoulli likelihood `bce`,
        β = 0.8, AdamW at 2e-3) twice on Fashion-MNIST, with the same seed and the same batches,
        once without and once with the adversarial term (`vk.discriminators` and
        `vk.losses.Adversarial`), and compares them side by side: pictures, power spectra,
        sharpness, PSNR, the Fréchet distance of reconstructions and samples in a
        Fashion-MNIST classifier's feature space, the discriminator's training curves and the
        cost of a step.
        """,
        SETUP_DOC,
        """
        Here the small size is 100 steps of 16 images per run, the full size 600 steps of 64
        (0.64 epoch of Fashion-MNIST); at full size the notebook took 13 minutes on one core
        (`OMP_NUM_THREADS=1`) of a shared two-core machine, most of it training.
        """,
    ),
    code(
        r"""
        %matplotlib inline
        import json
        import os
        import statistics
        import time
        from types import SimpleNamespace

        import matplotlib.pyplot as plt
        import torch

        import vaekit as vk

        SMALL = os.environ.get("VAEKIT_NOTEBOOK_SMALL") == "1"
        STEPS = 100 if SMALL else 600  # optimiser steps of each run (600 x 64: 0.64 epoch)
        BATCH = 16 if SMALL else 64
        START = int(0.3 * STEPS)  # the adversarial term starts after 30% of the run
        N_TRAIN = 2_000 if SMALL else 60_000  # training images: batches and the classifier
        N_TEST = 500 if SMALL else 5_000  # test images, and samples drawn from each model
        TIMED = 8 if SMALL else 10  # interleaved timing rounds (see "The cost")
        SEED = 0
        torch.manual_seed(SEED)

        x_train, y_train = vk.data.load_fashion_mnist("train", limit=N_TRAIN)  # 1x32x32
        x_test, y_test = vk.data.load_fashion_mnist("test", limit=N_TEST)
        x_train = x_train.contiguous(memory_format=torch.channels_last)
        print(f"{'small' if SMALL else 'full'} run: {STEPS} steps of {BATCH}, term from step {START}")
        """,
        SHOW,
    ),
    md(
        """
        ## A yardstick: features of a Fashion-MNIST classifier

        Sharpness alone can be gamed: noise is sharp too. The Fréchet distance (FD) between
        the features of two image sets asks whether they *look like* each other.
        `vk.metrics.ClassifierFeatures` is a small CNN fitted here on the training images (no
        ImageNet weights, no download); its 128-d penultimate layer is the feature space, as in
        notebook 04. FD(train, test), two sets of real images, is the floor a perfect model
        would reach. The real test images' sharpness (the variance of the Laplacian,
        `vk.metrics.image_stats`) is the 1 that the sharpness ratios below are measured
        against.
        """
    ),
    code(
        """
        t = time.perf_counter()
        clf = vk.metrics.ClassifierFeatures.fit(
            x_train, y_train, num_classes=10, epochs=1, batch_size=32 if SMALL else 128, seed=0
        )
        real_features = vk.metrics.extract_features(clf, x_test, batch_size=500)


        def fd(images):
            return vk.metrics.fid(real_features, vk.metrics.extract_features(clf, images, batch_size=500))


        floor = fd(x_train[:N_TEST])
        real_sharpness = vk.metrics.image_stats(x_test).mean()["sharpness"]
        accuracy = clf.accuracy(x_test, y_test)
        print(f"classifier: {time.perf_counter() - t:.0f} s, test accuracy {accuracy:.3f}")
        print(f"FD floor (train vs test): {floor:.2f}; sharpness of the test images: {real_sharpness:.4f}")
        """
    ),
    md(
        """
        ## One model, one loop, with or without the term

        `build` makes the model, its loss and its optimizer; with `adversarial=True` also the
        discriminator (`vk.discriminators.build("patchgan", ...)`: 3 stride-2 layers of 4×4
        convs from width 32, batch norm, one logit per patch; the default width 64 did no
        better on these 32-px images in our short runs and cost more), the term
        (`vk.losses.Adversarial`, hinge, adaptive weight 0.5 at `vae.decoder.last_layer`,
        `start=START`) and the discriminator's own optimizer (AdamW 2e-4, betas (0.5, 0.9), no
        weight decay, the usual GAN setting). The discriminator is initialised from its own
        seed inside `torch.random.fork_rng()`, so both runs draw the same VAE weights, the same
        batches and the same latent noise: until `START` they are the same run, step for step.

        `train_step` is the loop's body: the VAE's step (`loss_fn(out, x, step=)`, whose total
        is reconstruction + β·KL + λ·L_G), then, once the term is on, the discriminator's step
        (`loss_fn.discriminator_loss(out, x, step=)`, which detaches x̂). The VAE's backward
        also reaches the discriminator's weights (through L_G), so D's gradients are zeroed
        before its own backward. Every step logs the adaptive weight λ (`adv_weight`) and D's
        mean logits on the real and the reconstructed batch.
        """
    ),
    code(
        '''
        def build(adversarial):
            """The fmnist32 recipe's model, loss and optimizer (+ discriminator and its optimizer)."""
            torch.manual_seed(SEED)
            vae = vk.presets.build("fmnist32").to(memory_format=torch.channels_last)
            adv = disc = d_opt = None
            if adversarial:
                with torch.random.fork_rng():  # leaves the global RNG as the plain run sees it
                    torch.manual_seed(SEED + 1)
                    disc = vk.discriminators.build(
                        "patchgan", in_channels=1, width=32, layers=3, norm="batch"
                    )
                adv = vk.losses.Adversarial(
                    disc, loss="hinge", weight=0.5, adaptive=True, start=START,
                    last_layer=vae.decoder.last_layer,
                )  # fmt: skip
                d_opt = torch.optim.AdamW(disc.parameters(), lr=2e-4, betas=(0.5, 0.9), weight_decay=0.0)
            loss_fn = vk.losses.VAELoss(recon="bce", kl=vk.losses.KL(), beta=0.8, adversarial=adv)
            opt = torch.optim.AdamW(vae.parameters(), lr=2e-3, weight_decay=1e-4)
            return SimpleNamespace(vae=vae, loss_fn=loss_fn, opt=opt, adv=adv, disc=disc, d_opt=d_opt)


        def train_step(run, x, step, d_step=True):
            """One step of the VAE, then (term on, d_step) one of the discriminator; the logged numbers."""
            out = run.vae(x)
            res = run.loss_fn(out, x, step=step)
            run.opt.zero_grad(set_to_none=True)
            res.total.backward()
            run.opt.step()
            log = {name: value.item() for name, value in res.terms.items()}
            if run.adv is not None and run.adv.active(step) and d_step:
                d = run.loss_fn.discriminator_loss(out, x, step=step)  # x_hat detached inside
                run.d_opt.zero_grad(set_to_none=True)  # L_G's backward reached D's weights too
                d.total.backward()
                run.d_opt.step()
                log.update({name: value.item() for name, value in d.terms.items()})
            return log


        def train(adversarial):
            run = build(adversarial)
            gen = torch.Generator().manual_seed(SEED)  # the same batches for both runs
            history = []
            run.vae.train()
            t = time.perf_counter()
            for step in range(STEPS):
                x = x_train[torch.randint(len(x_train), (BATCH,), generator=gen)]
                history.append(train_step(run, x, step))
            print(f"{'with' if adversarial else 'without'} the adversarial term: {time.perf_counter() - t:.0f} s, "
                  f"last batch bce {history[-1]['bce']:.4f}")  # fmt: skip
            run.vae.eval()
            return run, history
        '''
    ),
    code(
        """
        runs, histories = {}, {}
        for name, adversarial in (("without", False), ("with", True)):
            runs[name], histories[name] = train(adversarial)
        pairs = zip(histories["without"][:START], histories["with"][:START])
        same = all(a["bce"] == b["bce"] for a, b in pairs)
        print(f"the same run until step {START}: {same}")
        """
    ),
    md(
        """
        ## Side by side

        Test images, then each run's reconstructions (the decoded posterior means); below,
        samples from N(0, I) decoded by each model, from the same latents. Look at edges
        (collars, soles, straps), prints and logos, and at how flat the interiors are.
        """
    ),
    code(
        """
        n_show = 10
        with torch.no_grad():
            recons = {name: run.vae.reconstruct(x_test) for name, run in runs.items()}
            samples = {
                name: run.vae.sample(N_TEST, generator=torch.Generator().manual_seed(1))
                for name, run in runs.items()
            }
        grids = {
            "test images": x_test[:n_show],
            "reconstructions, without": recons["without"][:n_show],
            "reconstructions, with the adversarial term": recons["with"][:n_show],
            "samples, without": samples["without"][:n_show],
            "samples, with the adversarial term": samples["with"][:n_show],
        }
        fig, axes = plt.subplots(len(grids), 1, figsize=(8, 1.1 * len(grids)), dpi=100)
        for ax, (title, images) in zip(axes, grids.items()):
            ax.imshow(vk.viz.make_grid(images, nrow=n_show)[0], cmap="gray", vmin=0, vmax=1)
            ax.set_axis_off()
            ax.set_title(title, fontsize=8, loc="left")
        plt.tight_layout()
        plt.show()
        show(vk.viz.reconstruction_grid(x_test[:8], recons["with"][:8], nrow=8, upscale=2),
             "test images and reconstructions with the adversarial term, enlarged")  # fmt: skip
        """
    ),
    md(
        """
        ## Where the detail goes: power spectra

        Blur is missing high frequencies. `vk.viz.plot_spectrum` draws the radially averaged
        power spectrum (`vk.metrics.radial_power_spectrum`) of each set against the test
        images', and below, each one's power divided by theirs: 1 is as much detail as the data
        at that frequency, a curve that sinks towards 0.5 cycles/pixel is blur.
        """
    ),
    code(
        """
        fig = vk.viz.plot_spectrum(
            {"test images": x_test, "without": recons["without"], "with adversarial": recons["with"]},
            title="reconstructions",
        )
        plt.show()
        fig = vk.viz.plot_spectrum(
            {"test images": x_test, "without": samples["without"], "with adversarial": samples["with"]},
            title="samples from N(0, I)",
        )
        plt.show()
        spectra = {name: vk.metrics.radial_power_spectrum(images) for name, images in
                   {"test images": x_test, **{f"recon {k}": v for k, v in recons.items()}}.items()}  # fmt: skip
        high = lambda s: s.power[s.frequency >= 0.25].mean().item()  # the upper half of the band
        high_power = {name: high(s) / high(spectra["test images"]) for name, s in spectra.items()}
        print("power at 0.25-0.5 cycles/pixel, relative to the test images:",
              {k: round(v, 3) for k, v in high_power.items()})  # fmt: skip
        """
    ),
    md(
        """
        ## The discriminator at work

        Left, the reconstruction loss of both runs (identical until the dotted line at `START`).
        Middle, the adaptive weight λ: the factor that makes the adversarial gradient at the
        decoder's last layer half the reconstruction's. Right, the discriminator's mean logit
        on real and on reconstructed batches: the hinge loss stops pushing once real logits
        pass +1 and fake ones −1. Curves are running means over 10 steps.
        """
    ),
    code(
        """
        def smooth(values, k=10):
            return [statistics.fmean(values[max(0, i - k + 1) : i + 1]) for i in range(len(values))]


        on = histories["with"][START:]
        steps_on = range(START, STEPS)
        fig, axes = plt.subplots(1, 3, figsize=(12, 3))
        for name, history in histories.items():
            axes[0].plot(smooth([h["bce"] for h in history]), label=f"{name} adversarial")
        axes[0].set_ylabel("bce per pixel")
        axes[1].plot(steps_on, smooth([h["adv_weight"] for h in on]))
        axes[1].set_yscale("log")
        axes[1].set_ylabel("adaptive weight λ")
        axes[2].plot(steps_on, smooth([h["logits_real"] for h in on]), label="D(x), real")
        axes[2].plot(steps_on, smooth([h["logits_fake"] for h in on]), label="D(x̂), reconstructed")
        axes[2].axhline(0, color="grey", lw=0.5)
        axes[2].set_ylabel("mean logit")
        for ax in axes:
            ax.axvline(START, color="grey", ls=":")
            ax.set_xlabel("step")
        axes[0].legend()
        axes[2].legend()
        plt.tight_layout()
        plt.show()
        tenth = max(1, len(on) // 10)  # the first and the last tenth of the adversarial phase
        dynamics = {
            "adv_weight_first": statistics.fmean(h["adv_weight"] for h in on[:tenth]),
            "adv_weight_last": statistics.fmean(h["adv_weight"] for h in on[-tenth:]),
            "logits_real_last": statistics.fmean(h["logits_real"] for h in on[-tenth:]),
            "logits_fake_last": statistics.fmean(h["logits_fake"] for h in on[-tenth:]),
        }
        print(json.dumps(dynamics, indent=2))
        """
    ),
    md(
        """
        ## The cost

        Each adversarial step does more work: the VAE's step also runs D on x̂, backpropagates
        through it and takes two extra gradients at the last layer for λ; then D's own step
        runs it on a real and a reconstructed batch. Timings taken during training would
        compare two runs made at different moments, and a busy machine can slow either one, so
        this cell times steps of fresh models *interleaved*: in each round one step of the plain
        recipe, one adversarial step without D's step and one with it, at a step where the term
        is on; medians over the rounds.
        """
    ),
    code(
        """
        timed = {"without": build(False), "with, no D step": build(True), "with": build(True)}
        x = x_train[:BATCH]
        seconds = {name: [] for name in timed}
        for i in range(TIMED + 1):  # the first round warms up
            for name, run in timed.items():
                t = time.perf_counter()
                train_step(run, x, START, d_step=name != "with, no D step")
                if i:
                    seconds[name].append(time.perf_counter() - t)
        ms_per_step = {name: 1000 * statistics.median(s) for name, s in seconds.items()}
        for name, ms in ms_per_step.items():
            print(f"{name:16s}{ms:7.1f} ms/step  ({ms / ms_per_step['without']:.2f}x)")
        """
    ),
    md(
        """
        ## The numbers

        - **Sharpness ratio**: the variance of the Laplacian of reconstructions (or samples)
          over that of the test images. Below 1 is blurrier than the data; above 1 is added
          high-frequency content, detail or artifacts (look at the pictures).
        - **PSNR** of reconstructions: the mean squared pixel error in decibels. It does not
          single out blur; a sharp edge a pixel off costs more than a blurred one.
        - **FD** of reconstructions and of N(0, I) samples to the test images, in the
          classifier's feature space (lower is better; the floor is printed above).
        """
    ),
    code(
        """
        def ratio(images):
            return vk.metrics.image_stats(images).mean()["sharpness"] / real_sharpness


        results = {
            name: {
                "psnr_db": vk.metrics.psnr(recons[name], x_test).item(),
                "sharpness_recon": ratio(recons[name]),
                "sharpness_samples": ratio(samples[name]),
                "fd_recon": fd(recons[name]),
                "fd_samples": fd(samples[name]),
                "kl_nats": vk.metrics.kl_per_dim(runs[name].vae, x_test).sum().item(),
            }
            for name in runs
        }
        header = ("PSNR dB", "sharp rec", "sharp smp", "FD rec", "FD smp", "KL nats")
        print(f"{'':22s}" + "".join(f"{h:>10s}" for h in header))
        for name, r in results.items():
            print(f"{name + ' adversarial':22s}" + "".join(f"{v:10.3f}" for v in r.values()))
        print(f"{'real test images':22s}{'':10s}{1:10.3f}{1:10.3f}{floor:10.3f}{floor:10.3f}   <- FD floor")
        w, wo = results["with"], results["without"]
        print()
        print(f"with vs without: PSNR {w['psnr_db'] - wo['psnr_db']:+.2f} dB, "
              f"reconstructions x{w['sharpness_recon'] / wo['sharpness_recon']:.2f} sharper, "
              f"samples x{w['sharpness_samples'] / wo['sharpness_samples']:.2f} sharper, "
              f"FD of reconstructions x{w['fd_recon'] / wo['fd_recon']:.2f}, "
              f"FD of samples x{w['fd_samples'] / wo['fd_samples']:.2f}, "
              f"step time x{ms_per_step['with'] / ms_per_step['without']:.2f}")  # fmt: skip
        """
    ),
    md(
        """
        ## Reading the numbers

        The figures quoted here are ranges over our runs: the small size with 5 seeds on the
        CPU's fastest kernels and 3 on PyTorch's generic ones (`ATEN_CPU_CAPABILITY=default`),
        and the full size once. Compare them with what your run printed.

        - **One run until the term starts.** `same_until_start` is True: the two runs share
          the weights, the batches and the noise until `START`, so every difference below is
          the adversarial term's doing.
        - **Sharper reconstructions.** Their sharpness ratio is two and a half to three and a
          half times the plain run's (0.24 → 0.62 at full size), and the power in the upper
          half of the spectrum, 0.25 to 0.5 cycles/pixel, several times higher (3 to 9
          times). Both stay below the test images': less blurred, not as sharp as the data.
        - **Closer to the data, not just noisier.** The FD of the reconstructions falls to
          half of the plain run's or less (0.40 to 0.51 of it; 0.23 at full size): the
          classifier sees the added detail as Fashion-MNIST detail, not as noise.
        - **PSNR hardly moves.** It stays within about a dB of the plain run's, a little lower
          in most runs (−0.8 to +0.5 dB; −0.1 dB at full size), and the reconstruction loss
          curves all but overlap: a sharp edge a pixel off costs more squared error than a
          blurred one, so some loss of PSNR is the expected price of sharpness.
        - **Samples from N(0, I) are sharper too** (1.6 to 3.6 times the plain run's
          sharpness ratio), and their FD is no worse (lower in all our runs), but it stays
          far above the reconstructions': the decoder got sharper, while the holes between
          the prior and the latents (notebook 04) are still there. A fitted prior is the
          other half of good samples.
        - **The discriminator wins, and λ follows.** D's mean logits part soon after `START`,
          positive on real batches and negative on reconstructions, about ±1.5 by the end
          (1.4 to 1.9 in our runs, past the hinge's margin of 1): on average the decoder
          does not fool D, and still gets sharper from its gradient. As D grows confident,
          the gradient of L_G at the decoder's last layer grows against the reconstruction's,
          and λ falls to keep the adversarial push at half of it: 6 to 13 times lower in the
          last tenth of the adversarial phase than in its first.
        - **The cost.** An adversarial step took about 1.5 times a plain one (1.4 to 1.6
          times): 25 to 60% of the extra on the VAE's side (D's forward and backward
          through x̂, the two gradients behind λ), the rest in D's own step.

        These are short runs of a small model: check the effect at your model's size and
        budget the same way, with the same seed and batches. Notebook 03 compares the
        loss-side levers against blur (SSIM, FFT and perceptual terms next to L1).
        """
    ),
    code(
        """
        metrics = {
            "steps": STEPS, "batch": BATCH, "start": START, "same_until_start": same,
            "real_sharpness": real_sharpness, "fd_floor": floor, "runs": results,
            "high_power": high_power, "dynamics": dynamics, "ms_per_step": ms_per_step,
        }  # fmt: skip
        print(json.dumps(metrics, indent=2))
        """,
        tags=("metrics",),
    ),
]

NOTEBOOKS = {
    "01-quickstart.ipynb": QUICKSTART,
    "02-diagnosing-collapse-and-ghosting.ipynb": COLLAPSE,
    "03-choosing-a-reconstruction-loss.ipynb": LOSSES,
    "04-priors.ipynb": PRIORS,
    "05-sharp-images.ipynb": SHARP,
}


def build(name: str) -> nbformat.NotebookNode:
    """The notebook `name` (a key of NOTEBOOKS), without outputs, with stable cell ids."""
    cells, seen = [], set()
    for kind, source, tags in NOTEBOOKS[name]:
        digest = hashlib.sha1(f"{kind}\0{source}".encode()).hexdigest()[:12]
        if digest in seen:
            raise ValueError(f"{name}: two identical cells; make them differ")
        seen.add(digest)
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = make(source, id=digest)
        if tags:
            cell.metadata["tags"] = tags
        cells.append(cell)
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    nbformat.validate(nb)
    return nb


def render(name: str) -> str:
    """The exact file text of a notebook, as committed."""
    return nbformat.writes(build(name)) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only report notebooks that differ")
    args = ap.parse_args(argv)
    stale = []
    for name in NOTEBOOKS:
        path, text = HERE / name, render(name)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text)
    verb = "differ from _build.py" if args.check else "written"
    print(f"{len(stale)} notebook(s) {verb}" + (f": {', '.join(stale)}" if stale else ""))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
