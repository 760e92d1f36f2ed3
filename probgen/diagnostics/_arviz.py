"""The only ArviZ import of probgen, always inside functions (ArviZ is optional at import time).

The differences between ArviZ 0.23 (``InferenceData``, Python 3.11) and ArviZ 1.x
(``arviz_base`` / ``arviz_stats``, ``xarray.DataTree``) are confined to these helpers.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .._warnings import quiet

__all__ = ["_arviz_major", "_az_from_dict", "_az_from_netcdf", "_az_groups", "_az_rhat_ess", "_az_from_pyro",
           "_az_concat_chains", "_az_stacking", "_elpd_data", "_az_psislw", "_az_ecdf_band"]


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
    with quiet("arviz-pandas"):
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


def _az_psislw(log_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ArviZ's Pareto-smoothed, normalised log-weights and k̂ of ``[n, S]`` log-weights (one row per point)."""
    lw = np.asarray(log_weights, dtype=np.float64)
    if _arviz_major() >= 1:
        from arviz_stats.base import array_stats

        smoothed, khat = array_stats.psislw(lw, r_eff=1.0, axis=-1)
        smoothed = smoothed - np.logaddexp.reduce(smoothed, axis=-1, keepdims=True)
        return np.asarray(smoothed), np.asarray(khat)
    import arviz as az

    smoothed, khat = az.psislw(lw, reff=1.0)
    return np.asarray(smoothed), np.asarray(khat)


def _az_ecdf_band(n: int, points: np.ndarray, prob: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """ArviZ's simultaneous ``prob`` band of the ECDF of ``n`` uniform draws at ``points`` in [0, 1]
    (Säilynoja et al. 2022, the band of ``plot_ecdf(pit=True)`` / SBC plots): ``(lower, upper)``."""
    points = np.asarray(points, dtype=np.float64)
    if _arviz_major() >= 1:
        from arviz_stats.ecdf_utils import ecdf_confidence_band

        return ecdf_confidence_band(n, points, points, prob=prob, method="optimized")
    from arviz.stats.ecdf_utils import ecdf_confidence_band

    with quiet("arviz-pandas"):
        return ecdf_confidence_band(n, points, points, prob=prob, method="optimized")
