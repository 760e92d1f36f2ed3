"""Posterior diagnostics and model comparison with ArviZ.

Four questions about a trained story, each answered by one function:

- *What did the guide infer?* :func:`to_inference_data` turns draws of the guide's latent
  sites, the pointwise log-likelihood and the importance log-weights into an ArviZ
  ``InferenceData`` (groups ``posterior``, ``log_likelihood``, ``observed_data``,
  ``sample_stats``; dims ``obs`` and ``z_dim``), saved with ``.to_netcdf()``.
- *Is the guide good enough as an importance proposal?* :func:`guide_quality`: Pareto k̂
  (PSIS) of the weights p(x, z) / q(z | x) per data point, their effective sample size,
  and the IWAE gap.
- *How far is the guide from the true posterior?* :func:`nuts_posterior`: NUTS on the
  code of one data point with the decoder fixed, r-hat / ESS, and a per-dimension
  Wasserstein distance between the guide's and NUTS's marginals.
- *Which model is better, with uncertainty?* :func:`compare_pointwise`: elpd per model
  from held-out pointwise log-likelihoods, differences and their standard errors (what
  ``probgen compare`` prints).

Plus the GMM's exact posterior over the assignment (:func:`gmm_responsibilities`) and a
fully Bayesian GMM fitted by NUTS that shows label switching (:func:`bayesian_gmm_nuts`).

ArviZ is imported only here and only inside functions. The differences between ArviZ
0.23 (``InferenceData``, Python 3.11) and ArviZ 1.x (``arviz_base`` / ``arviz_stats``,
``xarray.DataTree``) are confined to the ``_az_*`` helpers at the bottom of this file.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample

from .evaluate import log_weights

__all__ = [
    "to_inference_data",
    "save_inference_data",
    "load_inference_data",
    "guide_quality",
    "GuideQuality",
    "pareto_khat",
    "khat_counts",
    "nuts_posterior",
    "NutsResult",
    "compare_pointwise",
    "gmm_responsibilities",
    "bayesian_gmm_nuts",
    "BayesGMMResult",
    "KHAT_BINS",
]

#: k̂ bins of the issue / of Vehtari et al.: good, ok (PSIS still works), bad
KHAT_BINS = ((-math.inf, 0.5, "good"), (0.5, 0.7, "ok"), (0.7, math.inf, "bad"))


# ---------------------------------------------------------------------------------------
# InferenceData from a guide
# ---------------------------------------------------------------------------------------
def _particle_traces(model, x: torch.Tensor, num_samples: int, y=None):
    """Guide and replayed model traces with K particles in a plate left of the model's plates."""
    dim = -(getattr(model, "max_plate_nesting", 1) + 1)
    with torch.no_grad(), pyro.plate("iwae_particles", num_samples, dim=dim):
        guide_tr = poutine.trace(model.guide).get_trace(x, y)
        model_tr = poutine.trace(poutine.replay(model.model, trace=guide_tr)).get_trace(x, y)
    guide_tr.compute_log_prob()
    model_tr.compute_log_prob()
    return guide_tr, model_tr


def _is_latent(site) -> bool:
    return (site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
            and not site.get("is_observed_param", False))


