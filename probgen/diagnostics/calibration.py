"""Is the encoder calibrated? Simulation-based calibration (SBC) of an amortised guide.

Talts et al. (2018): draw z ~ p(z) and x ~ p(x | z), then L draws z¹..z^L ~ q(z | x); the rank of the
true z among them, r = #{l : z^l < z}, is uniform on {0, ..., L} for every latent dimension when
q(z | x) is the posterior p(z | x). For an amortised guide each simulation costs one forward pass (no
refitting, unlike SBC for MCMC or non-amortised VI). What a non-uniform rank histogram says:

- **∩ (a hump in the middle): over-dispersed** — q(z | x) is wider than the posterior, the truth
  sits in its middle too often.
- **∪ (both ends heavy): under-dispersed** — q(z | x) is too narrow, the truth falls in its tails.
- **skewed: biased** — ranks pile at one end: q(z | x) sits above (low ranks) or below (high ranks)
  the truth.

Each dimension gets a χ² test of its binned ranks against the uniform; the story's verdict uses the
Bonferroni level :data:`ALPHA` / D, so a calibrated guide with many dimensions is not called off by
chance. A dimension that fails is called by the larger of two standardised deviations: of the mean
normalised rank from ½ (bias) and of its variance from the uniform's 1/12 (dispersion).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..evaluate import prepared
from ._arviz import _az_ecdf_band
from .latents import Code, NotSimulable, flat, guide_draws, real_code, simulate

__all__ = ["Calibration", "sbc", "ALPHA", "SHAPES"]

#: family-wise level of the SBC verdict (Bonferroni over latent dimensions)
ALPHA = 0.01
#: verdict of one dimension -> what it means for q(z | x)
SHAPES = {
    "calibrated": "ranks uniform: q(z | x) matches p(z | x) in this dimension",
    "over-dispersed": "∩: q(z | x) is too wide",
    "under-dispersed": "∪: q(z | x) is too narrow",
    "biased": "skewed: q(z | x) sits off the truth",
}


@dataclass
class Calibration:
    """Ranks of true codes among draws of the guide, one column per latent dimension.

    :ivar ranks: ``[N, D]`` integers in ``0..draws``.
    :ivar labels: ``D`` names, ``z[0]``, ...
    """

    ranks: np.ndarray
    draws: int
    labels: list
    bins: int
    seconds: float = 0.0
    alpha: float = ALPHA
    p_values: np.ndarray = field(init=False)
    mean_z: np.ndarray = field(init=False)  # standardised deviation of the mean normalised rank from 1/2
    var_z: np.ndarray = field(init=False)  # ... of its variance from the uniform's

    def __post_init__(self):
        from scipy.stats import chi2

        r = np.asarray(self.ranks, dtype=np.int64)
        n = len(r)
        counts = self.counts()
        expected = n / self.bins
        stat = ((counts - expected) ** 2 / expected).sum(0)  # D
        self.p_values = chi2.sf(stat, self.bins - 1)
        # u = r / L on the grid 0, 1/L, ..., 1: mean 1/2, variance (L + 2) / (12 L) under uniform ranks
        L = self.draws
        u = r / L
        var0 = (L + 2) / (12 * L)
        mu4 = 1 / 80  # fourth central moment of U(0, 1): the variance's standard error
        self.mean_z = (u.mean(0) - 0.5) / np.sqrt(var0 / n)
        self.var_z = (u.var(0) - var0) / np.sqrt((mu4 - 1 / 144) / n)

    @property
    def n(self) -> int:
        return int(len(self.ranks))

    def counts(self) -> np.ndarray:
        """``[bins, D]`` ranks per bin (``draws + 1`` rank values split evenly)."""
        b = (np.asarray(self.ranks) * self.bins) // (self.draws + 1)
        return np.stack([np.bincount(b[:, j], minlength=self.bins) for j in range(b.shape[1])], axis=1)

    def band(self, level: float = 0.99) -> tuple[float, float]:
        """Pointwise ``level`` interval of one bin's count under uniform ranks (Binomial(N, 1/bins))."""
        from scipy.stats import binom

        lo, hi = binom.ppf([(1 - level) / 2, (1 + level) / 2], self.n, 1 / self.bins)
        return float(lo), float(hi)

    def ecdf(self, prob: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """ECDF of the normalised ranks minus the uniform's, at the bin edges, with ArviZ's simultaneous
        ``prob`` band (Säilynoja et al. 2022): ``(edges [P], diff [P, D], lower [P], upper [P])``."""
        edges = np.arange(1, self.bins) / self.bins
        diff = np.cumsum(self.counts(), axis=0)[:-1] / self.n - edges[:, None]
        lo, hi = _az_ecdf_band(self.n, edges, prob)
        return edges, diff, np.asarray(lo) - edges, np.asarray(hi) - edges

    def dim_verdicts(self) -> list[str]:
        """One of :data:`SHAPES` per dimension."""
        out = []
        for p, m, v in zip(self.p_values, self.mean_z, self.var_z):
            if p >= self.alpha / len(self.p_values):
                out.append("calibrated")
            elif abs(m) >= abs(v):
                out.append("biased")
            else:
                out.append("over-dispersed" if v < 0 else "under-dispersed")
        return out

    def verdict(self) -> str:
        """One line: calibrated, or the commonest failure and in how many dimensions."""
        dims = self.dim_verdicts()
        bad = [d for d in dims if d != "calibrated"]
        D = len(dims)
        level = f"χ² on {self.bins} bins, Bonferroni {self.alpha:g}/{D}"
        if not bad:
            return f"calibrated: ranks uniform in all {D} dimensions (min p = {self.p_values.min():.3g}, {level})"
        shape = self.shape()
        worst = self.labels[int(np.argmin(self.p_values))]
        extra = "" if bad.count(shape) == len(bad) else f" ({len(bad) - bad.count(shape)} more fail otherwise)"
        return (f"{shape} ({SHAPES[shape]}) in {bad.count(shape)} of {D} dimensions{extra}; worst {worst}, "
                f"p = {self.p_values.min():.2g} ({level})")

    def shape(self) -> str:
        """The overall verdict's word: ``calibrated`` or the commonest failure."""
        dims = self.dim_verdicts()
        bad = [d for d in dims if d != "calibrated"]
        if not bad:
            return "calibrated"
        # the commonest failure; a tie goes to the shape of the worst dimension
        return max(set(bad), key=lambda s: (bad.count(s), -min(p for p, d in zip(self.p_values, dims) if d == s)))

    def summary(self) -> dict:
        """JSON-able numbers for ``summary.json``."""
        lo, hi = self.band()
        dims = self.dim_verdicts()
        _, diff, elo, ehi = self.ecdf()
        outside = ((diff < elo[:, None] - 1e-12) | (diff > ehi[:, None] + 1e-12)).any(0)
        return {
            "method": "simulation-based calibration (Talts et al. 2018) of the amortised guide: z ~ p(z), "
                      "x ~ p(x | z), rank of z among L draws of q(z | x), per latent dimension",
            "simulations": self.n, "draws": self.draws, "bins": self.bins,
            "test": "chi-squared of binned ranks against uniform, per dimension",
            "alpha": self.alpha, "verdict": self.verdict(), "shape": self.shape(),
            "band_99": [lo, hi], "seconds": round(self.seconds, 2),
            "ecdf_outside_band_95": int(outside.sum()),
            "ecdf_band": "simultaneous 95% band of the rank ECDF (ArviZ's ecdf_confidence_band)",
            "dims": [{"name": name, "p_value": float(p), "mean_rank": float(r), "mean_z": float(m),
                      "var_z": float(v), "verdict": d,
                      **({"direction": "q(z|x) above the truth" if m < 0 else "q(z|x) below the truth"}
                         if d == "biased" else {})}
                     for name, p, r, m, v, d in zip(self.labels, self.p_values, self.ranks.mean(0) / self.draws,
                                                    self.mean_z, self.var_z, dims)],
        }


def _bins(n: int, draws: int) -> int:
    """At most 20 bins, about 30 simulations each, dividing the ``draws + 1`` rank values evenly."""
    target = max(2, min(20, n // 30))
    return max(b for b in range(1, target + 1) if (draws + 1) % b == 0)


def sbc(story, x: torch.Tensor, y=None, *, simulations: int | None = None, draws: int = 99,
        bins: int | None = None, batch_size: int = 256) -> Calibration:
    """Simulation-based calibration of ``story``'s guide, per latent dimension.

    :param story: a story whose traits say it has a guide (``traits.guide``) over a real-valued code.
    :param x: template examples ``[n, ...]``: their shape (and, for a conditional story, ``y``: the
        simulations are drawn given these labels). Cycled when ``simulations > n``.
    :param y: labels of a conditional story.
    :param simulations: N draws of (z, x) (default ``len(x)``).
    :param draws: L draws of q(z | x) per simulation (ranks 0..L); ``draws + 1`` should have many divisors.
    :param bins: rank bins of the χ² test (default: ≤ 20 with ~30 simulations each, dividing ``draws + 1``).
    :param batch_size: simulations per forward pass.
    :return: :class:`Calibration`.
    :raises ValueError: no guide, no real-valued code, global latent sites, or a model whose x cannot be
        simulated (:class:`.latents.NotSimulable`; one line why).
    """
    if not story.traits.guide:
        raise ValueError(f"{type(story).__name__} has no guide q(z | x) to calibrate")
    draws, n = int(draws), int(simulations or len(x))
    if draws < 1 or n < 2:
        raise ValueError(f"SBC needs draws >= 1 and simulations >= 2, got {draws} and {n}")
    if bins is not None and (draws + 1) % int(bins):
        raise ValueError(f"bins={bins} must divide the {draws + 1} rank values")
    x, y = prepared(story, x, y)  # checked, on the story's device
    plan_globals = _latent_globals(story, x, y)
    if plan_globals:
        raise NotSimulable(f"global latent sites {', '.join(map(repr, plan_globals))}: per-example ranks "
                           "would be conditional on one draw of them")
    code = real_code(story, x, y)
    if not code.sites:
        raise ValueError(f"{type(story).__name__}'s guide draws no real-valued per-example code")
    t0 = time.perf_counter()
    idx = torch.arange(n) % len(x)
    was = story.training
    story.eval()
    parts = []
    try:
        for start in range(0, n, batch_size):
            i = idx[start:start + batch_size].to(x.device)
            xb, yb = x[i], None if y is None else y[i]
            parts.append(_ranks(story, xb, yb, draws, code))
    except NotSimulable:
        raise
    except Exception as e:  # noqa: BLE001 - a story the simulation cannot run: one line, not SBC's traceback
        raise NotSimulable(f"simulating from the model failed: {type(e).__name__}: {str(e).splitlines()[0]}") from e
    finally:
        story.train(was)
    ranks = np.concatenate(parts)
    return Calibration(ranks, draws, code.labels, int(bins) if bins else _bins(n, draws),
                       seconds=time.perf_counter() - t0)


def _latent_globals(story, x, y) -> tuple:
    from ..importance import scoring_plan

    plan = scoring_plan(story, x, y)
    return tuple(s for s in plan.global_sites if s not in plan.observed_globals)


def _ranks(story, x, y, draws: int, code: Code) -> np.ndarray:
    """``[n, D]`` ranks of one batch of simulations."""
    truth, x_sim = simulate(story, x, y, code=code)
    guide_tr, _ = guide_draws(story, x_sim, draws, y)
    cols = []
    for site in code.sites:
        q = flat(guide_tr.nodes[site]["value"], 1, len(x))  # L × n × d
        cols.append((q < truth[site].unsqueeze(0)).sum(0))  # n × d
    return torch.cat(cols, dim=1).cpu().numpy()
