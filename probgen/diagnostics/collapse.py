"""Has the code collapsed? Active units, KL per dimension and the mutual information between x and z.

Posterior collapse: q(z | x) ≈ p(z) for every x, so the code carries nothing about the example and a
strong decoder models x alone (the classic failure of the sentence VAE). Three numbers show it:

- **Active units** (Burda et al. 2016): dimension d is active when Var_x E_q[z_d | x] > :data:`ACTIVE`
  (0.01): the posterior mean moves with the example.
- **KL per dimension**: E_x KL(q(z_d | x) ‖ p(z_d)) of the marginals (for a factorised q they sum to
  the ELBO's KL term, also given whole as ``kl_total``, by Monte Carlo); a dimension with KL ≈ 0 is
  unused.
- **Mutual information** I_q(x; z) under q(x, z) = p_data(x) q(z | x), by the minibatch estimate of
  Hoffman & Johnson (2016), as in He et al. (2019): I ≈ (1/N) Σ_i [log q(z_i | x_i) − log (1/N)
  Σ_j q(z_i | x_j)], z_i ~ q(z | x_i), over the N examples given (at most log N). The ELBO's KL term
  splits as E_x KL(q(z | x) ‖ p(z)) = I_q(x; z) + KL(q(z) ‖ p(z)) (the aggregate posterior's distance
  to the prior).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributions as tdist
from pyro import poutine
from pyro.distributions.torch_distribution import MaskedDistribution

from ..evaluate import prepared
from .latents import Code, flat, guide_draws, real_code

__all__ = ["Collapse", "collapse", "ACTIVE", "MI_METHOD"]

#: Var_x E_q[z_d | x] above which unit d is active (Burda et al. 2016)
ACTIVE = 0.01
MI_METHOD = ("minibatch estimate of I_q(x; z) = E[log q(z|x)] − E[log q(z)], q(z) the aggregate posterior "
             "(1/N) Σ_j q(z | x_j) over the N examples (Hoffman & Johnson 2016; He et al. 2019); at most log N")


@dataclass
class Collapse:
    """Collapse numbers of one guide on N examples (arrays ``[D]``, one entry per latent dimension)."""

    labels: list
    mean_variance: np.ndarray  # Var_x E_q[z_d | x]
    kl: np.ndarray | None  # E_x KL(q(z_d | x) ‖ p(z_d)) of Gaussian marginals (None: not Gaussian)
    kl_total: float  # E_x KL(q(z | x) ‖ p(z)), Monte Carlo over the guide's draws
    mi: float | None  # I_q(x; z) of the sites in mi_sites
    mi_sites: tuple
    n: int
    threshold: float = ACTIVE
    notes: list = field(default_factory=list)

    @property
    def active(self) -> np.ndarray:
        return self.mean_variance > self.threshold

    def verdict(self) -> str:
        k, D = int(self.active.sum()), len(self.labels)
        mi = "" if self.mi is None else f", I(x; z) {self.mi:.3f} nats (at most log N = {math.log(self.n):.2f})"
        numbers = f"KL {self.kl_total:.3f} nats{mi}"
        if k == 0:
            return (f"collapsed: 0 of {D} units active (Var_x E_q[z|x] ≤ {self.threshold:g} everywhere), {numbers}: "
                    "the code carries nothing about x")
        if k < D:
            return f"partly collapsed: {k} of {D} units active, {numbers}"
        return f"no collapse: all {D} units active, {numbers}"

    def summary(self) -> dict:
        """JSON-able numbers for ``summary.json``."""
        agg = None if self.mi is None or len(self.mi_sites) < len({lab.split("[")[0] for lab in self.labels}) \
            else self.kl_total - self.mi
        return {
            "n": self.n, "dims": len(self.labels), "active_units": int(self.active.sum()),
            "active_threshold": self.threshold,
            "active_definition": "Var over x of E_q[z_d | x] above the threshold (Burda et al. 2016)",
            "verdict": self.verdict(), "kl_total": self.kl_total,
            "kl_per_dim": None if self.kl is None else [float(v) for v in self.kl],
            "kl_per_dim_definition": "E_x KL(q(z_d | x) ‖ p(z_d)) of the Gaussian marginals",
            "mean_variance": [float(v) for v in self.mean_variance], "labels": list(self.labels),
            "mutual_information": {"value": self.mi, "sites": list(self.mi_sites), "method": MI_METHOD,
                                   "upper_bound": math.log(self.n)},
            "aggregate_kl": agg, "notes": list(self.notes),
        }


def _gaussian(site, lead: int, n: int):
    """``(loc, scale)`` of the per-value marginals of a Normal / MultivariateNormal site, flattened as
    ``[lead, n, d]``; ``None`` for another distribution."""
    fn, shape = site["fn"], site["value"].shape
    base = fn
    while isinstance(base, (tdist.Independent, MaskedDistribution)):
        base = base.base_dist
    if isinstance(base, tdist.Normal):
        loc, scale = base.loc, base.scale
    elif isinstance(base, tdist.MultivariateNormal):
        loc, scale = base.loc, base.covariance_matrix.diagonal(dim1=-2, dim2=-1).sqrt()
    else:
        return None
    return flat(loc.expand(shape), lead, n), flat(scale.expand(shape), lead, n)


def _site_mean(site, lead: int, n: int) -> torch.Tensor:
    """E over the draws of the site's mean (exact for a site that reads x only); draws' mean otherwise."""
    fn = site["fn"]
    try:
        m = fn.mean.expand(site["value"].shape)
    except NotImplementedError:
        m = site["value"]
    return flat(m, lead, n).mean(0)


def collapse(story, x: torch.Tensor, y=None, *, draws: int = 10, batch_size: int = 256,
             mi_points: int = 1000) -> Collapse:
    """Active units, KL per dimension and I_q(x; z) of ``story``'s guide on the examples ``x``.

    :param story: a story whose traits say it has a guide over a real-valued code.
    :param x: data ``[n, ...]`` (test examples); ``y``: labels of a conditional story.
    :param draws: guide draws per example for E_q[z | x] of sites that read other draws, and for the KL.
    :param batch_size: examples per forward pass.
    :param mi_points: the first N examples used for the mutual information (it costs N² densities).
    :return: :class:`Collapse`.
    """
    if not story.traits.guide:
        raise ValueError(f"{type(story).__name__} has no guide q(z | x) whose collapse could be measured")
    if len(x) < 2:
        raise ValueError(f"collapse needs at least 2 examples, got {len(x)}")
    x, y = prepared(story, x, y)  # checked, on the story's device
    code = real_code(story, x, y)
    if not code.sites:
        raise ValueError(f"{type(story).__name__}'s guide draws no real-valued per-example code")
    was = story.training
    story.eval()
    try:
        means, kls, kl_tot = [], [], []
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size]
            yb = None if y is None else y[start:start + batch_size]
            m, k, t = _batch(story, xb, yb, int(draws), code)
            means.append(m)
            kls.append(k)
            kl_tot.append(t)
        mi, mi_sites, notes = _mutual_information(story, x[:mi_points], None if y is None else y[:mi_points], code)
    finally:
        story.train(was)
    mean = torch.cat(means).double()  # n × D
    kl = None if any(k is None for k in kls) else torch.cat(kls).double().mean(0).cpu().numpy()
    return Collapse(code.labels, mean.var(0).cpu().numpy(), kl, float(torch.cat(kl_tot).double().mean()),
                    mi, mi_sites, int(min(len(x), mi_points)), notes=notes)


def _batch(story, x, y, draws: int, code: Code):
    """Per example: E_q[z | x] ``[n, D]``, KL of the marginals ``[n, D]`` (or None), total KL ``[n]``."""
    n = len(x)
    guide_tr, model_tr = guide_draws(story, x, draws, y)
    means, kls, total = [], [], 0.0
    for s in code.sites:
        q_site, p_site = guide_tr.nodes[s], model_tr.nodes[s]
        means.append(_site_mean(q_site, 1, n))
        q, p = _gaussian(q_site, 1, n), _gaussian(p_site, 1, n)
        if q is None or p is None:
            kls = None
        elif kls is not None:
            (mq, sq), (mp, sp) = q, p
            kls.append((torch.log(sp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * sp**2) - 0.5).mean(0))  # n × d
        log_q = flat(q_site["unscaled_log_prob"], 1, n).sum(-1)  # L × n (the KL unweighted by any annealing)
        total = total + log_q - flat(p_site["unscaled_log_prob"], 1, n).sum(-1)
    return torch.cat(means, 1), None if kls is None else torch.cat(kls, 1), torch.as_tensor(total).mean(0)


def _mutual_information(story, x, y, code: Code, chunk: int = 128):
    """I_q(x; z) of the guide's sites that read x only (a site drawn from other draws, like the
    top layer of a hierarchical guide, adds nothing about x beyond them)."""
    args = (x,) if y is None else (x, y)
    with torch.no_grad():
        first = poutine.trace(story.guide).get_trace(*args)
        second = poutine.trace(story.guide).get_trace(*args)
    first.compute_log_prob()
    n = len(x)
    own, notes = [], []
    for s in code.sites:  # the same density for the same value on a fresh run: the site reads x only
        again = second.nodes[s]["fn"].log_prob(first.nodes[s]["value"])
        if torch.allclose(again, first.nodes[s]["unscaled_log_prob"], rtol=1e-4, atol=1e-4):
            own.append(s)
        else:
            notes.append(f"I(x; {s}) not estimated on its own: q({s} | ·) reads other draws of the guide")
    if not own:
        return None, (), notes
    log_own, log_agg = 0.0, []
    for s in own:
        log_own = log_own + flat(first.nodes[s]["unscaled_log_prob"], 0, n).sum(-1)  # n
    for start in range(0, n, chunk):
        cross = 0.0  # c × n: log q(z_i | x_j)
        for s in own:
            v = first.nodes[s]["value"][start:start + chunk]
            lp = first.nodes[s]["fn"].log_prob(v.unsqueeze(1))
            cross = cross + lp.reshape(len(v), n, -1).sum(-1)
        log_agg.append(torch.logsumexp(torch.as_tensor(cross).double(), 1) - math.log(n))
    mi = float((log_own.double() - torch.cat(log_agg)).mean())
    return mi, tuple(own), notes
