"""The real-valued code of a story, found by tracing: which guide sites, how many values per example,
draws of the guide, and draws of (z, x) from the joint p(z) p(x | z) for calibration.

Nothing here asks a story what it can do: sites come from Pyro traces, supports from the sites'
distributions, and :mod:`.calibration` / :mod:`.collapse` read the story's :class:`probgen.traits.Traits`
before they call in.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.poutine.messenger import Messenger

from ..check import sample_sites
from ..importance import particle_traces, scoring_plan

__all__ = ["Code", "real_code", "flat", "guide_draws", "simulate", "NotSimulable"]


class NotSimulable(ValueError):
    """x cannot be drawn from p(x | z) by running the model with its observation removed (one line why)."""


@dataclass(frozen=True)
class Code:
    """The per-example, real-valued latent sites of a guide, in the guide's order."""

    sites: tuple  # site names
    sizes: tuple  # values per example of each site

    @property
    def labels(self) -> list[str]:
        """``z[0]``, ``z[1]``, ... for every value of every site (``z1[3]`` for a site ``z1``)."""
        return [f"{s}[{j}]" for s, d in zip(self.sites, self.sizes) for j in range(d)]

    @property
    def dim(self) -> int:
        return int(sum(self.sizes))


def _real(fn) -> bool:
    """A distribution over real values (a Normal, a MultivariateNormal, a flow on R^d), not a discrete one."""
    if fn.has_enumerate_support:
        return False
    support = fn.support
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support is constraints.real


def real_code(story, x: torch.Tensor, y=None) -> Code:
    """The guide's per-example real-valued sites (global sites and discrete or constrained ones left out).

    :param story: a story whose traits say it has a guide.
    :param x: a few examples (two are enough).
    :return: :class:`Code`; no sites when the guide draws no real per-example code.
    """
    glob = set(scoring_plan(story, x, y).global_sites)
    with torch.no_grad():
        guide_tr = poutine.trace(story.guide).get_trace(*_args(x[:2], None if y is None else y[:2]))
    names, sizes = [], []
    for name, site in sample_sites(guide_tr).items():
        if site["is_observed"] or site["infer"].get("is_auxiliary") or name in glob or not _real(site["fn"]):
            continue
        names.append(name)
        sizes.append(int(site["value"].reshape(2, -1).shape[1]))
    return Code(tuple(names), tuple(sizes))


def _args(x, y) -> tuple:
    return (x,) if y is None else (x, y)


def flat(value: torch.Tensor, lead: int, n: int) -> torch.Tensor:
    """A site's value as ``[*lead dims, n, values per example]`` (inner plates of size 1 folded in)."""
    value = value.detach()
    shape = tuple(value.shape[:lead])
    return value.reshape(*shape, n, -1)


def guide_draws(story, x: torch.Tensor, draws: int, y=None):
    """``draws`` particles of the guide on ``x`` and the model replayed on them, log-probs computed
    (:func:`probgen.importance.particle_traces`, no enumeration). :return: ``(guide_trace, model_trace)``."""
    return particle_traces(story, x, draws, y, enumerate=False)


class _Unobserve(Messenger):
    """Draw the named observed sites from their distributions instead of conditioning on them."""

    def __init__(self, names):
        super().__init__()
        self.names = set(names)

    def _pyro_sample(self, msg):
        if msg["name"] in self.names and msg["is_observed"]:
            msg["is_observed"] = False
            msg["value"] = None
            msg["done"] = False


def _data_site(model_tr, x: torch.Tensor) -> str:
    """The observed site whose value is the data ``x`` itself (in any shape)."""
    found = [n for n, s in sample_sites(model_tr).items()
             if s["is_observed"] and torch.is_tensor(s["value"]) and s["value"].numel() == x.numel()
             and torch.equal(s["value"].reshape(x.shape).to(x.dtype), x)]
    if len(found) != 1:
        raise NotSimulable("no observed site of the model holds x as it was passed in (the model trims or "
                           "transforms it), so x cannot be drawn from p(x | z) by running the model"
                           if not found else f"several observed sites hold the data x ({', '.join(found)})")
    return found[0]


def simulate(story, x: torch.Tensor, y=None, *, code: Code) -> tuple[dict, torch.Tensor]:
    """One draw from the joint per example: z ~ p(z) (every latent site of the model), x ~ p(x | z).

    ``x`` is a template (its shape; ``y`` stays as given: a conditional story is simulated given its
    labels). The model runs with its data site unobserved; then it is run again on the simulated x with
    the same z, and the data site's log-probability must not move: a likelihood that reads its own
    observation (a teacher-forced, autoregressive decoder) cannot be simulated this way.

    :return: ``({site: [n, d] true values}, x_sim)`` with ``x_sim`` shaped like ``x``.
    :raises NotSimulable: one line why (no data site, or a likelihood that reads the data).
    """
    n = len(x)
    with torch.no_grad():
        conditioned = poutine.trace(story.model).get_trace(*_args(x, y))
        name = _data_site(conditioned, x)
        tr = poutine.trace(_Unobserve([name])(story.model)).get_trace(*_args(x, y))
        x_sim = tr.nodes[name]["value"].reshape(x.shape).to(x.dtype)
        again = poutine.trace(poutine.replay(story.model, trace=tr)).get_trace(*_args(x_sim, y))
        before = tr.nodes[name]["fn"].log_prob(tr.nodes[name]["value"])
        after = again.nodes[name]["fn"].log_prob(again.nodes[name]["value"])
    if before.shape != after.shape or not torch.allclose(before, after, rtol=1e-4, atol=1e-3):
        raise NotSimulable(f"the likelihood of site {name!r} reads the data it scores (an autoregressive or "
                           "teacher-forced decoder): x cannot be drawn from p(x | z) by running the model once")
    missing = [s for s in code.sites if s not in tr.nodes]
    if missing:
        raise NotSimulable(f"the model has no site {missing[0]!r} for the guide's draw to be ranked against")
    return {s: flat(tr.nodes[s]["value"], 0, n) for s in code.sites}, x_sim
