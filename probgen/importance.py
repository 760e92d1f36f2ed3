"""The importance weights of the one estimator (:mod:`probgen.evaluate`): what is scored, and how the
K particles are drawn.

- **Particles.** K particles are drawn at once, in a plate left of the story's plates. A program
  that cannot be vectorised that way (a ``.expand(x.shape)``, a ``locs[assignment]`` without
  ``Vindex``: common Pyro code, and it trains) is scored by drawing them one at a time, as Pyro's
  ``Trace_ELBO(vectorize_particles=False)`` does: the same estimator, K runs of the model instead of
  one; one line says so, once per story.
- **Global sites.** A site drawn once for all examples (mixture weights and means outside the data
  plate) is no part of one example's weight: log p(x_i) is then conditional on the guide's draw of
  the globals, log p(x_i | θ), averaged over K draws of θ ~ q (at a point estimate such as
  ``AutoDelta``: the plug-in log p(x_i | θ̂)). :func:`scoring_plan` finds them (their values do not
  follow the batch) and says so in one line.
- **Exact.** A story whose guide draws no per-example site (every local latent is enumerated and
  summed in the weight) and whose global draw is a point has the same weight for every particle:
  it is scored exactly with one ("exact, enumerated"), not K wasted samples.
"""
from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Callable

import pyro
import torch

from .check import at_user_frame, first_line, is_enumerated, sample_sites, trace_pair
from .runtime import log

__all__ = ["ScoringPlan", "scoring_plan", "last_plan", "particle_traces", "log_weights", "log_joint", "enum_size"]

#: stories whose particles are drawn one at a time (the vectorised draw failed once)
_ONE_AT_A_TIME: "weakref.WeakSet" = weakref.WeakSet()
#: stories whose particles were drawn at once (no state to save before trying)
_VECTORISED: "weakref.WeakSet" = weakref.WeakSet()
#: story -> (key, plan) of its last :func:`scoring_plan`
_PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ScoringPlan:
    """What one story's weights hold: its global sites, whether its global draw is a point, whether
    its guide draws any per-example site (no: the weight is exact)."""

    global_sites: tuple = ()  # sample sites drawn once for all examples (skipped in each example's weight)
    point_globals: bool = True  # the guide's global draw is the same every time (AutoDelta, a MAP guide)
    local_guided: tuple = ()  # per-example sites the guide samples
    enumerated: tuple = ()  # per-example model sites summed out exactly
    observed_globals: tuple = ()  # global sites that are observed (a factor outside the data plate)
    auxiliary: tuple = ()  # the guide's own sites, not the model's (an AutoNormal's unconstrained draw)

    @property
    def exact(self) -> bool:
        """Every particle has the same weight: one particle gives the exact number."""
        return not self.local_guided and self.point_globals

    @property
    def estimator(self) -> str | None:
        """``"exact, enumerated"`` / ``"exact"`` when :attr:`exact`, else ``None`` (importance sampling)."""
        return ("exact, enumerated" if self.enumerated else "exact") if self.exact else None

    @property
    def global_latents(self) -> tuple:
        """The model's latent global sites (not observed ones, not a guide's auxiliary draws)."""
        return tuple(n for n in self.global_sites if n not in self.observed_globals and n not in self.auxiliary)

    @property
    def note(self) -> str | None:
        """One line on what the number is when the story has global latent sites (``None``: it has none)."""
        if not self.global_latents:
            return None
        names = ", ".join(map(repr, self.global_latents))
        if self.point_globals:
            return (f"global latent sites {names}: log p(x_i | θ̂) at the guide's point estimate θ̂, "
                    "not log p(x_i) under their prior")
        return (f"global latent sites {names}: log E_q(θ) p(x_i | θ), averaged over the guide's K draws of θ, "
                "not log p(x_i) under their prior")


def scoring_plan(story, x: torch.Tensor, y: torch.Tensor | None = None, *, model: Callable | None = None,
                 guide: Callable | None = None) -> ScoringPlan:
    """The :class:`ScoringPlan` of ``story`` (``model``/``guide``: another joint or proposal), found by
    running the guide and the model on two and on three copies of the first example: a site whose value
    keeps its shape is global. Cached per story; the random-number state is left as it was."""
    key = (model, guide, tuple(x.shape[1:]), y is None)
    cached = _PLANS.get(story)
    if cached is not None and cached[0] == key:
        return cached[1]
    plan = _find_plan(story, x, y, model, guide) if len(x) else ScoringPlan()
    _PLANS[story] = (key, plan)
    return plan


def last_plan(story) -> ScoringPlan | None:
    """The plan of the last :func:`scoring_plan` of ``story`` (``None``: none yet)."""
    cached = _PLANS.get(story)
    return None if cached is None else cached[1]