def _to_kn(t: torch.Tensor, k: int, n: int) -> torch.Tensor:
    """Reduce a per-site log-prob to ``[K, n]`` (sum extra batch dims, broadcast missing ones)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    while t.dim() > 2:
        t = t.sum(-1)
    if t.dim() < 2:
        t = t.reshape(-1, 1) if t.dim() == 1 and t.numel() == k else t.reshape(1, -1) if t.dim() == 1 else t.reshape(1, 1)
    return t.expand(k, n)


def _latent_dims(name: str, event_shape: Sequence[int]) -> list[str]:
    if len(event_shape) == 0:
        return []
    if len(event_shape) == 1:
        return [f"{name}_dim"]
    return [f"{name}_dim_{i}" for i in range(len(event_shape))]


def to_inference_data(model, x, *, num_samples: int = 100, y=None, index: Sequence[int] | None = None,
                      chunk_size: int | None = None):
    """Draws of the guide's latent sites for each data point, as ArviZ ``InferenceData``.

    Groups (every variable carries ``chain`` = 1 and ``draw`` = K dims first):

    - ``posterior``: each latent site of the guide, e.g. ``z`` with dims ``(obs, z_dim)``:
      K independent draws from the amortized guide q(z | x_i).
    - ``log_likelihood``: each observed site of the model, e.g. ``x`` with dims ``(obs,)``:
      log p(x_i | z) per draw (nats, summed over pixels).
    - ``observed_data``: the data, dims ``(obs, <site>_dim)``.
    - ``sample_stats``: ``log_weight`` = log p(x_i, z) − log q(z | x_i), dims ``(obs,)``,
      the importance log-weights whose log-mean-exp is the IWAE estimate.

    :param model: a story with ``model``/``guide`` and at least one latent site in the guide.
    :param x: data ``[n, ...]``.
    :param num_samples: K draws per data point.
    :param y: labels for conditional models.
    :param index: coordinate values of ``obs`` (e.g. the test-set indices); default 0..n-1.
    :param chunk_size: data points per batch (default: from a memory budget).
    :return: ``arviz.InferenceData`` (ArviZ 0.23) or ``xarray.DataTree`` (ArviZ 1.x).
    :raises ValueError: if the guide has no latent sites (e.g. the enumerated GMM).
    """
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    K = int(num_samples)
    x, y = model.prepare(x, y) if hasattr(model, "prepare") else (torch.as_tensor(x), y)
    x = x.to(getattr(model, "device", "cpu"))
    n = len(x)
    index = np.arange(n) if index is None else np.asarray(index)
    if len(index) != n:
        raise ValueError(f"index has {len(index)} entries for {n} data points")
    chunk_size = chunk_size or _chunk(x, K)
    latents: dict[str, list] = {}
    loglik: dict[str, list] = {}
    observed: dict[str, list] = {}
    lws: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, n, chunk_size):
            xb = x[start:start + chunk_size]
            yb = None if y is None else y[start:start + chunk_size]
            nb = len(xb)
            guide_tr, model_tr = _particle_traces(model, xb, K, yb)
            lw = 0.0
            for name, site in model_tr.nodes.items():
                if site["type"] != "sample" or site_is_subsample(site) or site.get("is_observed_param", False):
                    continue
                lw = lw + _to_kn(site["log_prob"], K, nb)
                if site["is_observed"]:
                    loglik.setdefault(name, []).append(_to_kn(site["log_prob"], K, nb))
                    value = site["value"].detach().reshape(nb, -1)  # obs × values
                    observed.setdefault(name, []).append(value.float())
            for name, site in guide_tr.nodes.items():
                if not _is_latent(site):
                    continue
                lw = lw - _to_kn(site["log_prob"], K, nb)
                value = site["value"].detach()
                if value.dim() < 2 or value.shape[0] != K or value.shape[1] != nb:
                    value = value.expand(K, nb, *value.shape[2:]) if value.dim() >= 2 else value.reshape(K, 1).expand(K, nb)
                latents.setdefault(name, []).append(value.float())  # K × obs × event
            lws.append(lw)
    finally:
        model.train(was_training)
    if not latents:
        raise ValueError(f"{type(model).__name__}'s guide has no latent sites to draw "
                         "(for the GMM use gmm_responsibilities)")
    dims: dict[str, list[str]] = {}
    coords: dict[str, Any] = {"obs": index}
    posterior = {}
    for name, parts in latents.items():
        arr = torch.cat(parts, dim=1).cpu().numpy()[None]  # chain × draw × obs × event
        posterior[name] = arr
        dims[name] = ["obs", *_latent_dims(name, arr.shape[3:])]
    log_lik = {name: torch.cat(p, dim=1).cpu().numpy()[None] for name, p in loglik.items()}
    obs = {}
    for name, parts in observed.items():
        obs[name] = torch.cat(parts, dim=0).cpu().numpy()
        dims.setdefault(name, ["obs", f"{name}_dim"])
    sample_stats = {"log_weight": torch.cat(lws, dim=1).cpu().numpy()[None]}
    dims["log_weight"] = ["obs"]
    attrs = {"probgen_model": str(getattr(model, "kind", type(model).__name__)),
             "proposal": "amortized guide q(z|x)", "num_samples": K}
    return _az_from_dict({"posterior": posterior, "log_likelihood": log_lik, "observed_data": obs,
                          "sample_stats": sample_stats}, dims=dims, coords=coords, attrs=attrs)


def save_inference_data(idata, path: str | Path) -> Path:
    """Write InferenceData / DataTree to netCDF atomically (a reader never sees half a file)."""
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        idata.to_netcdf(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_inference_data(path: str | Path):
    """Read a netCDF file written by ``to_inference_data(...).to_netcdf(path)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return _az_from_netcdf(path)


# ---------------------------------------------------------------------------------------
# Guide quality: PSIS k̂, ESS, IWAE gap
# ---------------------------------------------------------------------------------------
def pareto_khat(log_weights_nk, *, flat_tol: float = 1e-4) -> np.ndarray:
    """Pareto k̂ of importance log-weights, one per row (PSIS via ArviZ).

    :param log_weights_nk: ``[n, K]`` array of log-weights (K samples per data point).
    :param flat_tol: rows whose log-weights span less than this (nats) count as constant.
    :return: ``[n]`` k̂. Rows whose weights are all equal (the proposal *is* the target)
        get ``-inf``: there is no tail at all.
    """
    lw = np.asarray(log_weights_nk, dtype=np.float64)
    if lw.ndim == 1:
        lw = lw[None]
    if lw.ndim != 2 or lw.shape[1] < 2:
        raise ValueError(f"log-weights must be [n, K] with K >= 2, got shape {lw.shape}")
    if not np.isfinite(lw).all():
        raise ValueError("log-weights contain NaN or inf")
    khat = np.asarray(_az_psis_khat(lw), dtype=np.float64).reshape(len(lw))
    # weights equal to within 1e-4 nats (float32 round-off of a constant): no tail to fit,
    # every normalized weight is 1/K ± 0.01%; PSIS on pure round-off noise is meaningless
    khat[(lw.max(1) - lw.min(1)) < flat_tol] = -np.inf
    return khat


def khat_counts(khat) -> dict[str, int]:
    """How many k̂ fall in each bin: ``good`` (< 0.5), ``ok`` (0.5–0.7), ``bad`` (> 0.7)."""
    k = np.asarray(khat, dtype=np.float64)
    return {name: int(((k >= lo) & (k < hi)).sum()) if lo > -math.inf else int((k < hi).sum())
            for lo, hi, name in KHAT_BINS}


