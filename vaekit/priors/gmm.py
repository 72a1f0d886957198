"""An ex-post Gaussian mixture prior fitted by EM on a trained VAE's latents.

Ghosh et al. 2020 ("From variational to deterministic autoencoders") fit a Gaussian mixture
to the latents after training and sample from it instead of N(0, I): the samples land where
the decoder was trained. The fit is expectation-maximisation (Dempster et al. 1977) written
in torch, as scikit-learn's ``GaussianMixture`` does it:

- initialisation: k-means++ seeding (Arthur & Vassilvitskii 2007) from a seeded generator,
  then Lloyd iterations (on a subsample of 20,000 latents at most); the hard assignments of
  all latents give the first M-step;
- E-step in the log domain: responsibilities ``log r_nk = log pi_k + log N(x_n; mu_k, S_k)
  - logsumexp_k(...)``, with the Mahalanobis term through the Cholesky factor of S_k;
- M-step: weighted means and covariances, ``S_k += reg * I`` (a floor that keeps S_k
  positive definite when a component collapses onto a few points);
- stop when the mean log-likelihood per latent *dimension* changes by less than ``tol`` nats
  (the unit of ``fit_report``: one threshold that means the same on 32-d and 256-d latents,
  where a per-latent one keeps a 256-d mixture creeping for hundreds of iterations).

The EM runs on centred latents in float32 by default (``precision="float64"`` for the old
arithmetic; MPS has no float64); a diagonal mixture on CPU always runs in float64, where its
E- and M-steps are GEMMs (faster than float32's blocked squares). Spatial latents are flattened:
the mixture lives on ``prod(latent_shape)`` dims.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence

import torch

from .._validation import check_choice, check_int, check_positive
from ..distributions import _LOG_2PI, _standard_normal
from ._mixture import diagonal_mixture_log_prob
from ._progress import progress_bar
from .base import ExPostPrior, compute_dtype
from .registry import register

__all__ = ["GaussianMixture", "kmeans_plus_plus"]

COVARIANCES = ("full", "diag")
_CHUNK = 1 << 22  # elements of one (rows, K, D) block in the E-step: ~32 MB in float64
_KMEANS_POINTS = 20_000  # k-means initialisation on at most this many latents
# the EM's arithmetic (``precision=``): on centred latents float32 reaches float64's
# log-likelihood to well under 0.1% at twice the speed (benchmarks/priors.py measures it)
_EM_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _choice(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """One index drawn with probabilities ``probs``, from ``generator`` on its own device."""
    device = generator.device if generator is not None else probs.device
    return int(torch.multinomial(probs.to(device), 1, generator=generator))


def kmeans_plus_plus(
    x: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """k-means++ seeding: each new centre drawn with probability proportional to D(x)^2.

    Args:
        x: points (N, D), N >= k.
        k: number of centres.
        generator: for reproducible draws (any device).

    Shape:
        output: (k, D), rows of ``x``.

    Example:
        >>> import torch, vaekit as vk
        >>> x = torch.cat([torch.zeros(5, 2), torch.full((5, 2), 10.0)])
        >>> c = vk.priors.kmeans_plus_plus(x, 2, torch.Generator().manual_seed(0))
        >>> sorted(c[:, 0].tolist())  # one centre in each cluster
        [0.0, 10.0]
    """
    n = x.shape[0]
    check_int(k, "k")
    if n < k:
        raise ValueError(f"k-means++ needs at least k={k} points, got {n}")
    uniform = torch.full((n,), 1.0 / n, dtype=x.dtype, device=x.device)
    centres = [x[_choice(uniform, generator)]]
    d2 = (x - centres[0]).square().sum(1)
    for _ in range(1, k):
        total = d2.sum()
        probs = d2 / total if total > 0 else uniform  # all points on the centres: any will do
        centres.append(x[_choice(probs, generator)])
        d2 = torch.minimum(d2, (x - centres[-1]).square().sum(1))
    return torch.stack(centres)


def _sq_distances(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return (x.square().sum(1, keepdim=True) - 2 * x @ c.T + c.square().sum(1)).clamp_min(0)


@register("gmm", aliases=("gaussian_mixture",))
class GaussianMixture(ExPostPrior):
    fit_attributes = (*ExPostPrior.fit_attributes, "n_iter", "converged")

    """A K-component Gaussian mixture on (flattened) latents, fitted by EM.

    Temperature: scales each component's spread, ``z = mu_k + temperature * L_k eps`` with
    ``S_k = L_k L_k^T`` (``k`` drawn from the weights; temperature 0 gives the means).

    After :meth:`fit`: ``history`` holds the mean log-likelihood per latent (nats) at each
    E-step (never decreasing, up to ``reg``'s floor), ``converged`` and ``n_iter`` say how
    it ended. The parameters are buffers: ``log_weights`` (K,), ``means`` (K, D) and
    ``scale_tril`` (K, D, D) for ``"full"`` or ``scales`` (K, D) for ``"diag"``.

    Args:
        components: number of components K.
        covariance: ``"full"`` (K·D² parameters, the better fit; an EM iteration costs
            about N·K·D² multiply-adds, ~0.2 s for 60,000 × 32 latents and K = 10 on one
            CPU thread, so prefer ``"diag"`` for large spatial latents, D in the hundreds)
            or ``"diag"``.
        reg: added to the covariances' diagonal (latent units squared).
        tol: stop when the mean log-likelihood per latent dimension changes by less (nats
            per dim, the unit of ``fit_report``).
        max_iter: at most this many EM iterations (a warning if it did not converge).
        kmeans_iter: at most this many Lloyd iterations after k-means++ seeding.
        precision: the EM's arithmetic for a full covariance, ``"float32"`` (on centred
            latents: float64's log-likelihood at a fraction of the time) or ``"float64"``;
            a diagonal one runs in float64 on CPU whatever this says (it is faster there).
        latent_shape: ``(D,)`` or ``(C, h, w)``; ``None``: taken from the first ``fit``.

    Example:
        >>> import torch, vaekit as vk
        >>> g = torch.Generator().manual_seed(0)
        >>> latents = torch.cat([torch.randn(200, 2, generator=g) - 4,
        ...                      torch.randn(200, 2, generator=g) + 4])
        >>> gmm = vk.priors.GaussianMixture(components=2).fit(latents, generator=g,
        ...                                                   progress=False)
        >>> gmm.means.abs().round().tolist()
        [[4.0, 4.0], [4.0, 4.0]]
        >>> gmm.sample(5, generator=g).shape, gmm.log_prob(latents[:3]).shape
        (torch.Size([5, 2]), torch.Size([3]))
    """

    def __init__(
        self,
        components: int = 10,
        covariance: str = "full",
        *,
        reg: float = 1e-6,
        tol: float = 2e-5,
        max_iter: int = 200,
        kmeans_iter: int = 20,
        precision: str = "float32",
        latent_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.components = check_int(components, "components")
        check_choice(covariance, COVARIANCES, "covariance")
        self.covariance = covariance
        check_positive(reg, "reg", strict=False)
        check_positive(tol, "tol", strict=False)
        self.reg, self.tol = float(reg), float(tol)
        self.max_iter = check_int(max_iter, "max_iter", 0)
        self.kmeans_iter = check_int(kmeans_iter, "kmeans_iter", 0)
        check_choice(precision, tuple(_EM_DTYPES), "precision")
        self.precision = precision
        self.converged = False
        self.n_iter = 0
        if latent_shape is not None:
            self.setup(latent_shape)

    def _build(self, latent_shape: tuple[int, ...]) -> None:
        k, d = self.components, math.prod(latent_shape)
        kw = {"device": self.device, "dtype": self.dtype}
        self.register_buffer("log_weights", torch.full((k,), -math.log(k), **kw))
        self.register_buffer("means", torch.zeros(k, d, **kw))
        if self.covariance == "full":
            self.register_buffer("scale_tril", torch.eye(d, **kw).repeat(k, 1, 1))
        else:
            self.register_buffer("scales", torch.ones(k, d, **kw))

    # -- EM ---------------------------------------------------------------------------------
    def _component_log_prob(
        self, x: torch.Tensor, means: torch.Tensor, chol: torch.Tensor
    ) -> torch.Tensor:
        """log N(x_n; mu_k, S_k) for every n, k: (N, K). ``chol``: (K, D, D) or diag (K, D)."""
        d = x.shape[1]
        if chol.ndim == 2:
            log_det = chol.log().sum(1)
            if x.dtype == torch.float64:  # expand the square into matmuls: exact enough here
                prec = chol.square().reciprocal()  # (K, D)
                maha = (
                    x.square() @ prec.T - 2 * x @ (means * prec).T + (means.square() * prec).sum(1)
                ).clamp_min(0)
            else:  # float32 would cancel in the expansion: the squares themselves, in blocks
                inv = chol.reciprocal()
                rows = max(1, _CHUNK // (chol.shape[0] * d))
                maha = torch.cat([
                    ((b[:, None] - means) * inv).square_().sum(-1) for b in x.split(rows)
                ])  # fmt: skip
            return -0.5 * (d * _LOG_2PI + maha) - log_det
        # y_nk = L_k^{-1} (x_n - mu_k) = x_n @ L_k^{-T} - mu_k @ L_k^{-T}: one GEMM for all k
        eye = torch.eye(d, dtype=x.dtype, device=x.device).expand_as(chol)
        prec_chol = torch.linalg.solve_triangular(chol, eye, upper=False).transpose(1, 2)
        k = chol.shape[0]
        shift = torch.einsum("kd,kde->ke", means, prec_chol)  # (K, D)
        flat = prec_chol.permute(1, 0, 2).reshape(d, k * d)
        log_det = chol.diagonal(dim1=1, dim2=2).log().sum(1)  # (K,)
        out = []
        rows = max(1, _CHUNK // (k * d))
        for block in x.split(rows):
            y = (block @ flat).view(-1, k, d).sub_(shift).square_()
            out.append(-0.5 * (d * _LOG_2PI + y.sum(-1)) - log_det)
        return torch.cat(out)

    def _m_step(
        self, x: torch.Tensor, resp: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Weighted ML estimates from responsibilities (N, K) -> (log pi, means, chol)."""
        n, d = x.shape
        nk = resp.sum(0) + 10 * torch.finfo(x.dtype).eps  # an empty component stays finite
        means = (resp.T @ x) / nk[:, None]
        if self.covariance == "diag":
            if x.dtype == torch.float64:
                var = (resp.T @ x.square()) / nk[:, None] - means.square()
            else:  # centred per component (float32 would cancel in E[x^2] - mu^2)
                var = torch.stack([
                    resp[:, k] @ (x - means[k]).square() for k in range(self.components)
                ]) / nk[:, None]  # fmt: skip
            chol = (var.clamp_min(0) + self.reg).sqrt()
        else:
            eye = torch.eye(d, dtype=x.dtype, device=x.device)
            covs = []
            for k in range(self.components):
                # E_r[(x - mu)(x - mu)^T], centred before the GEMM: exact enough in float32,
                # where E_r[x x^T] - mu mu^T would cancel
                c = x - means[k]
                cov = c.T @ (c * resp[:, k, None]) / nk[k]
                covs.append(0.5 * (cov + cov.T) + self.reg * eye)
            covs = torch.stack(covs)
            chol, info = torch.linalg.cholesky_ex(covs)
            if bool(info.any()) and covs.dtype == torch.float32 and covs.device.type != "mps":
                # a near-singular covariance (a component on few latents): factor it in float64
                chol, info = torch.linalg.cholesky_ex(covs.double())
                chol = chol.float()
            if bool(info.any()):
                bad = int(torch.nonzero(info)[0])
                raise ValueError(
                    f"the covariance of component {bad} is not positive definite (too few or "
                    f"collinear latents in it): increase reg (now {self.reg:g}), use fewer "
                    "components or covariance='diag'"
                )
        return (nk / n).log(), means, chol

    def _kmeans(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Hard assignments (N,): k-means++ seeding and Lloyd iterations on a subsample of
        at most ``_KMEANS_POINTS`` latents (in float32: a starting point needs no more)."""
        n = x.shape[0]
        sub = x
        if n > _KMEANS_POINTS:
            device = generator.device if generator is not None else x.device
            idx = torch.randperm(n, generator=generator, device=device)[:_KMEANS_POINTS]
            sub = x[idx.to(x.device)]
        sub = sub.float() if x.device.type != "mps" else sub
        centres = kmeans_plus_plus(sub, self.components, generator)
        labels = _sq_distances(sub, centres).argmin(1)
        for _ in range(self.kmeans_iter):
            counts = torch.bincount(labels, minlength=self.components).to(sub.dtype)
            sums = torch.zeros_like(centres).index_add_(0, labels, sub)
            # an emptied cluster keeps its old centre
            centres = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centres)
            new = _sq_distances(sub, centres).argmin(1)
            if torch.equal(new, labels):
                break
            labels = new
        return _sq_distances(x, centres.to(x.dtype)).argmin(1)

    def fit(
        self,
        latents: torch.Tensor,
        *,
        val_fraction: float = 0.1,
        generator: torch.Generator | None = None,
        progress: bool = True,
    ) -> GaussianMixture:
        """Fit by EM on latents ``(N, *latent_shape)`` (N >= components); returns ``self``.

        A seeded ``val_fraction`` of the latents is held out of the fit: ``fit_report`` gives
        the mean log-likelihood per dimension on the fit latents and on those (a
        ``RuntimeWarning`` when the mixture memorised its latents). Before fitting, a
        ``RuntimeWarning`` when a full covariance has fewer latents per component than
        dimensions (N/K < D: its covariances cannot be estimated, only floored by ``reg``).

        Args:
            latents: e.g. posterior means from :func:`vaekit.priors.encode_dataset`.
            val_fraction: the share held out for ``fit_report`` (0: fit on all of them).
            generator: seeds the split and the k-means++ initialisation (any device).
            progress: show a progress bar of the EM iterations.
        """
        t0 = time.perf_counter()
        latents = self._check_fit_latents(latents, minimum=self.components).flatten(1)
        train, val = self._split_for_fit(latents, val_fraction, generator, minimum=self.components)
        n, d = train.shape
        if self.covariance == "full" and n < self.components * d:
            warnings.warn(
                f"GaussianMixture({self.components}, 'full') on {n} latents of {d} dims: "
                f"{n // self.components} latents per component for a {d}x{d} covariance, too "
                "few to estimate it (it will overfit); use covariance='diag', fewer components "
                f"(at most {max(1, n // d)}), or more latents",
                RuntimeWarning,
                stacklevel=2,
            )
        dtype = _EM_DTYPES[self.precision]
        if self.covariance == "diag" and train.device.type == "cpu":
            # a diagonal EM is three GEMMs an iteration in float64 (the expansion of the
            # squares is exact enough there), where float32 must form the squares in blocks:
            # on CPU float64 is both exact and faster (5.7x on 54,000 x 256 latents, K = 100)
            dtype = torch.float64
        acc = torch.float32 if train.device.type == "mps" else torch.float64
        if dtype == torch.float64 and train.device.type == "mps":
            raise ValueError("precision='float64' is not available on MPS; use 'float32'")
        centre = train.to(acc).mean(0)  # EM on centred latents: float32-safe
        x = (train.to(acc) - centre).to(dtype)
        labels = self._kmeans(x, generator)
        resp = torch.nn.functional.one_hot(labels, self.components).to(dtype)
        log_pi, means, chol = self._m_step(x, resp)
        history: list[float] = []
        converged = False
        bar = progress_bar(self.max_iter, "GaussianMixture EM", progress)
        try:
            for it in range(self.max_iter + 1):
                log_joint = self._component_log_prob(x, means, chol) + log_pi
                log_norm = torch.logsumexp(log_joint, dim=1, keepdim=True)
                history.append(float(log_norm.double().mean()))
                if it > 0:
                    bar.update(1)
                    bar.set_postfix_str(f"loglik/latent={history[-1]:.4f}")
                    if abs(history[-1] - history[-2]) < self.tol * d:
                        converged = True
                        break
                if it == self.max_iter:
                    break
                log_pi, means, chol = self._m_step(x, (log_joint - log_norm).exp())
        finally:
            bar.close()
        if not converged and self.max_iter > 0:
            warnings.warn(
                f"GaussianMixture EM did not converge in max_iter={self.max_iter} iterations "
                f"(last change {(history[-1] - history[-2]) / d:.3g} nats per dim > "
                f"tol={self.tol:g}); raise max_iter or tol",
                RuntimeWarning,
                stacklevel=2,
            )
        with torch.no_grad():
            self.log_weights.copy_(log_pi)
            self.means.copy_(means.to(acc) + centre)
            (self.scale_tril if self.covariance == "full" else self.scales).copy_(chol)
        self.history, self.converged, self.n_iter = history, converged, len(history) - 1
        self._set_fitted()
        self._report_fit(train, val, time.perf_counter() - t0)
        return self

    def _overfit_fix(self) -> str:
        fixes = "fewer components"
        if self.covariance == "full":
            fixes += ", covariance='diag'"
        return f"use {fixes}, a larger reg (now {self.reg:g}) or vk.priors.select"

    # -- density and sampling ---------------------------------------------------------------
    def _chol(self) -> torch.Tensor:
        return self.scale_tril if self.covariance == "full" else self.scales

    def _log_prob(self, z: torch.Tensor) -> torch.Tensor:
        dtype = compute_dtype(z, self.means)
        x = z.flatten(1).to(dtype)
        chol, means = self._chol().to(dtype), self.means.to(dtype)
        log_weights = torch.log_softmax(self.log_weights.to(dtype), 0)  # robust to edits
        if self.covariance == "full":
            # solve instead of inverting: L_k^{-1}(z - mu_k) for every k and z
            diff = (x[None] - means[:, None]).transpose(1, 2)  # (K, D, B)
            y = torch.linalg.solve_triangular(chol, diff, upper=False)
            log_det = chol.diagonal(dim1=1, dim2=2).log().sum(1)
            d = x.shape[1]
            log_comp = (-0.5 * (d * _LOG_2PI + y.square().sum(1)) - log_det[:, None]).T
            return torch.logsumexp(log_comp + log_weights, dim=1)
        return diagonal_mixture_log_prob(x, means, 2 * chol.log(), log_weights)

    def _sample(
        self, n: int, temperature: float, generator: torch.Generator | None
    ) -> torch.Tensor:
        shape = self._require_shape()
        k = torch.multinomial(
            self.log_weights.float().exp(), n, replacement=True, generator=generator
        )
        eps = _standard_normal((n, self.means.shape[1]), self.device, self.dtype, generator)
        if self.covariance == "diag":
            z = self.means[k] + (temperature * self.scales[k]) * eps
        else:
            z = torch.empty_like(eps)
            for c in range(self.components):  # per component: no (n, D, D) gather
                idx = (k == c).nonzero().squeeze(1)
                z[idx] = self.means[c] + temperature * (eps[idx] @ self.scale_tril[c].T)
        return z.view(n, *shape)

    def config(self) -> dict:
        return {
            **super().config(),
            "components": self.components,
            "covariance": self.covariance,
            "reg": self.reg,
            "tol": self.tol,
            "max_iter": self.max_iter,
            "kmeans_iter": self.kmeans_iter,
            "precision": self.precision,
        }