def _find_plan(story, x, y, model, guide) -> ScoringPlan:
    model = story.model if model is None else model
    guide = story.guide if guide is None else guide
    rng = pyro.util.get_rng_state()
    runs = []
    try:
        for n in (2, 3):
            idx = torch.zeros(n, dtype=torch.long, device=x.device)
            args = (x[idx],) if y is None else (x[idx], torch.as_tensor(y)[idx.to(torch.as_tensor(y).device)])
            with torch.no_grad():
                runs.append(trace_pair(model, guide, *args))
    except Exception:  # noqa: BLE001 - the estimator's own run reports the program's mistake
        return ScoringPlan()
    finally:
        pyro.util.set_rng_state(rng)
    (g2, m2), (g3, m3) = runs
    values = [{n: s["value"] for tr in run[::-1] for n, s in sample_sites(tr).items() if torch.is_tensor(s["value"])}
              for run in runs]  # the model's sites first, in its order
    glob = tuple(n for n, v in values[0].items() if n in values[1] and values[1][n].shape == v.shape)
    guided = {n for n, s in sample_sites(g2).items() if not s["is_observed"]}
    point = all(torch.equal(values[0][n], values[1][n]) for n in glob if n in guided)
    observed = tuple(n for n in glob if n in m2.nodes and m2.nodes[n]["is_observed"])
    local = tuple(n for n in guided if n not in glob and n in m2.nodes)
    enum = tuple(n for n, s in sample_sites(m2).items() if is_enumerated(s) and n not in guided and n not in glob)
    aux = tuple(n for n in guided if n not in m2.nodes)
    return ScoringPlan(global_sites=glob, point_globals=point, local_guided=local, enumerated=enum,
                       observed_globals=observed, auxiliary=aux)


# -- the weights ------------------------------------------------------------------------------
def log_joint(trace, nesting: int, enumerated: bool = False, skip=()) -> torch.Tensor:
    """Σ of the sample sites' log-probs per particle and example, ``[K, n]`` (sites in ``skip``: left
    out). Each site is first summed over the plates right of the data plate (tokens in a sentence: a
    per-example site is counted once, not once per token); enumerated dims (left of the particle
    plate) are then summed out, ``log Σ_c``, per example."""
    trace.compute_log_prob()
    total = 0.0
    for site in sample_sites(trace).values():
        if site["name"] in skip:
            continue
        if enumerated and is_enumerated(site):
            frames = [f.dim for f in site["cond_indep_stack"] if f.vectorized and f.name != "iwae_particles"]
            if -nesting not in frames:
                raise ValueError(f"site {site['name']!r} is enumerated outside the data plate; per-example "
                                 "likelihoods need it summed after the product over examples")
            if any(d > -nesting for d in frames):
                raise ValueError(f"site {site['name']!r} is enumerated inside an inner plate; the IWAE weights "
                                 "sum enumerated sites per example only")
        lp = torch.as_tensor(site["log_prob"])
        while lp.dim() < nesting + 1:  # particles × data × inner plates
            lp = lp.unsqueeze(0)
        if nesting > 1:
            lp = lp.sum(dim=tuple(range(-nesting + 1, 0)), keepdim=False)
        total = total + lp
    total = torch.as_tensor(total)
    while total.dim() > 2:  # enumerated dims, left of the particles
        total = torch.logsumexp(total, 0)
    return total