@dataclass
class GuideQuality:
    """Per-point importance-sampling diagnostics of a guide (all arrays ``[n]``).

    ``khat``: Pareto k̂; ``ess``: Kish effective sample size of the normalized weights
    (out of ``num_samples``); ``iwae``: log-mean-exp of the log-weights (log p(x) estimate);
    ``elbo``: their mean; ``gap`` = ``iwae − elbo`` ≥ 0 (nats).
    """

    khat: np.ndarray
    ess: np.ndarray
    iwae: np.ndarray
    elbo: np.ndarray
    num_samples: int
    index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    @property
    def gap(self) -> np.ndarray:
        return self.iwae - self.elbo

    def counts(self) -> dict[str, int]:
        return khat_counts(self.khat)

    def summary(self) -> dict:
        """JSON-able numbers: k̂ counts and quantiles, ESS, IWAE gap."""
        k = self.khat
        finite = np.where(np.isfinite(k), k, -1.0)
        return {
            "n": int(len(k)), "num_samples": int(self.num_samples),
            "khat_counts": self.counts(),
            "khat_good_threshold": _good_k(self.num_samples),
            "khat_median": float(np.median(finite)), "khat_max": float(finite.max()),
            "ess_median": float(np.median(self.ess)), "ess_min": float(self.ess.min()),
            "ess_fraction_median": float(np.median(self.ess) / self.num_samples),
            "iwae_mean": float(self.iwae.mean()), "elbo_mean": float(self.elbo.mean()),
            "gap_mean": float(self.gap.mean()), "gap_max": float(self.gap.max()),
            "worst_points": [int(i) for i in self.index[np.argsort(-finite)[:5]]],
        }

    def table(self) -> str:
        """Printable k̂ table (how many points in each bin) plus ESS and gap."""
        c, n = self.counts(), len(self.khat)
        lines = [f"Pareto k̂ of the guide's importance weights ({n} points, K={self.num_samples}):",
                 f"  k̂ < 0.5   (good) {c['good']:>7} {100 * c['good'] / n:6.1f}%",
                 f"  0.5–0.7   (ok)   {c['ok']:>7} {100 * c['ok'] / n:6.1f}%",
                 f"  k̂ > 0.7   (bad)  {c['bad']:>7} {100 * c['bad'] / n:6.1f}%",
                 f"  ESS median {np.median(self.ess):.1f} / {self.num_samples} (min {self.ess.min():.1f})",
                 f"  IWAE − ELBO gap: mean {self.gap.mean():.3f} nats, max {self.gap.max():.3f}"]
        return "\n".join(lines)


