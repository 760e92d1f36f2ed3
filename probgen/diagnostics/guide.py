"""Is the guide a good importance proposal? Draws of the guide as ArviZ data, PSIS k̂, ESS, IWAE gap.

- *What did the guide infer?* :func:`to_inference_data` turns draws of the guide's latent
  sites, the pointwise log-likelihood and the importance log-weights into an ArviZ
  ``InferenceData`` (groups ``posterior``, ``log_likelihood``, ``observed_data``,
  ``sample_stats``; dims ``obs`` and ``z_dim``), saved with :func:`save_inference_data`.
- *Is the guide good enough as an importance proposal?* :func:`guide_quality`: Pareto k̂
  (PSIS) of the weights p(x, z) / q(z | x) per data point, their effective sample size,
  and the IWAE gap.
- The GMM's exact posterior over the assignment: :func:`gmm_responsibilities`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from pyro.poutine.util import site_is_subsample

from ..evaluate import KHAT_BAD, log_likelihood, particle_traces, prepared, psis_khat
from ._arviz import _az_from_dict, _az_from_netcdf

__all__ = ["to_inference_data", "save_inference_data", "load_inference_data", "guide_quality", "GuideQuality",
           "quality_from_weights",
           "pareto_khat", "khat_counts", "gmm_responsibilities", "KHAT_BINS"]

#: the one set of k̂ thresholds (Vehtari et al. 2024): good, ok (PSIS still works), bad above
#: :data:`probgen.evaluate.KHAT_BAD`; ``summary.json``, the printout and the figures all read these
KHAT_OK = 0.5
KHAT_BINS = ((-math.inf, KHAT_OK, "good"), (KHAT_OK, KHAT_BAD, "ok"), (KHAT_BAD, math.inf, "bad"))


# -- InferenceData from a guide ------------------------------------------------------------
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
    - ``sample_stats``, dims ``(obs,)``, per draw: ``lp`` = log p(x_i, z) (ArviZ's name for the joint
      log density of a draw, Stan's ``lp__``), ``lp_approx`` = log q(z | x_i) (the density of the
      approximation at that draw, Stan's ``lp_approx__``: the ``log_p`` / ``log_q`` that PSIS for
      approximate posteriors, e.g. ``arviz_stats.loo_approximate_posterior``, takes) and
      ``log_weight`` = ``lp − lp_approx``, the importance log-weights whose log-mean-exp is the IWAE
      estimate. :func:`probgen.diagnostics.psis_posterior_mean` redoes PSIS from the file alone.

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
    x, y = prepared(model, x, y)
    n = len(x)
    index = np.arange(n) if index is None else np.asarray(index)
    if len(index) != n:
        raise ValueError(f"index has {len(index)} entries for {n} data points")
    chunk_size = chunk_size or _chunk(x, K)
    latents: dict[str, list] = {}
    loglik: dict[str, list] = {}
    observed: dict[str, list] = {}
    lps: list[torch.Tensor] = []  # log p(x, z) per draw: K × obs
    lqs: list[torch.Tensor] = []  # log q(z | x) per draw
    was_training = model.training
    model.eval()
    try:
        for start in range(0, n, chunk_size):
            xb = x[start:start + chunk_size]
            yb = None if y is None else y[start:start + chunk_size]
            nb = len(xb)
            guide_tr, model_tr = particle_traces(model, xb, K, yb, enumerate=False)
            lp, lq = 0.0, 0.0
            for name, site in model_tr.nodes.items():
                if site["type"] != "sample" or site_is_subsample(site) or site.get("is_observed_param", False):
                    continue
                lp = lp + _to_kn(site["log_prob"], K, nb)
                if site["is_observed"]:
                    loglik.setdefault(name, []).append(_to_kn(site["log_prob"], K, nb))
                    value = site["value"].detach().reshape(nb, -1)  # obs × values
                    observed.setdefault(name, []).append(value.float())
            for name, site in guide_tr.nodes.items():
                if not _is_latent(site):
                    continue
                lq = lq + _to_kn(site["log_prob"], K, nb)
                value = site["value"].detach()
                if value.dim() < 2 or value.shape[0] != K or value.shape[1] != nb:
                    value = value.expand(K, nb, *value.shape[2:]) if value.dim() >= 2 else value.reshape(K, 1).expand(K, nb)
                latents.setdefault(name, []).append(value.float())  # K × obs × event
            lps.append(torch.as_tensor(lp).expand(K, nb))
            lqs.append(torch.as_tensor(lq).expand(K, nb))
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
    lp_all, lq_all = torch.cat(lps, dim=1).cpu().numpy()[None], torch.cat(lqs, dim=1).cpu().numpy()[None]
    sample_stats = {"lp": lp_all, "lp_approx": lq_all, "log_weight": lp_all - lq_all}  # chain × draw × obs
    dims.update(lp=["obs"], lp_approx=["obs"], log_weight=["obs"])
    attrs = {"probgen_model": str(model.kind), "proposal": "amortized guide q(z|x)", "num_samples": K,
             "lp": "log p(x, z) per draw", "lp_approx": "log q(z | x) per draw"}
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


# -- guide quality: PSIS k̂, ESS, IWAE gap -------------------------------------------------
def pareto_khat(log_weights_nk, *, flat_tol: float = 1e-4) -> np.ndarray:
    """Pareto k̂ of importance log-weights, one per row (PSIS; ArviZ's ``psislw`` numbers).

    :param log_weights_nk: ``[n, K]`` array of log-weights (K samples per data point).
    :param flat_tol: rows whose log-weights span less than this (nats) count as constant.
    :return: ``[n]`` k̂. Rows whose weights are all equal (the proposal *is* the target)
        get ``-inf``: there is no tail at all (weights equal to within 1e-4 nats are float32
        round-off of a constant; PSIS on pure round-off noise is meaningless).
    """
    return psis_khat(log_weights_nk, flat_tol=flat_tol)


def khat_counts(khat) -> dict[str, int]:
    """How many k̂ fall in each bin: ``good`` (< 0.5), ``ok`` (0.5–0.7), ``bad`` (> 0.7)."""
    k = np.asarray(khat, dtype=np.float64)
    # ±inf (a flat or a too-short tail) land in the outer bins; NaN counts as bad
    idx = np.digitize(np.nan_to_num(k, nan=np.inf), [lo for lo, _, _ in KHAT_BINS[1:]])
    return {name: int((idx == i).sum()) for i, (_, _, name) in enumerate(KHAT_BINS)}


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
            "khat_bins": {name: [None if math.isinf(lo) else lo, None if math.isinf(hi) else hi]
                          for lo, hi, name in KHAT_BINS},
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
        ranges = [f"k̂ < {hi:g}" if math.isinf(lo) else f"k̂ > {lo:g}" if math.isinf(hi) else f"{lo:g}–{hi:g}"
                  for lo, hi, _ in KHAT_BINS]
        lines = [f"Pareto k̂ of the guide's importance weights ({n} points, K={self.num_samples}):",
                 *(f"  {r + ' ' * (10 - len(r.replace(chr(0x302), '')))}{'(' + name + ')':<6} {c[name]:>7} "
                   f"{100 * c[name] / n:6.1f}%"
                   for r, (_, _, name) in zip(ranges, KHAT_BINS)),
                 f"  ESS median {np.median(self.ess):.1f} / {self.num_samples} (min {self.ess.min():.1f})",
                 f"  IWAE − ELBO gap: mean {self.gap.mean():.3f} nats, max {self.gap.max():.3f}"]
        return "\n".join(lines)


def guide_quality(model, x, num_samples: int = 1000, *, y=None, index: Sequence[int] | None = None,
                  chunk_size: int | None = None) -> GuideQuality:
    """Is the guide q(z | x) good enough as an importance proposal for p(z | x)?

    For each data point, draw K codes from the guide, form the importance log-weights
    log p(x, z_k) − log q(z_k | x) and fit a generalized Pareto distribution to the
    largest weights (PSIS, Vehtari et al. 2024, as ``arviz.psislw``). Its shape k̂ says how
    heavy the tail of the weights is:

    - k̂ < 0.5: the weights have finite variance; the IWAE estimate of log p(x) used by
      ``probgen compare`` converges at the usual 1/√K rate and its ± error is honest.
    - 0.5 ≤ k̂ < 0.7: infinite variance but finite mean; the estimate still converges, slowly.
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
    :param chunk_size: data points per batch (default: from the estimator's memory budget).
    :return: :class:`GuideQuality`.
    :raises ValueError: ``num_samples`` < 2, or a model with an exact log p(x) (no importance weights).
    """
    K = int(num_samples)
    if K < 2:
        raise ValueError(f"num_samples must be >= 2 for k̂, got {num_samples}")
    x, y = prepared(model, x, y)
    # the one IWAE; a story with an exact log p(x) and a guide (PPCA) has its guide judged all the same
    forced = "iwae" if model.traits.exact and model.traits.guide else None
    _, lw = log_likelihood(model, x, y=y, num_samples=K, batch_size=chunk_size, return_weights=True, estimator=forced)
    if lw is None:
        raise ValueError(f"{type(model).__name__} has an exact log p(x): there are no importance weights to judge")
    return quality_from_weights(lw, index=index)


def quality_from_weights(log_weights_nk, *, khat=None, index: Sequence[int] | None = None) -> GuideQuality:
    """:class:`GuideQuality` of importance log-weights already drawn (e.g. :class:`probgen.evaluate.Score`'s
    ``log_weights``, with its ``khat``), so that a caller that scored a model computes no weight or k̂ twice.

    :param log_weights_nk: ``[n, K]`` log p(x, z_k) − log q(z_k | x).
    :param khat: ``[n]`` k̂ of those weights (default: computed here).
    :param index: labels of the points (default 0..n-1).
    """
    lw = np.asarray(log_weights_nk.numpy() if isinstance(log_weights_nk, torch.Tensor) else log_weights_nk,
                    dtype=np.float64)  # n × K
    khat = pareto_khat(lw) if khat is None else np.asarray(khat, dtype=np.float64)
    w = np.exp(lw - lw.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    ess = 1.0 / (w**2).sum(1)
    return GuideQuality(khat=khat, ess=ess, iwae=_logmeanexp(lw), elbo=lw.mean(1), num_samples=lw.shape[1],
                        index=np.arange(len(lw)) if index is None else np.asarray(index))


def _chunk(x: torch.Tensor, K: int) -> int:
    """Data points per batch so that one K × batch × x_dim tensor holds ~4M floats on CPU
    (cache-friendly, as in probgen.evaluate) or ~64M on CUDA."""
    budget = 2**26 if x.is_cuda else 2**22
    return max(1, min(len(x), budget // (K * max(1, x[0].numel()))))


def _logmeanexp(a: np.ndarray) -> np.ndarray:
    m = a.max(1, keepdims=True)
    return (m + np.log(np.exp(a - m).mean(1, keepdims=True)))[:, 0]


# -- the GMM: exact posterior of the assignment ------------------------------------------------
def gmm_responsibilities(model, x, *, index: Sequence[int] | None = None) -> dict:
    """Posterior p(m | x_i) of a GMM's enumerated assignment site, with a summary.

    :param model: a fitted :class:`probgen.models.GMM` (anything with ``responsibilities``).
    :param x: data ``[n, ...]``.
    :return: dict with ``resp`` (``[n, K]`` numpy), ``assignment`` (argmax), ``entropy``
        (nats, per point), ``max_prob``, and ``summary`` (JSON-able: mean entropy, fraction of
        points with max p > 0.99, points per component).
    """
    if "responsibilities" not in model.traits.offers:
        raise ValueError(f"{type(model).__name__} has no responsibilities (not a mixture)")
    x = torch.as_tensor(x).to(model.device)  # the model's device (CPU data, a CUDA model)
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
