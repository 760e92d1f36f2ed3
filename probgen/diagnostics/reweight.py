"""PSIS-reweighted posterior means from a saved ``diagnostics.nc`` alone: the round trip of the
guide's draws, ``lp`` = log p(x, z) and ``lp_approx`` = log q(z | x) per draw.

The guide q(z | x) is an importance proposal for p(z | x): with w_s ∝ p(x, z_s) / q(z_s | x),
E_p[f(z) | x] ≈ Σ_s w_s f(z_s). Pareto smoothing of the largest weights (PSIS, ArviZ's ``psislw``)
keeps the estimate stable, and its k̂ says when it cannot be trusted (k̂ above
:data:`probgen.evaluate.KHAT_BAD`: the guide misses too much of the posterior for any reweighting).
No model, no checkpoint and no probgen code is needed to redo it, only the file and ArviZ (``psislw``
on ``lp − lp_approx``, stacked over chain and draw; the README's section on diagnostics shows the
five lines, and ``tests/diagnostics/test_reweight.py`` checks that they agree with this function).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._arviz import _az_psislw
from .guide import load_inference_data

__all__ = ["PSISMeans", "psis_posterior_mean"]


@dataclass
class PSISMeans:
    """PSIS-reweighted and plain (the guide's own) posterior means per data point.

    :ivar means: ``{site: [obs, ...]}`` E_p[z | x] by PSIS.
    :ivar guide_means: ``{site: [obs, ...]}`` the draws' plain average, E_q[z | x].
    :ivar khat: ``[obs]`` Pareto k̂ of each point's weights.
    :ivar ess: ``[obs]`` effective sample size of the smoothed weights.
    """

    means: dict
    guide_means: dict
    khat: np.ndarray
    ess: np.ndarray


def psis_posterior_mean(source, var_names: list[str] | None = None) -> PSISMeans:
    """Posterior means E_p[z | x_i] by Pareto-smoothed importance sampling, from a saved file alone.

    :param source: a path to ``diagnostics.nc`` (written by ``probgen diagnose`` or
        :func:`probgen.diagnostics.save_inference_data`) or the InferenceData itself.
    :param var_names: posterior variables to average (default: all of them).
    :return: :class:`PSISMeans`.
    :raises ValueError: a file without ``sample_stats.lp`` / ``lp_approx`` (written before they were).
    """
    idata = load_inference_data(source) if isinstance(source, (str, Path)) else source
    stats = idata["sample_stats"]
    if "lp" not in stats or "lp_approx" not in stats:
        raise ValueError("this InferenceData has no sample_stats lp / lp_approx (log p(x, z), log q(z | x) per "
                         "draw): write it again with this version of probgen diagnose")
    lw = np.asarray((stats["lp"] - stats["lp_approx"]).transpose("obs", "chain", "draw").values, dtype=np.float64)
    lw = lw.reshape(lw.shape[0], -1)  # obs × S
    smoothed, khat = _az_psislw(lw)
    w = np.exp(smoothed)  # obs × S, rows sum to 1
    post = idata["posterior"]
    names = list(post.data_vars) if var_names is None else list(var_names)
    means, plain = {}, {}
    for name in names:
        if name not in post:
            raise ValueError(f"no posterior variable {name!r} in this file (it has {', '.join(post.data_vars)})")
        da = post[name]
        rest = [d for d in da.dims if d not in ("chain", "draw", "obs")]
        z = np.asarray(da.transpose("obs", "chain", "draw", *rest).values, dtype=np.float64)
        z = z.reshape(z.shape[0], -1, *z.shape[3:])  # obs × S × ...
        wz = w.reshape(*w.shape, *([1] * (z.ndim - 2)))
        means[name] = (wz * z).sum(1)
        plain[name] = z.mean(1)
    return PSISMeans(means, plain, np.asarray(khat, dtype=np.float64), 1.0 / (w**2).sum(1))