def guide_quality(model, x, num_samples: int = 1000, *, y=None, index: Sequence[int] | None = None,
                  chunk_size: int | None = None) -> GuideQuality:
    """Is the guide q(z | x) good enough as an importance proposal for p(z | x)?

    For each data point, draw K codes from the guide, form the importance log-weights
    log p(x, z_k) − log q(z_k | x) and fit a generalized Pareto distribution to the
    largest weights (PSIS, Vehtari et al. 2024, via ``arviz.psislw``). Its shape k̂ says how
    heavy the tail of the weights is:

    - k̂ < 0.5: the weights have finite variance; the IWAE estimate of log p(x) used by
      ``probgen compare`` converges at the usual 1/√K rate and its ± error is honest.
    - 0.5 ≤ k̂ < 0.7: infinite variance but finite mean; the estimate still converges, slowly
      (with K = 1000 ArviZ's own threshold is 1 − 1/log10(K) ≈ 0.67).
    - k̂ > 0.7: the guide is much narrower than (or misplaced against) the true posterior;
      a few huge weights dominate, the IWAE number for that point is unreliable and
      **biased low** — the lower bound is loose and more samples barely help. A model whose
      test points often have k̂ > 0.7 is *under-rated* by ``probgen compare``; the difference
      to an exact-likelihood model (the GMM) is then partly an artefact of the guide. Fix the
      guide (train longer, IWAE objective, richer q) or raise ``--num-samples`` and check
      that the number stops moving.

    :param model: a story whose guide has latent sites (e.g. a VAE).
    :param x: data ``[n, ...]``.
    :param num_samples: K importance samples per point.
    :param y: labels for conditional models.
    :param index: labels of the points (default 0..n-1), used in ``summary()["worst_points"]``.
    :return: :class:`GuideQuality`.
    """
    K = int(num_samples)
    if K < 2:
        raise ValueError(f"num_samples must be >= 2 for k̂, got {num_samples}")
    x, y = model.prepare(x, y) if hasattr(model, "prepare") else (torch.as_tensor(x), y)
    x = x.to(getattr(model, "device", "cpu"))
    n = len(x)
    chunk_size = chunk_size or _chunk(x, K)
    was_training = model.training
    model.eval()
    parts = []
    try:
        for start in range(0, n, chunk_size):
            yb = None if y is None else y[start:start + chunk_size]
            with torch.no_grad():
                parts.append(log_weights(model, x[start:start + chunk_size], K, yb).double().cpu())
    finally:
        model.train(was_training)
    lw = torch.cat(parts, dim=1).T.numpy()  # n × K
    khat = pareto_khat(lw)
    w = np.exp(lw - lw.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    ess = 1.0 / (w**2).sum(1)
    iwae = _logmeanexp(lw)
    return GuideQuality(khat=khat, ess=ess, iwae=iwae, elbo=lw.mean(1), num_samples=K,
                        index=np.arange(n) if index is None else np.asarray(index))


def _chunk(x: torch.Tensor, K: int) -> int:
    """Data points per batch so that one K × batch × x_dim tensor holds ~4M floats on CPU
    (cache-friendly, as in probgen.evaluate) or ~64M on CUDA."""
    budget = 2**26 if x.is_cuda else 2**22
    return max(1, min(len(x), budget // (K * max(1, x[0].numel()))))


def _logmeanexp(a: np.ndarray) -> np.ndarray:
    m = a.max(1, keepdims=True)
    return (m + np.log(np.exp(a - m).mean(1, keepdims=True)))[:, 0]


def _good_k(num_samples: int) -> float:
    """ArviZ's sample-size dependent k̂ threshold, min(1 − 1/log10(S), 0.7)."""
    return float(min(1 - 1 / math.log10(num_samples), 0.7)) if num_samples > 10 else 0.0


# ---------------------------------------------------------------------------------------
# NUTS on one data point's code
# ---------------------------------------------------------------------------------------
@dataclass
class NutsResult:
    """NUTS posterior of one data point's code against the guide.

    ``idata``: ``az.from_pyro`` InferenceData (chains concatenated, dims ``obs``, ``z_dim``);
    ``samples``: ``[chains, draws, d]``; ``guide_samples``: ``[G, d]``; ``rhat``,
    ``ess_bulk``, ``ess_tail``, ``wasserstein`` (W1 guide vs NUTS), ``wasserstein_std``
    (W1 / NUTS sd), ``noise_floor`` (W1 between the two halves of the NUTS draws): ``[d]``.
    """

    idata: Any
    site: str
    samples: np.ndarray
    guide_samples: np.ndarray
    rhat: np.ndarray
    ess_bulk: np.ndarray
    ess_tail: np.ndarray
    wasserstein: np.ndarray
    wasserstein_std: np.ndarray
    noise_floor: np.ndarray
    divergences: int
    seconds: float
    index: int | None = None

    def summary(self) -> dict:
        nuts = self.samples.reshape(-1, self.samples.shape[-1])
        return {
            "index": self.index, "site": self.site, "chains": int(self.samples.shape[0]),
            "draws": int(self.samples.shape[1]), "seconds": round(self.seconds, 2),
            "rhat_max": _finite_or_none(np.nanmax(self.rhat) if np.isfinite(self.rhat).any() else np.nan),
            "ess_bulk_min": float(self.ess_bulk.min()),
            "ess_tail_min": float(self.ess_tail.min()), "divergences": int(self.divergences),
            "wasserstein": [float(v) for v in self.wasserstein],
            "wasserstein_mean": float(self.wasserstein.mean()),
            "wasserstein_std_mean": _finite_or_none(self.wasserstein_std.mean()),
            "noise_floor_mean": float(self.noise_floor.mean()),
            "nuts_mean": [float(v) for v in nuts.mean(0)], "nuts_sd": [float(v) for v in nuts.std(0)],
            "guide_mean": [float(v) for v in self.guide_samples.mean(0)],
            "guide_sd": [float(v) for v in self.guide_samples.std(0)],
        }


def _finite_or_none(v) -> float | None:
    """A number for JSON, or None where it is NaN/inf (e.g. r-hat of a single chain)."""
    v = float(v)
    return v if math.isfinite(v) else None


@contextlib.contextmanager
def _frozen(model):
    """Network weights as constants while NUTS moves only the latent code (4× faster, JIT-able)."""
    model.register_params()  # into the param store now, so later calls do not re-enable grads
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def _single_latent(model, x, y) -> tuple[str, torch.Size]:
    with torch.no_grad():
        tr = poutine.trace(model.guide).get_trace(x, y)
    names = [(name, site["value"].shape) for name, site in tr.nodes.items() if _is_latent(site)]
    if not names:
        raise ValueError(f"{type(model).__name__}'s guide has no latent site to compare with NUTS")
    return names[0] if len(names) == 1 else (None, None)


def nuts_posterior(model, x_i, *, num_chains: int = 4, num_samples: int = 500, warmup_steps: int = 300,
                   y=None, seed: int = 0, guide_samples: int = 4000, jit: bool = True,
                   index: int | None = None, target_accept_prob: float = 0.8,
                   max_tree_depth: int = 8) -> NutsResult:
    """Sample the true posterior p(z | x_i) of one data point by NUTS and hold the guide against it.

    The model's networks stay fixed (their weights are constants); NUTS (``pyro.infer.MCMC``)
    moves only the latent sites of the model given x_i. Chains run one after another with
    their own seeds and are joined into one ``az.from_pyro`` InferenceData. The guide's
    q(z | x_i) is sampled ``guide_samples`` times and compared per latent dimension with the
    1-Wasserstein distance (in units of z, and divided by the NUTS standard deviation).
    ``noise_floor`` is the same distance between two halves of the NUTS draws: a guide
    distance near it means "indistinguishable with this many draws".

    :param model: a story with continuous latent sites (e.g. a VAE).
    :param x_i: one data point, without a batch dimension (``[H, W]`` or ``[x_dim]``).
    :param num_chains: independent chains (r-hat needs ≥ 2).
    :param num_samples: draws kept per chain; ``warmup_steps``: adaptation steps per chain.
    :param y: its label for conditional models.
    :param seed: chain c uses seed ``seed + c``.
    :param jit: compile the potential with the PyTorch JIT (falls back if it fails).
    :return: :class:`NutsResult`.
    """
    from pyro.infer import MCMC, NUTS

    if num_chains < 1 or num_samples < 2 or warmup_steps < 0:
        raise ValueError(f"need num_chains >= 1, num_samples >= 2, warmup_steps >= 0; got "
                         f"{num_chains}, {num_samples}, {warmup_steps}")
    x1 = torch.as_tensor(x_i).unsqueeze(0)  # a batch of one
    x1, y = model.prepare(x1, y) if hasattr(model, "prepare") else (x1, y)
    if len(x1) != 1:
        raise ValueError(f"nuts_posterior takes one data point, got {len(x1)}")
    x1 = x1.to(getattr(model, "device", "cpu"))
    y1 = None if y is None else torch.as_tensor(y).reshape(1)
    site, _ = _single_latent(model, x1, y1)
    if site is None:
        raise ValueError("the guide has several latent sites; nuts_posterior compares one")
    t0 = time.perf_counter()
    fn = poutine.block(model.model, hide_types=["param"])
    idatas, draws, n_div = [], [], 0
    with _frozen(model), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.trace.*is deprecated")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        for c in range(num_chains):
            pyro.set_rng_seed(seed + c)
            mcmc = None
            for use_jit in ((True, False) if jit else (False,)):
                kernel = NUTS(fn, jit_compile=use_jit, ignore_jit_warnings=True,
                              target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth)
                mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, num_chains=1,
                            disable_progbar=True)
                try:
                    mcmc.run(x1, y1)
                    break
                except RuntimeError:
                    if not use_jit:
                        raise
                    pyro.set_rng_seed(seed + c)
            draws.append(mcmc.get_samples()[site].detach().double().cpu().numpy().reshape(num_samples, -1))
            diag = mcmc.diagnostics()
            n_div += sum(len(v) for v in diag.get("divergences", {}).values())
            idatas.append(_az_from_pyro(mcmc, site))
    samples = np.stack(draws)  # chain × draw × d
    idata = _az_concat_chains(idatas)
    rhat, ess_bulk, ess_tail = _az_rhat_ess(samples)
    with torch.no_grad():
        pyro.set_rng_seed(seed + 10_000)
        with pyro.plate("guide_draws", guide_samples, dim=-(getattr(model, "max_plate_nesting", 1) + 1)):
            tr = poutine.trace(model.guide).get_trace(x1, y1)
    g = tr.nodes[site]["value"].detach().double().cpu().numpy().reshape(guide_samples, -1)
    pooled = samples.reshape(-1, samples.shape[-1])
    w1 = _wasserstein(g, pooled)
    half = len(pooled) // 2
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(pooled))
    floor = _wasserstein(pooled[perm[:half]], pooled[perm[half:]])
    sd = pooled.std(0)
    w1_std = np.divide(w1, sd, out=np.full_like(w1, np.nan), where=sd > 0)  # NaN: a stuck chain
    return NutsResult(idata=idata, site=site, samples=samples, guide_samples=g, rhat=rhat,
                      ess_bulk=ess_bulk, ess_tail=ess_tail, wasserstein=w1, wasserstein_std=w1_std,
                      noise_floor=floor, divergences=n_div, seconds=time.perf_counter() - t0, index=index)


def _wasserstein(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.stats import wasserstein_distance

    return np.array([wasserstein_distance(a[:, j], b[:, j]) for j in range(a.shape[1])])


# ---------------------------------------------------------------------------------------
# Model comparison from pointwise held-out log-likelihoods
# ---------------------------------------------------------------------------------------
def compare_pointwise(pointwise: dict, figure: str | Path | None = None) -> dict:
    """Compare models by their expected log predictive density on the same held-out points.

    With held-out data the elpd needs no leave-one-out: elpd = Σ_i log p(x_i) over the test
    points, with standard error √n · sd_i(log p(x_i)). The difference of two models is taken
    point by point, so its standard error √n · sd_i(Δ_i) is much smaller than either model's
    own (the points that are hard for one model are hard for the other). ArviZ's ``compare``
    (fed precomputed ``ELPDData``) supplies the stacking weights and cross-checks the
    differences.

    :param pointwise: model name → ``[n]`` array of log p(x_i) (nats), same points for all.
    :param figure: if given, write a ``plot_compare``-style figure there.
    :return: JSON-able dict: ``models`` (per model ``elpd``, ``se``, ``elpd_per_point``,
        ``se_per_point``, ``elpd_diff``, ``dse``, ``weight`` (stacking; ``None`` if ArviZ could
        not compute it), ``rank``), ``best``, ``n``,
        ``differences`` (each other model vs the best: ``elpd_diff``, ``dse``, ``z`` = −diff/dse,
        ``clear`` = |diff| > 2 dse), and ``text``: a printable table.
    """
    if not isinstance(pointwise, dict) or len(pointwise) < 1:
        raise ValueError("pointwise: expected a dict {model name: [n] log-likelihoods}")
    vals = {}
    for name, v in pointwise.items():
        a = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, dtype=np.float64).reshape(-1)
        if a.size == 0:
            raise ValueError(f"pointwise[{name!r}]: empty")
        if not np.isfinite(a).all():
            raise ValueError(f"pointwise[{name!r}]: contains NaN or inf")
        vals[str(name)] = a
    sizes = {len(a) for a in vals.values()}
    if len(sizes) != 1:
        raise ValueError(f"pointwise: models were scored on different numbers of points "
                         f"({', '.join(f'{k}={len(a)}' for k, a in vals.items())})")
    n = sizes.pop()
    order = sorted(vals, key=lambda k: -vals[k].sum())
    best = order[0]
    models, diffs = {}, {}
    try:
        weights = _az_stacking(vals) if len(vals) > 1 else {best: 1.0}
    except Exception:  # noqa: BLE001 - weights are extra; the elpd table must not fail on them
        weights = {}
    for rank, name in enumerate(order):
        a = vals[name]
        d = a - vals[best]
        dse = float(math.sqrt(n) * d.std(ddof=1)) if n > 1 else float("nan")
        se = float(math.sqrt(n) * a.std(ddof=1)) if n > 1 else float("nan")
        models[name] = {"rank": rank, "elpd": float(a.sum()), "se": se,
                        "elpd_per_point": float(a.mean()), "se_per_point": se / n,
                        "elpd_diff": float(d.sum()), "dse": dse if name != best else 0.0,
                        "weight": float(weights[name]) if name in weights else None}
        if name != best:
            z = float(-d.sum() / dse) if dse > 0 else None  # identical up to a constant
            diffs[name] = {"vs": best, "elpd_diff": float(d.sum()), "dse": dse,
                           "elpd_diff_per_point": float(d.mean()), "z": z, "clear": bool(abs(d.sum()) > 2 * dse)}
    result = {"n": int(n), "best": best, "models": models, "differences": diffs,
              "method": "held-out elpd = Σ log p(x_i); se = √n·sd; dse from pointwise differences",
              "weights_method": "stacking (arviz.compare)"}
    result["text"] = _compare_text(result, order)
    if figure is not None:
        from .plots.diagnostics import plot_compare

        plot_compare(result, figure)
        result["figure"] = str(figure)
    return result


def _compare_text(result: dict, order: list[str]) -> str:
    header = f"{'model':<12}{'rank':>5}{'elpd':>12}{'se':>9}{'elpd_diff':>11}{'dse':>9}{'weight':>8}{'per point':>11}"
    lines = [header, "-" * len(header)]
    for name in order:
        m = result["models"][name]
        lines.append(f"{name:<12}{m['rank']:>5}{m['elpd']:>12.1f}{m['se']:>9.1f}{m['elpd_diff']:>11.1f}"
                     f"{m['dse']:>9.1f}{'-' if m['weight'] is None else format(m['weight'], '.2f'):>8}"
                     f"{m['elpd_per_point']:>11.2f}")
    for name, d in result["differences"].items():
        verdict = "clearly better" if d["clear"] else "not clearly better (|diff| < 2 dse)"
        lines.append(f"{d['vs']} vs {name}: {-d['elpd_diff']:+.1f} ± {d['dse']:.1f} nats "
                     f"over {result['n']} points ({-d['elpd_diff_per_point']:+.3f}/point): {d['vs']} is {verdict}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# GMM: exact posterior of the assignment, and a fully Bayesian GMM by NUTS
# ---------------------------------------------------------------------------------------
def gmm_responsibilities(model, x, *, index: Sequence[int] | None = None) -> dict:
    """Posterior p(m | x_i) of a GMM's enumerated assignment site, with a summary.

    :param model: a fitted :class:`probgen.models.GMM` (anything with ``responsibilities``).
    :param x: data ``[n, ...]``.
    :return: dict with ``resp`` (``[n, K]`` numpy), ``assignment`` (argmax), ``entropy``
        (nats, per point), ``max_prob``, and ``summary`` (JSON-able: mean entropy, fraction of
        points with max p > 0.99, points per component).
    """
    if not hasattr(model, "responsibilities"):
        raise ValueError(f"{type(model).__name__} has no responsibilities (not a mixture)")
    resp = model.responsibilities(x).detach().double().cpu().numpy()  # n × K
    ent = -(resp * np.log(np.clip(resp, 1e-300, None))).sum(1)
    assign = resp.argmax(1)
    mx = resp.max(1)
    K = resp.shape[1]
    summary = {"n": int(len(resp)), "n_components": int(K),
               "mean_entropy": float(ent.mean()), "max_entropy": float(math.log(K)),
               "fraction_confident": float((mx > 0.99).mean()), "mean_max_prob": float(mx.mean()),
               "points_per_component": [int(c) for c in np.bincount(assign, minlength=K)],
               "uncertain_points": [int(i) for i in (np.arange(len(resp)) if index is None
                                                      else np.asarray(index))[np.argsort(-ent)[:5]]]}
    return {"resp": resp, "assignment": assign, "entropy": ent, "max_prob": mx, "summary": summary}


@dataclass
class BayesGMMResult:
    """NUTS fit of a Bayesian GMM: ``idata`` (az.from_pyro), ``locs`` ``[chains, draws, K, D]``,
    ``rhat_raw`` (of the component means as labelled) and ``rhat_sorted`` (after relabelling
    each draw by sorting the components on their first coordinate)."""

    idata: Any
    locs: np.ndarray
    weights: np.ndarray
    rhat_raw: np.ndarray
    rhat_sorted: np.ndarray
    ess_bulk_raw: np.ndarray
    seconds: float

    def summary(self) -> dict:
        return {"chains": int(self.locs.shape[0]), "draws": int(self.locs.shape[1]),
                "rhat_raw_max": float(np.nanmax(self.rhat_raw)),
                "rhat_sorted_max": float(np.nanmax(self.rhat_sorted)),
                "ess_bulk_raw_min": float(np.nanmin(self.ess_bulk_raw)), "seconds": round(self.seconds, 2)}


def bayesian_gmm_nuts(x, *, n_components: int = 3, num_chains: int = 2, num_samples: int = 300,
                      warmup_steps: int = 200, seed: int = 0, prior_scale: float = 5.0,
                      jit: bool = True, max_tree_depth: int = 6) -> BayesGMMResult:
    """Fully Bayesian GMM on small real-valued data, fitted by NUTS with the assignment
    enumerated out (``TraceEnum`` inside the potential).

    π ~ Dirichlet(1), μ_k ~ N(0, prior_scale² I), σ_k ~ LogNormal(0, 1) (per dimension),
    m_i ~ Categorical(π), x_i ~ N(μ_{m_i}, σ_{m_i}).

    The posterior is invariant to permuting the components, so independent chains settle on
    different labellings: r-hat of the raw component means is far above 1 (label switching)
    while r-hat of the relabelled (sorted) means is ≈ 1. ``probgen.plots.diagnostics.plot_trace``
    shows it.

    :param x: data ``[n, D]`` (or ``[n]``), real values; keep n in the hundreds.
    :param num_chains: chains, run one after another, each from a random initialisation.
    :param jit: compile the enumerated potential (about 4× faster).
    :param max_tree_depth: NUTS tree depth cap (≤ 2^depth leapfrog steps per draw); random
        initialisations far from the data otherwise cost 1023 steps per early draw.
    :return: :class:`BayesGMMResult`.
    """
    import pyro.distributions as dist
    from pyro.infer import MCMC, NUTS, config_enumerate

    x = torch.as_tensor(x, dtype=torch.float64 if torch.as_tensor(x).dtype == torch.float64 else torch.float32)
    x = x.reshape(len(x), -1)
    if not torch.isfinite(x).all() or len(x) < n_components:
        raise ValueError("x: need finite values and at least n_components points")
    K, D = int(n_components), x.shape[1]

    @config_enumerate
    def bgmm(data):
        w = pyro.sample("weights", dist.Dirichlet(torch.ones(K, dtype=data.dtype)))
        with pyro.plate("components", K):
            loc = pyro.sample("locs", dist.Normal(torch.zeros(D, dtype=data.dtype), prior_scale).to_event(1))
            scale = pyro.sample("scales", dist.LogNormal(torch.zeros(D, dtype=data.dtype), 1.0).to_event(1))
        with pyro.plate("data", len(data)):
            m = pyro.sample("m", dist.Categorical(w))
            pyro.sample("x", dist.Normal(loc[m], scale[m]).to_event(1), obs=data)

    t0 = time.perf_counter()
    idatas, locs, weights = [], [], []
    for c in range(num_chains):
        pyro.set_rng_seed(seed + c)
        from pyro.infer.autoguide import init_to_sample

        kernel = NUTS(bgmm, max_plate_nesting=1, init_strategy=init_to_sample, jit_compile=jit,
                      ignore_jit_warnings=True, max_tree_depth=max_tree_depth)
        mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, disable_progbar=True)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.trace.*is deprecated")
            mcmc.run(x)
        s = mcmc.get_samples()
        locs.append(s["locs"].double().numpy())
        weights.append(s["weights"].double().numpy())
        idatas.append(_az_from_pyro(mcmc, None, dims={"locs": ["component", "dim"],
                                                      "scales": ["component", "dim"],
                                                      "weights": ["component"]}))
    locs_a = np.stack(locs)  # chain × draw × K × D
    w_a = np.stack(weights)
    order = np.argsort(locs_a[..., 0], axis=-1)  # relabel each draw by the first coordinate
    sorted_locs = np.take_along_axis(locs_a, order[..., None], axis=2)
    c, d = locs_a.shape[:2]
    rhat_raw, ess_raw, _ = _az_rhat_ess(locs_a.reshape(c, d, -1))
    rhat_sorted, _, _ = _az_rhat_ess(sorted_locs.reshape(c, d, -1))
    return BayesGMMResult(idata=_az_concat_chains(idatas), locs=locs_a, weights=w_a,
                          rhat_raw=rhat_raw.reshape(K, D), rhat_sorted=rhat_sorted.reshape(K, D),
                          ess_bulk_raw=ess_raw.reshape(K, D), seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------
# The ArviZ version boundary: everything that differs between 0.23 and 1.x lives here.
# ---------------------------------------------------------------------------------------
def _arviz_major() -> int:
    import arviz

    return int(str(arviz.__version__).split(".")[0])


def _az_from_dict(groups: dict[str, dict], *, dims: dict, coords: dict, attrs: dict):
    """groups {"posterior": {var: array [chain, draw, ...]}, ...} → InferenceData / DataTree."""
    if _arviz_major() >= 1:  # ArviZ 1.x: arviz_base.from_dict({group: {var: array}}) -> DataTree
        from arviz_base import from_dict

        return from_dict(groups, dims=dims, coords=coords, attrs=attrs)
    import arviz as az

    return az.from_dict(**groups, dims=dims, coords=coords, attrs=attrs)


def _az_from_netcdf(path: Path):
    if _arviz_major() >= 1:
        import xarray as xr

        return xr.open_datatree(path)
    import arviz as az

    return az.from_netcdf(path)


def _az_groups(data) -> list[str]:
    """Group names of an InferenceData (0.23) or DataTree (1.x)."""
    if hasattr(data, "groups") and callable(data.groups):
        return list(data.groups())
    return list(data.children)


def _az_psis_khat(lw: np.ndarray) -> np.ndarray:
    """Pareto k̂ per row of ``[n, K]`` log-weights."""
    if _arviz_major() >= 1:
        from arviz_stats.base import array_stats

        _, k = array_stats.psislw(lw, r_eff=1.0, axis=-1)
        return np.asarray(k)
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the per-row "k̂ too high" warnings are our result
        _, k = az.psislw(lw)
    return np.asarray(k)


def _az_rhat_ess(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank-normalized r-hat, bulk and tail ESS per column of ``[chains, draws, d]``."""
    if _arviz_major() >= 1:
        from arviz_stats.base import array_stats

        cols = [samples[..., j] for j in range(samples.shape[-1])]
        rhat = np.array([float(array_stats.rhat(c, chain_axis=0, draw_axis=1)) for c in cols])
        bulk = np.array([float(array_stats.ess(c, chain_axis=0, draw_axis=1, method="bulk")) for c in cols])
        tail = np.array([float(array_stats.ess(c, chain_axis=0, draw_axis=1, method="tail")) for c in cols])
        return rhat, bulk, tail
    import arviz as az

    cols = [samples[..., j] for j in range(samples.shape[-1])]
    rhat = np.array([float(az.rhat(c)) if samples.shape[0] > 1 else float("nan") for c in cols])
    bulk = np.array([float(az.ess(c, method="bulk")) for c in cols])
    tail = np.array([float(az.ess(c, method="tail")) for c in cols])
    return rhat, bulk, tail


def _az_from_pyro(mcmc, site: str | None, dims: dict | None = None):
    """One chain's MCMC run → InferenceData (``az.from_pyro`` on 0.23)."""
    dims = dims if dims is not None else {site: ["obs", f"{site}_dim"]}
    if _arviz_major() >= 1:
        samples = {k: v.detach().cpu().numpy()[None] for k, v in mcmc.get_samples().items()}
        return _az_from_dict({"posterior": samples}, dims=dims, coords={}, attrs={"sampler": "pyro NUTS"})
    import arviz as az

    return az.from_pyro(mcmc, log_likelihood=False, dims=dims)


def _az_concat_chains(items: list):
    if len(items) == 1:
        return items[0]
    if _arviz_major() >= 1:
        import xarray as xr

        out = items[0].copy()
        for group in _az_groups(items[0]):
            out[group] = xr.concat([it[group].to_dataset() for it in items], dim="chain")
        return out
    import arviz as az

    return az.concat(*items, dim="chain")


def _az_stacking(vals: dict[str, np.ndarray]) -> dict[str, float]:
    """Stacking weights of ``arviz.compare`` from pointwise log-likelihoods (0.23: ELPDData)."""
    names = list(vals)
    # per-point shift by the best model: stacking weights and differences are unchanged,
    # and exp() in arviz's stacking objective cannot overflow or underflow to 0
    shift = np.max(np.stack([vals[k] for k in names]), axis=0)
    if _arviz_major() >= 1:
        from arviz_stats import compare

        elpds = {k: _elpd_data(vals[k] - shift) for k in names}
        table = compare(elpds)
        return {k: float(table.loc[k, "weight"]) for k in names}
    import arviz as az

    elpds = {k: _elpd_data(vals[k] - shift) for k in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare(elpds, ic="loo", method="stacking")
    return {k: float(table.loc[k, "weight"]) for k in names}


def _elpd_data(a: np.ndarray):
    """Held-out pointwise log-likelihoods as a precomputed ELPDData (no LOO needed)."""
    import xarray as xr

    n = len(a)
    loo_i = xr.DataArray(a, dims=["obs"])
    if _arviz_major() >= 1:
        from arviz_stats.utils import ELPDData

        return ELPDData(kind="loo", elpd=float(a.sum()), se=float(math.sqrt(n) * a.std(ddof=1)), p=0.0,
                        n_samples=1, n_data_points=n, scale="log", warning=False, good_k=0.7,
                        elpd_i=loo_i, pareto_k=xr.zeros_like(loo_i))
    import arviz as az

    return az.ELPDData(
        data=[float(a.sum()), float(math.sqrt(n) * a.std(ddof=1)), 0.0, 1, n, False, loo_i,
              xr.zeros_like(loo_i), "log", 0.7],
        index=["elpd_loo", "se", "p_loo", "n_samples", "n_data_points", "warning", "loo_i",
               "pareto_k", "scale", "good_k"])
