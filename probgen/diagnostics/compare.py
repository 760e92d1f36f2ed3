"""Which model is better, with uncertainty? elpd from held-out pointwise log-likelihoods.

:func:`compare_pointwise`: elpd per model, differences and their standard errors (what
``probgen compare`` prints), ArviZ's stacking weights beside them.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ._arviz import _az_stacking

__all__ = ["compare_pointwise"]


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
        from ..plots.diagnostics import plot_compare

        plot_compare(result, figure)
        result["figure"] = str(figure)
    return result


def _compare_text(result: dict, order: list[str]) -> str:
    w = max([12] + [len(name) + 2 for name in order])  # a user story's row: FILE.py:NAME
    header = f"{'model':<{w}}{'rank':>5}{'elpd':>12}{'se':>9}{'elpd_diff':>11}{'dse':>9}{'weight':>8}{'per point':>11}"
    lines = [header, "-" * len(header)]
    for name in order:
        m = result["models"][name]
        lines.append(f"{name:<{w}}{m['rank']:>5}{m['elpd']:>12.1f}{m['se']:>9.1f}{m['elpd_diff']:>11.1f}"
                     f"{m['dse']:>9.1f}{'-' if m['weight'] is None else format(m['weight'], '.2f'):>8}"
                     f"{m['elpd_per_point']:>11.2f}")
    for name, d in result["differences"].items():
        verdict = "clearly better" if d["clear"] else "not clearly better (|diff| < 2 dse)"
        lines.append(f"{d['vs']} vs {name}: {-d['elpd_diff']:+.1f} ± {d['dse']:.1f} nats "
                     f"over {result['n']} points ({-d['elpd_diff_per_point']:+.3f}/point): {d['vs']} is {verdict}")
    return "\n".join(lines)