def particle_traces(story, x: torch.Tensor, num_samples: int, y: torch.Tensor | None = None, *,
                    model: Callable | None = None, guide: Callable | None = None, enumerate: bool = True):
    """The guide's trace and the model's trace replayed on it, with K particles in a plate left
    of the story's plates (``dim = -(max_plate_nesting + 1)``); with ``enumerate`` the model's
    enumerated sites get their own dims further left. Log-probs are computed.

    :return: ``(guide_trace, model_trace)``.
    """
    nesting = story.max_plate_nesting
    model = story.model if model is None else model
    guide = story.guide if guide is None else guide
    args = (x,) if y is None else (x, y)
    dim = -(nesting + 1)
    try:
        with torch.no_grad():  # numbers only: an autoguide's lazily computed log-densities too
            with pyro.plate("iwae_particles", num_samples, dim=dim):
                guide_tr, model_tr = trace_pair(model, guide, *args, enum_dim=dim - 1 if enumerate else None)
            guide_tr.compute_log_prob()
            model_tr.compute_log_prob()
    except (torch.cuda.OutOfMemoryError, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - the user's program: one line (log_weights falls back on it)
        name = getattr(story, "story_name", None) or type(story).__name__
        raise ValueError(f"{name}: the {num_samples} particles cannot be drawn at once in a plate: "
                         f"{first_line(e)}{at_user_frame(e)}") from e
    return guide_tr, model_tr


def _weights(story, x, num_samples, y, model, guide, skip) -> torch.Tensor:
    nesting = story.max_plate_nesting
    guide_tr, model_tr = particle_traces(story, x, num_samples, y, model=model, guide=guide)
    lw = log_joint(model_tr, nesting, enumerated=True, skip=skip) - log_joint(guide_tr, nesting, skip=skip)
    return lw.expand(num_samples, len(x))


def _one_at_a_time(story, x, num_samples, y, model, guide, skip) -> torch.Tensor:
    """``[K, n]`` from K runs without the particle plate (enumerated dims left of a particle dim of 1)."""
    nesting = story.max_plate_nesting
    args = (x,) if y is None else (x, y)
    out = []
    for _ in range(num_samples):
        with torch.no_grad():
            guide_tr, model_tr = trace_pair(story.model if model is None else model,
                                            story.guide if guide is None else guide, *args, enum_dim=-(nesting + 2))
        lw = log_joint(model_tr, nesting, enumerated=True, skip=skip) - log_joint(guide_tr, nesting, skip=skip)
        out.append(lw.expand(1, len(x)))  # [1, n]: the particle dim of one
    return torch.cat(out)


def log_weights(story, x: torch.Tensor, num_samples: int, y: torch.Tensor | None = None, *,
                model: Callable | None = None, guide: Callable | None = None, skip=None) -> torch.Tensor:
    """Importance log-weights ``log p(x, z_k) − log q(z_k | x)`` for one batch.

    :param story: a :class:`probgen.Story` (``model(x, y)``, ``guide(x, y)`` and ``max_plate_nesting``:
        the data plate outermost, at dim ``-max_plate_nesting``).
    :param x: a batch of data ``[n, ...]``.
    :param num_samples: K, vectorised in a plate left of the model's plates (one at a time for a program
        that cannot be vectorised so: the same weights, said once).
    :param model: the joint to score instead of ``story.model`` (same signature).
    :param guide: the proposal instead of ``story.guide`` (same signature, same latent sites).
    :param skip: sites left out of every example's weight (default: the story's global sites,
        :func:`scoring_plan`).
    :return: tensor ``[K, n]``.
    """
    if skip is None:
        skip = scoring_plan(story, x, y, model=model, guide=guide).global_sites
    if story in _ONE_AT_A_TIME:
        return _one_at_a_time(story, x, num_samples, y, model, guide, skip)
    if story in _VECTORISED:
        return _weights(story, x, num_samples, y, model, guide, skip)
    rng = pyro.util.get_rng_state()
    try:
        lw = _weights(story, x, num_samples, y, model, guide, skip)
        _VECTORISED.add(story)
        return lw
    except (torch.cuda.OutOfMemoryError, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - a program that cannot be vectorised: one particle at a time
        pyro.util.set_rng_state(rng)  # the draws the vectorised run would have made, in the same order
        t0 = time.perf_counter()
        try:
            lw = _one_at_a_time(story, x, num_samples, y, model, guide, skip)
        except Exception:  # noqa: BLE001 - the vectorised error names the problem better
            name = getattr(story, "story_name", None) or type(story).__name__
            cause = e.__cause__ or e
            raise ValueError(f"{name}: scoring failed: {first_line(cause)}{at_user_frame(cause)}") from e
        _ONE_AT_A_TIME.add(story)
        name = getattr(story, "story_name", None) or type(story).__name__
        log(f"{name}: the particles cannot be drawn at once in a plate ({first_line(e.__cause__ or e)}"
            f"{at_user_frame(e.__cause__ or e)}); drawing them one at a time, as Pyro's non-vectorised path does: the same estimate, "
            f"one run of the model per particle ({time.perf_counter() - t0:.2g} s for {num_samples} particle"
            f"{'s' if num_samples > 1 else ''} of the first {len(x)} examples)")
        return lw


def enum_size(story, x, y, model=None, guide=None) -> int:
    """How many values the enumerated model sites take together (1: none), from one example and one
    particle; the random-number state is left as it was."""
    if not len(x):
        return 1
    rng = pyro.util.get_rng_state()
    try:
        nesting = story.max_plate_nesting
        args = (x[:1],) if y is None else (x[:1], y[:1])
        with torch.no_grad(), pyro.plate("iwae_particles", 1, dim=-(nesting + 1)):
            guide_tr, tr = trace_pair(story.model if model is None else model, story.guide if guide is None else guide,
                                      *args)
        size = 1
        for s in sample_sites(tr).values():
            if is_enumerated(s) and not s["is_observed"] and s["name"] not in guide_tr.nodes:
                support = s["fn"].enumerate_support(expand=False)
                size *= max(1, len(support))
        return size
    except Exception:  # noqa: BLE001 - only a chunk size: the real run reports the problem
        return 1
    finally:
        pyro.util.set_rng_state(rng)
