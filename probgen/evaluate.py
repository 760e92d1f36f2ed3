"""Likelihoods: exact where the model has one, importance-weighted (IWAE) otherwise; the one scoring policy.

The estimator knows no particular model. For a story with a guide q(z | x) it
draws K codes per example and averages the importance weights in log space::

    log p(x) ≈ log (1/K) Σ_k p(x, z_k) / q(z_k | x),   z_k ~ q(z | x)

This is the IWAE bound (Burda et al. 2016): a lower bound in expectation that
tightens as K grows, and equals the ELBO at K = 1. Discrete model sites marked for
enumeration (and not sampled by the guide) are summed exactly inside each weight,
p(x, z_k) = Σ_c p(x, z_k, c). Any plate nesting works (the data plate outermost, inner
plates such as tokens are summed per example). Work is chunked both over examples
and over the K samples, so memory does not grow with the number of examples or with
K: 100k images × K = 1000 work in ~64 MiB on CPU (docs/reliability.md).

:func:`score` is the one scoring policy (the "test log-likelihood" column of
``compare``, the tour, the experiments and ``probgen.score``): log p(x) in nats per
example, always the marginal over labels for a conditional model (CVAE). It reads what a story
declares (``story.traits``: ``estimator``, ``labels``, ``guide``, ``memory_per_example``) and asks
nothing else; ``estimator="iwae"`` gives the IWAE estimate of an exact story that has a guide (PPCA).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyro
import torch

from .check import pyro_state_kept
from .data import MAX_CLASSES, check_labels, check_tensor
from .importance import ScoringPlan, enum_size, last_plan, log_weights, particle_traces, scoring_plan
from .parzen import PARZEN_KERNELS, parzen_log_prob, select_parzen_bandwidth  # noqa: F401 - re-exported

__all__ = ["log_likelihood", "story_log_prob", "prepared", "log_weights", "particle_traces", "marginal_log_likelihood",
           "elbo_per_example", "parzen_log_prob", "select_parzen_bandwidth", "psis_khat", "Score", "score",
           "scores_with_guide", "LikelihoodResult", "summarize", "KHAT_BAD", "FORCED_ESTIMATORS", "MAX_NUM_SAMPLES",
           "MAX_REFINE", "check_effort"]

#: PSIS k̂ above this: the importance weights have too heavy a tail to trust the estimate
KHAT_BAD = 0.7
#: ``estimator=`` values a caller may ask for instead of the one the story declares: ``"iwae"`` (importance
#: sampling with the story's guide, also for a story with an exact log p(x) that has a guide)
FORCED_ESTIMATORS = ("iwae",)
#: the most importance samples K per example: 20× the largest K of the published tables (K = 5000, Burda et
#: al. 2016), where a binarized-MNIST VAE's estimate has long settled; time grows linearly in K, so this is
#: already hours for a 10k-image test set, and 10**12 would be years: a typo, refused before any work
MAX_NUM_SAMPLES = 100_000
#: the most Adam steps of each example's refined proposal (``refine=``): 1000× the default of
#: :func:`probgen.infer.refit.refine_proposal` (100 steps, where the estimate stops moving); every chunk of
#: examples runs them all, so 10**9 would run for days
MAX_REFINE = 100_000


# -- IWAE, written once (the weights: probgen.importance) ----------------------------------
def _chunked_iwae(story, x, y, num_samples: int, batch_size: int, sample_chunk: int, *, keep_weights: bool = False,
                  refine: int = 0, skip=(), **pair) -> tuple[torch.Tensor, torch.Tensor | None]:
    if refine:
        from .infer.refit import refine_proposal
    out, kept = [], []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        yb = None if y is None else y[start:start + batch_size]
        chunk_pair = pair
        if refine:  # this chunk's own proposal: the guide refined per example
            chunk_pair = {**pair, "guide": refine_proposal(story, xb, yb, steps=refine, **pair)}
        acc, done, parts = None, 0, []  # running logsumexp over sample chunks, [n]
        while done < num_samples:
            k = min(sample_chunk, num_samples - done)
            lw = log_weights(story, xb, k, yb, skip=skip, **chunk_pair)
            if keep_weights:
                parts.append(lw.double().cpu())
            lse = torch.logsumexp(lw, dim=0)
            acc = lse if acc is None else torch.logaddexp(acc, lse)
            done += k
        out.append(acc - math.log(num_samples))
        if keep_weights:
            kept.append(torch.cat(parts).T)  # [n, K]
    return torch.cat(out), (torch.cat(kept) if keep_weights else None)


def _check_count(name: str, value, lo: int = 1, hi: int | None = None, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo:
        raise ValueError(f"{name} must be {'a number of steps ' if lo == 0 else ''}>= {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ValueError(f"{name} must be <= {hi}" + (f" ({why})" if why else "") + f", got {value}")
    return int(value)


def check_effort(num_samples=1000, refine=0) -> tuple[int, int]:
    """``num_samples`` (K) and ``refine`` (steps) as ints within :data:`MAX_NUM_SAMPLES` and :data:`MAX_REFINE`.

    :raises ValueError: naming the argument and its bound.
    """
    return (_check_count("num_samples", num_samples, 1, MAX_NUM_SAMPLES, "importance samples per example"),
            _check_count("refine", refine, 0, MAX_REFINE, "Adam steps of each example's proposal"))


def log_likelihood(
    story,
    x: torch.Tensor,
    *,
    y: torch.Tensor | None = None,
    num_samples: int = 1000,
    batch_size: int | None = None,
    memory_budget: int | None = None,
    model: Callable | None = None,
    guide: Callable | None = None,
    return_weights: bool = False,
    refine: int = 0,
    estimator: str | None = None,
):
    """Per-example log p(x) in nats: exact when the story declares it, else the IWAE estimate.

    :param story: a trained :class:`probgen.Story` on prepared data (:meth:`probgen.Story.log_prob` prepares
        raw data). With ``story.traits.exact`` its own ``log_prob`` is used; otherwise its guide (or
        ``guide``) is the importance proposal.
    :param x: data ``[n, ...]``.
    :param y: labels for conditional models.
    :param num_samples: K importance samples per example (ignored when exact).
    :param batch_size: examples per chunk (default: chosen from ``memory_budget``).
    :param memory_budget: number of floats in the largest chunk tensor (K × batch × the floats one
        example costs per sample: x_dim × the enumerated values, plus ``story.traits.memory_per_example``,
        e.g. a sentence's decoder logits); default 2**22 on CPU (faster than big chunks there: cache) and
        2**26 on CUDA. The peak is a small multiple of it (≈ 8× for the MLP VAEs: activations, log-probs).
    :param model: score this joint instead of ``story.model`` (e.g. the auto-encoder's
        "code ~ prior, x ~ decoder" story); ``guide``: the proposal instead of ``story.guide``.
    :param return_weights: also return the log-weights ``[n, K]`` (``None`` when exact).
    :param refine: before scoring, fit a proposal to each example for this many Adam steps
        (:func:`probgen.infer.refit.refine_proposal`, started from the guide): a tighter estimate of
        the same p(x), still a lower bound in expectation; 0 (default): the guide as it is.
    :param estimator: ``None`` (default): as the story declares; ``"iwae"``: importance sampling with the
        guide even for a story whose log p(x) is exact (``traits.guide``: PPCA), to check one against the other.
    :return: tensor ``[n]`` (or ``(values, log-weights)``).
    """
    num_samples, refine = check_effort(num_samples, refine)
    # a meta tensor has no values to score (a story's own prepare may not have said so)
    x = check_tensor(x) if isinstance(x, torch.Tensor) else x
    y = check_tensor(y, "y") if isinstance(y, torch.Tensor) else y
    _check_forced(story, estimator, guide)
    was_training = story.training
    story.eval()
    try:
        with pyro_state_kept():  # an interrupted call leaves no plate or handler of its own behind
            if estimator is None and model is None and story.traits.exact:
                values = story.log_prob(x) if y is None else story.log_prob(x, y=y)
                return (values, None) if return_weights else values
            values, lw = _estimate(story, x, y, num_samples, batch_size, memory_budget, return_weights, int(refine),
                                   model, guide)
            return (values, lw) if return_weights else values
    finally:
        story.train(was_training)


def _estimate(story, x, y, num_samples: int, batch_size, memory_budget, keep_weights: bool, refine: int, model, guide):
    """:func:`log_likelihood`'s IWAE in chunks of examples and samples sized by ``memory_budget``, each example's
    weight without the global sites; one particle where that is exact (:func:`probgen.importance.scoring_plan`)."""
    plan = scoring_plan(story, x, y, model=model, guide=guide)
    if plan.exact:  # the same weight for every particle: one gives the exact number
        num_samples, refine = 1, 0
    elif refine and plan.global_sites:
        raise ValueError(f"refine: the global sites {', '.join(map(repr, plan.global_latents))} are drawn once for all "
                         "examples; a proposal per example cannot refine them (score with refine=0)")
    if memory_budget is None:
        memory_budget = 2**26 if x.is_cuda else 2**22
    memory_budget = _check_count("memory_budget (a positive number of floats)", memory_budget)
    # floats one example costs per importance sample: its values (each enumerated value once more)
    # and what the story declares beyond them
    cost = (max(1, x[0].numel()) if len(x) else 1) * enum_size(story, x, y, model, guide)
    cost += story.traits.memory_per_example
    sample_chunk = max(1, min(num_samples, memory_budget // (cost * 64)))  # ~64 examples per chunk
    if batch_size is None:
        batch_size = max(1, min(len(x) or 1, memory_budget // (cost * sample_chunk)))
    return _chunked_iwae(story, x, y, num_samples, batch_size, sample_chunk, keep_weights=keep_weights and not plan.exact,
                         refine=refine, skip=plan.global_sites, model=model, guide=guide)


def _check_forced(story, estimator: str | None, guide: Callable | None = None) -> None:
    """Refuse an ``estimator=`` the story cannot give (one line)."""
    if estimator is None:
        return
    if estimator not in FORCED_ESTIMATORS:
        raise ValueError(f"estimator must be None (as the story declares) or one of {', '.join(FORCED_ESTIMATORS)}, "
                         f"got {estimator!r}")
    if guide is None and not story.traits.guide:
        raise ValueError(f"{type(story).__name__} has no guide over its latents (traits.guide is False): "
                         "no IWAE estimate to give; score it as it declares (estimator=None)")


def story_log_prob(story, x, y=None, *, estimator: str | None = None, **options) -> torch.Tensor:
    """log p(x) of a story on raw data: its own ``log_prob`` (exact, or IWAE with its guide, as it declares),
    or with ``estimator="iwae"`` the IWAE estimate with its guide even where the story is exact.

    :param story: a :class:`probgen.Story`; ``x``, ``y``: raw data, prepared by ``story.prepare``.
    :param options: :func:`log_likelihood`'s (``num_samples``, ``return_weights``, ``refine``, ...).
    """
    check_effort(options.get("num_samples", 1000), options.get("refine", 0))  # before the data are prepared
    if isinstance(x, torch.Tensor):  # a story's own prepare may check nothing: no values, no estimate
        check_tensor(x)
    with pyro_state_kept():  # interrupted anywhere (the story's check, a refined proposal): nothing left behind
        if estimator is None:
            return story.log_prob(x, y, **options)
        _check_forced(story, estimator)
        x, y = prepared(story, x, y)
        return log_likelihood(story, x, y=y, estimator=estimator, **options)


def prepared(story, x, y=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Raw data as the story's estimators take it: ``story.prepare`` (checks, reshapes, encodes text), then
    on the story's device (what :meth:`probgen.Story.log_prob` does before it estimates).

    :return: ``(x, y)``, ``y`` a tensor or ``None``.
    """
    x, y = story.prepare(x, y)
    return x.to(story.device), None if y is None else torch.as_tensor(y, device=story.device)


def marginal_log_likelihood(story, x: torch.Tensor, n_classes: int, *, prior: torch.Tensor | None = None,
                            num_samples: int = 1000, **options) -> torch.Tensor:
    """log p(x) = log Σ_y p(y) p(x | y) of a conditional model: the exact sum over the
    labels, each p(x | y) by :func:`log_likelihood` (IWAE inside). Comparable with the
    unconditional models, where log p(x | y_true) would use the label as free information.

    :param n_classes: number of labels C.
    :param prior: p(y), ``[C]`` probabilities (default uniform, 1/C); ``"model"``: the model has
        its own p(y) site, so each log_likelihood(x, y=c) is already log p(x, y = c) and none is added.
    :return: tensor ``[n]``.
    """
    n_classes = _check_classes(story, n_classes)
    if isinstance(prior, str) and prior != "model":
        raise ValueError(f"prior must be probabilities or 'model', got {prior!r}")
    if isinstance(prior, str):
        log_prior = torch.zeros(n_classes, dtype=torch.float64)
    elif prior is None:
        log_prior = torch.full((n_classes,), -math.log(n_classes), dtype=torch.float64)
    else:
        prior = torch.as_tensor(prior, dtype=torch.float64)
        if prior.shape != (n_classes,) or (prior < 0).any() or not math.isclose(float(prior.sum()), 1, rel_tol=1e-6):
            raise ValueError(f"prior must be {n_classes} probabilities summing to 1, got {prior.tolist()}")
        log_prior = prior.log()
    per = torch.stack([log_likelihood(story, x, y=torch.full((len(x),), c, dtype=torch.long, device=x.device),
                                      num_samples=num_samples, **options) for c in range(n_classes)])  # C × n
    if prior is None:  # keep the float32 arithmetic of the tour's numbers
        return torch.logsumexp(per, 0) - math.log(n_classes)
    return torch.logsumexp(per.double() + log_prior.to(per.device)[:, None], 0).to(per.dtype)


def _check_classes(story, n_classes) -> int:
    """``n_classes`` within the labels the story knows (``story.n_classes``), else within :data:`MAX_CLASSES`:
    the marginal scores every class, and a label outside the networks' range has no meaning."""
    known = story.n_classes  # the story protocol: None when the story does not say
    hi, why = (known, f"{type(story).__name__} knows the labels 0..{known - 1}") if isinstance(known, int) and known > 0 \
        else (MAX_CLASSES, "labels summed over, one estimate each")
    return _check_count("n_classes", n_classes, 1, hi, why)


# -- PSIS k̂ of the importance weights -----------------------------------------------------
def psis_khat(log_weights_nk, *, flat_tol: float = 1e-4) -> np.ndarray:
    """Pareto k̂ of importance log-weights, one per row (PSIS, Vehtari et al. 2024; the
    generalized-Pareto fit of Zhang & Stephens 2009 with ArviZ's weak prior, so the
    numbers are ArviZ's ``psislw``).

    :param log_weights_nk: ``[n, K]`` log-weights (K samples per data point).
    :param flat_tol: rows whose log-weights span less than this (nats) count as constant
        and get ``-inf`` (no tail at all: the proposal is the target).
    :return: ``[n]`` k̂; above :data:`KHAT_BAD` the estimate is not to be trusted.
    """
    lw = np.asarray(log_weights_nk, dtype=np.float64)
    if lw.ndim == 1:
        lw = lw[None]
    if lw.ndim != 2 or lw.shape[1] < 2:
        raise ValueError(f"log-weights must be [n, K] with K >= 2, got shape {lw.shape}")
    if not np.isfinite(lw).all():
        raise ValueError("log-weights contain NaN or inf")
    K = lw.shape[1]
    tail = int(np.ceil(min(K / 5.0, 3 * K ** 0.5)))
    cutoffmin = np.log(np.finfo(float).tiny)
    out = np.empty(len(lw))
    for i, row in enumerate(lw):
        x = np.sort(row - row.max())
        cut = max(x[-tail - 1], cutoffmin)
        t = x[x > cut]
        out[i] = _gpd_shape(np.exp(t) - np.exp(cut)) if len(t) > 4 else np.inf
    out[(lw.max(1) - lw.min(1)) < flat_tol] = -np.inf
    return out


def _gpd_shape(a: np.ndarray) -> float:
    """Shape k of a generalized Pareto fitted to sorted exceedances (Zhang & Stephens 2009)."""
    n = len(a)
    m = 30 + int(n ** 0.5)
    b = 1 - np.sqrt(m / (np.arange(1, m + 1, dtype=float) - 0.5))
    b /= 3 * a[int(n / 4 + 0.5) - 1]
    b += 1 / a[-1]
    k = np.log1p(-b[:, None] * a).mean(axis=1)
    len_scale = n * (np.log(-(b / k)) - k - 1)
    w = 1 / np.exp(len_scale - len_scale[:, None]).sum(axis=1)
    keep = w >= 10 * np.finfo(float).eps
    b, w = b[keep], w[keep] / w[keep].sum()
    k_post = np.log1p(-np.sum(b * w) * a).mean()
    return float((n * k_post + 10 * 0.5) / (n + 10))  # weak prior towards 0.5


# -- the one scoring policy -----------------------------------------------------------------
@dataclass
class Score:
    """Test log-likelihood of one model: log p(x) in nats per example, and how it was estimated."""

    values: torch.Tensor  # [n] log p(x)
    estimator: str  # "exact", "IWAE", "IWAE, marginal over labels", "Parzen", ...
    k: int | None  # importance samples (Parzen: generator samples); None when exact
    khat_share: float | None = None  # share of points with PSIS k̂ > 0.7 (models with a guide)
    warning: str | None = None  # one line when khat_share is large
    conditional: torch.Tensor | None = None  # [n] log p(x | y_true), CVAE only: its own column
    extra: dict = field(default_factory=dict)  # e.g. the Parzen bandwidth
    log_weights: torch.Tensor | None = None  # [n, K] float64 importance log-weights, where k̂ was computed
    khat: np.ndarray | None = None  # [n] PSIS k̂ of those weights (diagnostics.quality_from_weights reuses both)

    @property
    def n(self) -> int:
        return int(self.values.numel())

    @property
    def mean(self) -> float:
        return summarize(self.values).mean

    @property
    def stderr(self) -> float:
        return summarize(self.values).stderr

    def __str__(self) -> str:
        k = "" if self.k is None else f", k={self.k}"
        return f"{self.mean:.2f} ± {self.stderr:.2f} nats ({self.estimator}{k})"


def scores_with_guide(model) -> bool:
    """:func:`score` estimates this model's log p(x) by importance sampling with its guide (not exactly,
    not by Parzen windows, not by the model's own proposal), so a better guide tightens the number."""
    return model.traits.estimator == "iwae"


def score(model, x: torch.Tensor, *, y: torch.Tensor | None = None, n_classes: int | None = None,
          num_samples: int = 1000, khat: bool = True, val: torch.Tensor | None = None, seed: int = 0,
          dequantized: bool = False, khat_warn: float = 0.1, refine: int = 0, estimator: str | None = None) -> Score:
    """The test log-likelihood of ``model`` on ``x``, the same number wherever it is asked for, estimated
    as ``model.traits.estimator`` declares:

    - ``"exact"`` (GMM, pixel models, the language model, PPCA): the story's exact log p(x);
    - a conditional story (``traits.labels``, the CVAE): log Σ_y p(y) p(x | y), p(y) uniform over
      ``n_classes`` (default ``model.n_classes``) unless the story has its own p(y) site
      (``model.label_prior(x, y)`` names it: a user's ``pyro.sample("y", ..., obs=y)``); log p(x | y)
      with the given labels ``y`` only in ``conditional``;
    - ``"parzen"`` (GANs): Parzen windows on ``max(num_samples, 10000)`` samples, the bandwidth chosen on
      ``val`` when given (``model.fit_parzen(val, num_samples=, seed=)``, seed ``seed``; then
      ``model.log_prob(x, num_samples=, seed=)``, seed ``seed + 1``; ``model.parzen_bandwidth``);
    - ``"proposal"`` (the auto-encoder): its ``log_prob``, importance sampling with a proposal of its own
      (named ``traits.proposal_name``);
    - ``"iwae"``: IWAE with K = ``num_samples``, the guide as proposal; with ``khat`` the share of points
      whose PSIS k̂ exceeds 0.7 (and a warning above ``khat_warn``).

    :param y: the true labels, for the CVAE's ``conditional`` column (ignored otherwise).
    :param dequantized: the data carry uniform dequantization noise: a discrete story's mass becomes the
        density of the dequantized values (``log P(x) − model.dequantization_log_volume()``).
    :param refine: IWAE rows only: a proposal fitted to each test example for this many steps,
        started from the guide (:func:`log_likelihood`'s ``refine``); the estimator says so.
    :param estimator: ``None``: as the story declares; ``"iwae"``: the IWAE estimate with the guide, also for
        an exact story that has one (``traits.guide``, e.g. PPCA: the check of the estimator); the
        ``estimator`` column of the result says which.
    """
    num_samples, refine = check_effort(num_samples, refine)
    _check_forced(model, estimator)
    traits = model.traits
    kind = estimator or traits.estimator
    iwae = "IWAE" + (f", q refined {refine} steps" if refine else "")
    opts = {"refine": refine} if refine and kind == "iwae" else {}
    forced = {"estimator": estimator} if estimator else {}
    with torch.no_grad():
        if kind == "parzen":
            k = max(num_samples, 10000)
            if val is not None:
                model.fit_parzen(val, num_samples=k, seed=seed)
            values = model.log_prob(x, num_samples=k, seed=seed + 1)
            return Score(values.cpu(), "Parzen", k, extra={"bandwidth": float(model.parzen_bandwidth)})
        if traits.labels:
            return _score_labels(model, x, y, n_classes, num_samples, kind, iwae, {**opts, **forced})
        if kind == "exact":
            values = model.log_prob(x)
            if dequantized:  # e.g. uniform within each grey level's bin of width 1/levels: + D log levels
                values = values - model.dequantization_log_volume()
            return Score(values.cpu(), "exact", None)
        if kind == "proposal":  # the story's own proposal (the auto-encoder)
            values = model.log_prob(x, num_samples=num_samples).cpu()
            return Score(values, traits.proposal_name or "IS, the story's proposal", num_samples)
        values, lw = story_log_prob(model, x, num_samples=num_samples, return_weights=True, **opts, **forced)
        if dequantized:
            values = values - model.dequantization_log_volume()
        lw = lw if bool(khat) and num_samples > 1 else None
    share = warning = k = None
    if lw is not None:
        k = psis_khat(lw.numpy())
        share = float((k > KHAT_BAD).mean())
        if share > khat_warn:
            warning = (f"PSIS k̂ > {KHAT_BAD} for {100 * share:.0f} % of the test points: the "
                       f"{'refined proposal' if refine else 'guide'} is a poor proposal there and the IWAE estimate "
                       "may be too low")
    plan = last_plan(model) or ScoringPlan()  # what the IWAE run found: an exact weight, global sites
    extra = {"global_latents": plan.note} if plan.note else {}
    if plan.exact:
        return Score(values.cpu(), plan.estimator, None, extra=extra)
    return Score(values.cpu(), iwae, num_samples, khat_share=share, warning=warning, log_weights=lw, khat=k,
                 extra=extra)


def _score_labels(model, x, y, n_classes, num_samples: int, kind: str, iwae: str, opts: dict) -> Score:
    """:func:`score` of a conditional story: the marginal over the labels, log p(x | y_true) beside it."""
    exact = kind == "exact"
    own = model.label_prior(x, y)  # the name of a p(y) site inside the joint, or None
    n_classes = n_classes or model.n_classes
    if not n_classes:
        raise ValueError(f"{type(model).__name__} is conditional: score needs n_classes")
    n_classes = _check_classes(model, n_classes)
    if y is not None:  # before any estimate: a label the model does not know is the caller's mistake
        y = check_labels(y, len(x), n_classes=n_classes)
    values = marginal_log_likelihood(model, x, n_classes, prior="model" if own else None,
                                     num_samples=num_samples, **opts)
    cond = None if y is None else log_likelihood(model, x, y=y, num_samples=num_samples, **opts).cpu()
    if cond is not None and own:  # log p(x | y) = log p(x, y) − log p(y); None if p(y) is not one site
        lp_y = model.label_log_prior(x, y)
        cond = None if lp_y is None else cond - lp_y.cpu()
    plan = ScoringPlan() if exact else last_plan(model) or ScoringPlan()
    extra = {"label_prior": f"the model's site {own!r}" if own else f"uniform over {n_classes}",
             **({"global_latents": plan.note} if plan.note else {})}
    exact = exact or plan.exact
    return Score(values.cpu(), f"{plan.estimator or 'exact' if exact else iwae}, marginal over labels",
                 None if exact else num_samples, conditional=cond, extra=extra)


def elbo_per_example(story, x: torch.Tensor, *, y: torch.Tensor | None = None,
                     num_samples: int = 100) -> torch.Tensor:
    """Monte Carlo ELBO per example, the mean of the log-weights (K = ``num_samples``)."""
    lw = log_weights(story, x, num_samples, y)
    return lw.mean(0)


@dataclass
class LikelihoodResult:
    """Mean test log-likelihood with its standard error."""

    mean: float
    stderr: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.stderr:.2f}"


def summarize(values: torch.Tensor) -> LikelihoodResult:
    """Mean and standard error of per-example log-likelihoods."""
    v = values.detach().double().cpu()
    n = v.numel()
    se = float(v.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    return LikelihoodResult(float(v.mean()), se, n)
