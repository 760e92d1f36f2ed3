"""Figures of :mod:`probgen.diagnostics`: k̂ per point, guide vs NUTS, traces, elpd comparison.

Drawn with plain matplotlib from numbers (no ArviZ here), in the style of ArviZ's
``plot_khat``, ``plot_dist`` / ``plot_trace`` and ``plot_compare``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .core import new_figure, savefig

__all__ = ["plot_khat", "plot_guide_vs_nuts", "plot_trace", "plot_compare", "plot_responsibilities"]


def plot_khat(khat, path: str | Path, *, title: str = "", compare: dict | None = None) -> Path:
    """k̂ per data point with the 0.5 / 0.7 lines (ArviZ ``plot_khat`` style).

    :param khat: ``[n]`` k̂ values (``-inf`` is drawn at the bottom of the axis).
    :param compare: optional {label: khat array} drawn in other colours (e.g. an untrained guide).
    """
    series = {"guide": np.asarray(khat, dtype=float)} if compare is None else \
        {"guide": np.asarray(khat, dtype=float), **{k: np.asarray(v, dtype=float) for k, v in compare.items()}}
    fig, ax = new_figure(figsize=(6.5, 3.2))
    finite_all = np.concatenate([np.where(np.isfinite(v), v, np.nan) for v in series.values()])
    low = min(-0.2, np.nanmin(finite_all) - 0.05) if np.isfinite(finite_all).any() else -0.2
    colours = ["tab:blue", "tab:red", "tab:green", "tab:purple"]
    for (label, v), colour in zip(series.items(), colours):
        shown = np.where(np.isfinite(v), v, low)
        ax.scatter(np.arange(len(v)), shown, s=8, marker="+", color=colour,
                   label=f"{label} ({int((v > 0.7).sum())} > 0.7)")
    for level, style in ((0.5, ":"), (0.7, "--"), (1.0, "-")):
        ax.axhline(level, color="0.4", lw=0.8, ls=style)
    ax.set_xlabel("data point")
    ax.set_ylabel("Pareto k̂")
    ax.set_title(title or "importance-weight tail per point (k̂ > 0.7: IWAE unreliable)")
    ax.legend(loc="upper right", fontsize=8)
    return savefig(fig, path)


def plot_guide_vs_nuts(nuts_samples, guide_samples, path: str | Path, *, title: str = "",
                       wasserstein=None, max_dims: int = 16) -> Path:
    """Per latent dimension: histogram of the NUTS draws and of the guide's draws.

    :param nuts_samples: ``[chains, draws, d]`` or ``[N, d]``.
    :param guide_samples: ``[G, d]``.
    :param wasserstein: optional ``[d]`` distances written in each panel.
    """
    nuts = np.asarray(nuts_samples, dtype=float)
    nuts = nuts.reshape(-1, nuts.shape[-1])
    guide = np.asarray(guide_samples, dtype=float).reshape(-1, nuts.shape[-1])
    d = min(nuts.shape[1], max_dims)
    ncol = min(5, d)
    nrow = int(np.ceil(d / ncol))
    fig, axes = new_figure(nrow, ncol, figsize=(2.3 * ncol, 2.1 * nrow), squeeze=False)
    for j in range(nrow * ncol):
        ax = axes[j // ncol][j % ncol]
        if j >= d:
            ax.axis("off")
            continue
        lo = min(np.percentile(nuts[:, j], 0.5), np.percentile(guide[:, j], 0.5))
        hi = max(np.percentile(nuts[:, j], 99.5), np.percentile(guide[:, j], 99.5))
        bins = np.linspace(lo, hi, 40)
        ax.hist(nuts[:, j], bins=bins, density=True, color="0.6", label="NUTS")
        ax.hist(guide[:, j], bins=bins, density=True, histtype="step", color="tab:red", lw=1.4, label="guide")
        label = f"z[{j}]" + (f"  W1={wasserstein[j]:.3f}" if wasserstein is not None else "")
        ax.set_title(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title or "guide q(z|x) vs NUTS p(z|x), per dimension", fontsize=9)
    fig.subplots_adjust(hspace=0.55)
    return savefig(fig, path)


def plot_trace(samples, path: str | Path, *, names: list[str] | None = None, title: str = "",
               max_vars: int = 6) -> Path:
    """Trace plot: one row per variable, one colour per chain (label switching shows as chains
    sitting on different levels).

    :param samples: ``[chains, draws, v]``.
    """
    s = np.asarray(samples, dtype=float)
    if s.ndim == 2:
        s = s[..., None]
    v = min(s.shape[2], max_vars)
    names = names or [f"v{j}" for j in range(v)]
    fig, axes = new_figure(v, 2, figsize=(8, 1.5 * v), squeeze=False,
                           gridspec_kw={"width_ratios": [3, 1]})
    for j in range(v):
        for c in range(s.shape[0]):
            axes[j][0].plot(s[c, :, j], lw=0.6, color=f"C{c}", label=f"chain {c}")
            axes[j][1].hist(s[c, :, j], bins=30, orientation="horizontal", histtype="step", color=f"C{c}")
        axes[j][0].set_ylabel(names[j], fontsize=8)
        axes[j][0].tick_params(labelsize=7)
        axes[j][1].tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7, loc="upper right")
    axes[-1][0].set_xlabel("draw")
    fig.suptitle(title or "trace", fontsize=9)
    return savefig(fig, path)


def plot_compare(result: dict, path: str | Path, *, title: str = "") -> Path:
    """``plot_compare``-style figure from :func:`probgen.diagnostics.compare_pointwise`'s dict:
    open circles = elpd ± se, grey triangles = difference to the best ± dse, dashed line = best."""
    models = result["models"]
    order = sorted(models, key=lambda k: models[k]["rank"])
    fig, ax = new_figure(figsize=(6, 0.6 + 0.55 * len(order)))
    ys = np.arange(len(order))[::-1].astype(float)
    best = models[order[0]]["elpd"]
    for y, name in zip(ys, order):
        m = models[name]
        ax.errorbar(m["elpd"], y, xerr=m["se"], fmt="o", mfc="white", color="black", capsize=3)
        if m["rank"] > 0:
            ax.errorbar(best + m["elpd_diff"], y - 0.25, xerr=m["dse"], fmt="^", color="0.5", capsize=3)
    ax.axvline(best, color="0.5", ls="--", lw=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels(order)
    ax.set_xlabel(f"elpd over {result['n']} held-out points (nats, higher is better)")
    ax.set_title(title or "model comparison: elpd ± se, difference to best ± dse", fontsize=9)
    return savefig(fig, path)


def plot_responsibilities(resp, path: str | Path, *, title: str = "", max_points: int = 60) -> Path:
    """Heat map of GMM responsibilities p(m | x_i): points × components."""
    r = np.asarray(resp, dtype=float)[:max_points]
    fig, ax = new_figure(figsize=(0.35 * r.shape[1] + 2, 0.12 * len(r) + 1.2))
    im = ax.imshow(r, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xlabel("component m")
    ax.set_ylabel("data point")
    fig.colorbar(im, ax=ax, label="p(m | x)")
    ax.set_title(title or "GMM responsibilities", fontsize=9)
    return savefig(fig, path)
