"""Figures of ``probgen tour`` that no family draws itself: the GMM's two-step story and the
log-likelihood bar chart of the comparison table. matplotlib is imported lazily (via ``core``)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .core import mosaic, mosaic_inches, new_figure, savefig

__all__ = ["gmm_story", "loglik_bars"]


def _arr(x) -> np.ndarray:
    return x.detach().cpu().float().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float32)


def gmm_story(weights, means, draws, path: str | Path, *, title: str = "") -> Path:
    """The GMM as a two-step story: left, the multinomial π over components (step 1);
    right, per component its mean image and draws x ~ component m (step 2).

    :param weights: ``[K]`` mixture weights π.
    :param means: ``[K, H, W]`` component means (or Bernoulli probabilities).
    :param draws: ``[K, m, H, W]`` draws from each component.
    """
    w, mu, x = _arr(weights), _arr(means), _arr(draws)
    K, m = x.shape[:2]
    order = np.argsort(-w)  # most probable component on top
    rows = np.concatenate([mu[order][:, None], x[order]], axis=1)  # K × (1 + m) × H × W
    grid = mosaic(rows.reshape(-1, *rows.shape[2:]), nrow=1 + m)
    gw, gh = mosaic_inches(grid.shape, mu.shape[-2:])  # each image >= MIN_PIXELS a side
    fig, (ax_w, ax_x) = new_figure(1, 2, figsize=(gw * 1.9 + 0.6, gh * 1.3 + 1.0),
                                   gridspec_kw={"width_ratios": [1, 2.6]})
    ys = np.arange(K)
    ax_w.barh(ys, w[order], color="tab:blue")
    ax_w.set_yticks(ys)
    # "component 3", not "m=3": students read a bare number beside digit images as a digit class
    ax_w.set_yticklabels([f"component {k}" for k in order], fontsize=7)
    ax_w.invert_yaxis()
    ax_w.set_xlabel("mixture weight π")
    ax_w.set_title("1. pick a component ~ Categorical(π)\n(unlabelled: its number is no digit)", fontsize=9)
    ax_x.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest", aspect="equal")
    ax_x.set_title("2. draw x from that component (first column: its mean)", fontsize=9)
    ax_x.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return savefig(fig, path)


def loglik_bars(rows: Sequence[dict], path: str | Path, *, density: bool = False) -> Path:
    """Horizontal bars of test log-likelihood ± 2 s.e., labelled with the estimator.

    :param rows: dicts with ``name``, ``test_log_likelihood``, ``stderr``, ``estimator``.
    """
    fig, ax = new_figure(figsize=(6.5, 0.45 * len(rows) + 1.2))
    names = [f"{r['name']} ({r['estimator']})" for r in rows]
    ax.barh(names, [r["test_log_likelihood"] for r in rows], xerr=[2 * r["stderr"] for r in rows],
            color=["tab:green" if r["estimator"] == "exact" else "tab:blue" if r["estimator"].startswith("IWAE")
                   else "tab:gray" for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel(("log density" if density else "log-likelihood") + " (nats/image, ±2 s.e.), higher is better")
    ax.set_title("test log-likelihood: green exact, blue IWAE lower bound, grey weak estimators", fontsize=9)
    return savefig(fig, path)
