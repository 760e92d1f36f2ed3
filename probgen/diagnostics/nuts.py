"""Posteriors by NUTS: one data point's code against the guide, and a fully Bayesian GMM.

- *How far is the guide from the true posterior?* :func:`nuts_posterior`: NUTS on the
  code of one data point with the decoder fixed, r-hat / ESS, and a per-dimension
  Wasserstein distance between the guide's and NUTS's marginals.
- :func:`bayesian_gmm_nuts`: the Bayesian GMM of :mod:`probgen.models.bayes_gmm` fitted by
  NUTS, which shows label switching.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro
import pyro.poutine as poutine
import torch

from .._warnings import quiet
from ..evaluate import prepared
from ..models.bayes_gmm import bayesian_gmm
from ._arviz import _az_concat_chains, _az_from_pyro, _az_rhat_ess
from .guide import _is_latent

__all__ = ["nuts_posterior", "NutsResult", "bayesian_gmm_nuts", "BayesGMMResult"]


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
    x1, y = prepared(model, torch.as_tensor(x_i).unsqueeze(0), y)  # a batch of one
    if len(x1) != 1:
        raise ValueError(f"nuts_posterior takes one data point, got {len(x1)}")
    y1 = None if y is None else torch.as_tensor(y).reshape(1)
    site, _ = _single_latent(model, x1, y1)
    if site is None:
        raise ValueError("the guide has several latent sites; nuts_posterior compares one")
    t0 = time.perf_counter()
    fn = poutine.block(model.model, hide_types=["param"])
    idatas, draws, n_div = [], [], 0
    with _frozen(model), quiet("jit-trace"):
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
        with pyro.plate("guide_draws", guide_samples, dim=-(model.max_plate_nesting + 1)):
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


# -- a fully Bayesian GMM by NUTS ------------------------------------------------------------
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
    """Fully Bayesian GMM on small real-valued data (:func:`probgen.models.bayes_gmm.bayesian_gmm`),
    fitted by NUTS with the assignment enumerated out (``TraceEnum`` inside the potential).

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
    from pyro.infer import MCMC, NUTS

    x = torch.as_tensor(x, dtype=torch.float64 if torch.as_tensor(x).dtype == torch.float64 else torch.float32)
    x = x.reshape(len(x), -1)
    if not torch.isfinite(x).all() or len(x) < n_components:
        raise ValueError("x: need finite values and at least n_components points")
    K, D = int(n_components), x.shape[1]

    bgmm = bayesian_gmm(K, D, prior_scale=prior_scale)

    t0 = time.perf_counter()
    idatas, locs, weights = [], [], []
    for c in range(num_chains):
        pyro.set_rng_seed(seed + c)
        from pyro.infer.autoguide import init_to_sample

        kernel = NUTS(bgmm, max_plate_nesting=1, init_strategy=init_to_sample, jit_compile=jit,
                      ignore_jit_warnings=True, max_tree_depth=max_tree_depth)
        mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, disable_progbar=True)
        with quiet("jit-trace"):
            mcmc.run(x)
        s = mcmc.get_samples()
        locs.append(s["locs"].double().cpu().numpy())
        weights.append(s["weights"].double().cpu().numpy())
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
