"""Figures of :mod:`probgen.diagnostics`: k̂ per point, guide vs NUTS, traces, elpd comparison.

Drawn with plain matplotlib from numbers (no ArviZ here), in the style of ArviZ's
``plot_khat``, ``plot_dist`` / ``plot_trace`` and ``plot_compare``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .core import new_figure, savefig

__all__ = ["plot_khat", "plot_guide_vs_nuts", "plot_trace", "plot_compare", "plot_responsibilities", "plot_sbc",
           "plot_collapse"]

#: widest figure in inches: at the 110 dpi of :func:`savefig` it fits the report's column (60rem)
WIDTH = 8.0


def plot_khat(khat, path: str | Path, *, title: str = "", compare: dict | None = None,
              levels: tuple = (0.5, 0.7)) -> Path:
    """k̂ per data point with the ``levels`` lines (ArviZ ``plot_khat`` style).

    :param khat: ``[n]`` k̂ values (``-inf`` is drawn at the bottom of the axis).
    :param compare: optional {label: khat array} drawn in other colours (e.g. an untrained guide).
    :param levels: the ok / bad thresholds (:data:`probgen.diagnostics.KHAT_BINS`).
    """
    ok, bad = levels
    series = {"guide": np.asarray(khat, dtype=float)} if compare is None else \
        {"guide": np.asarray(khat, dtype=float), **{k: np.asarray(v, dtype=float) for k, v in compare.items()}}
    fig, ax = new_figure(figsize=(6.5, 3.2))
    finite_all = np.concatenate([np.where(np.isfinite(v), v, np.nan) for v in series.values()])
    low = min(-0.2, np.nanmin(finite_all) - 0.05) if np.isfinite(finite_all).any() else -0.2
    colours = ["tab:blue", "tab:red", "tab:green", "tab:purple"]
    for (label, v), colour in zip(series.items(), colours):
        shown = np.where(np.isfinite(v), v, low)
        ax.scatter(np.arange(len(v)), shown, s=8, marker="+", color=colour,
                   label=f"{label} ({int((v > bad).sum())} > {bad:g})")
    for level, style in ((ok, ":"), (bad, "--"), (1.0, "-")):
        ax.axhline(level, color="0.4", lw=0.8, ls=style)
    ax.set_xlabel("data point")
    ax.set_ylabel("Pareto k̂")
    ax.set_title(title or f"importance-weight tail per point (k̂ > {bad:g}: IWAE unreliable)")
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
    ax.set_xlabel("mixture component")
    ax.set_ylabel("data point")
    fig.colorbar(im, ax=ax, label="p(m | x)")
    ax.set_title(title or "GMM responsibilities", fontsize=9)
    return savefig(fig, path)


def plot_sbc(counts, path: str | Path, *, labels: list, band: tuple, p_values, verdicts: list,
             ecdf: tuple | None = None, title: str = "", max_dims: int = 8) -> Path:
    """Simulation-based calibration: rank histograms per latent dimension with the uniform band, and
    (``ecdf``) every dimension's ECDF difference with its simultaneous band on top.

    :param counts: ``[bins, D]`` ranks per bin.
    :param band: pointwise interval of one bin's count under uniform ranks (shaded grey).
    :param p_values: ``[D]`` χ² p-values; with more than ``max_dims`` dimensions the smallest are shown.
    :param verdicts: ``D`` words (calibrated, over-dispersed, ...), in each panel's title.
    :param ecdf: ``(edges [P], diff [P, D], lower [P], upper [P])``: ECDF(u) − u at the bin edges and
        ArviZ's simultaneous band of that difference.
    """
    counts = np.asarray(counts, dtype=float)
    B, D = counts.shape
    p = np.asarray(p_values, dtype=float)
    shown = list(range(D)) if D <= max_dims else sorted(np.argsort(p)[:max_dims].tolist())
    ncol = min(4, len(shown))
    nrow = int(np.ceil(len(shown) / ncol)) + (ecdf is not None)
    fig, axes = new_figure(nrow, ncol, figsize=(WIDTH, 1.9 * nrow), squeeze=False)
    top = 0
    if ecdf is not None:
        top = 1
        grid = axes[0][0].get_gridspec()
        for ax in axes[0]:
            ax.remove()
        ax = fig.add_subplot(grid[0, :])
        edges, diff, lo, hi = (np.pad(np.asarray(a, dtype=float), [(1, 1)] + [(0, 0)] * (np.ndim(a) - 1))
                               for a in ecdf)  # the ECDF meets the uniform at 0 and 1
        edges[-1] = 1.0
        ax.fill_between(edges, lo, hi, color="0.85", step=None, label="95% simultaneous band (ArviZ)")
        for j in range(D):
            bad = verdicts[j] != "calibrated"
            ax.plot(edges, diff[:, j], color="tab:red" if bad else "0.35", lw=1.2 if bad else 0.6, alpha=0.9)
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_xlim(0, 1)
        ax.set_xlabel("normalised rank", fontsize=8)
        ax.set_ylabel("ECDF − uniform", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper right")
        ax.set_title(f"all {D} dimensions (red: failing)" + (f"; below, the {len(shown)} with the smallest p"
                                                               if len(shown) < D else ""), fontsize=8)
    for k in range(ncol * (nrow - top)):
        ax = axes[top + k // ncol][k % ncol]
        if k >= len(shown):
            ax.axis("off")
            continue
        j = shown[k]
        ax.axhspan(band[0], band[1], color="0.85")
        ax.axhline(counts[:, j].sum() / B, color="0.4", lw=0.6)
        ax.bar(np.arange(B), counts[:, j], width=1.0, color="tab:red" if verdicts[j] != "calibrated" else "tab:blue",
               edgecolor="white", lw=0.3)
        ax.set_title(f"{labels[j]}: {verdicts[j]}, p={p[j]:.2g}", fontsize=7)
        ax.set_xticks([])
        ax.tick_params(labelsize=6)
    fig.suptitle(title or "rank of the true z among draws of q(z|x) (flat = calibrated; ∩ too wide, ∪ too narrow)",
                 fontsize=9)
    fig.tight_layout()
    return savefig(fig, path)


def plot_collapse(labels: list, mean_variance, path: str | Path, *, kl=None, threshold: float = 0.01,
                  title: str = "", max_dims: int = 64) -> Path:
    """Per latent dimension: Var_x E_q[z_d | x] (log scale, the active-unit threshold dashed) and,
    below, the KL of q(z_d | x) from the prior.

    :param kl: ``[D]`` KL per dimension in nats (``None``: one panel).
    """
    v = np.asarray(mean_variance, dtype=float)[:max_dims]
    d = len(v)
    rows = 1 if kl is None else 2
    fig, axes = new_figure(rows, 1, figsize=(WIDTH, 1.8 * rows + 0.5), squeeze=False, sharex=True)
    ax = axes[0][0]
    width = 0.8 if d > 4 else 0.4
    ax.bar(np.arange(d), np.maximum(v, 1e-8), width=width, color=np.where(v > threshold, "tab:blue", "tab:red"))
    ax.axhline(threshold, color="0.3", ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_ylabel("Var_x E_q[z_d|x]", fontsize=8)
    ax.set_title(f"posterior mean's variance over x (dashed: {threshold:g}, active above)", fontsize=8)
    ax.tick_params(which="both", labelsize=7)
    if kl is not None:
        ax2 = axes[1][0]
        ax2.bar(np.arange(d), np.asarray(kl, dtype=float)[:max_dims], width=width, color="0.45")
        ax2.set_ylabel("KL (nats)", fontsize=8)
        ax2.tick_params(labelsize=7)
    bottom = axes[-1][0]
    bottom.set_xticks(np.arange(d))
    bottom.set_xticklabels(list(labels)[:max_dims], rotation=90 if d > 12 else 0, fontsize=6 if d > 24 else 7)
    fig.suptitle(title or f"posterior collapse: {int((v > threshold).sum())} of {d} units active", fontsize=9)
    fig.tight_layout()
    return savefig(fig, path)
