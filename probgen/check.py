"""Checking a story before training: run the guide and the model once on a few examples and
turn the usual mistakes into one clear line naming the site.

:func:`check_story` catches an exception inside ``model``/``guide``, a guide site the model
lacks, a latent model site with no guide site (often a likelihood missing ``obs=``), values whose
shape does not fit the distribution, and log-probabilities with dimensions no plate declares (a
missing ``.to_event``); it also picks the objective (:func:`resolve_elbo`): a story with a site
marked for enumeration trains with ``TraceEnum_ELBO``. :data:`ELBOS` names the objectives
(:func:`probgen.infer.svi.make_elbo` builds them). The trace helpers (:func:`sample_sites`,
:func:`is_enumerated`) serve the estimators too.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample

__all__ = ["ELBOS", "check_elbo", "StoryCheck", "check_story", "resolve_elbo", "sample_sites", "is_enumerated", "latent_sites",
           "first_line", "user_frame", "at_user_frame", "trace_pair", "pyro_state_kept"]

#: objective name -> (Pyro ELBO class name, is_jit)
ELBOS = {
    "trace": ("Trace_ELBO", False),
    "meanfield": ("TraceMeanField_ELBO", False),  # analytic KL where Pyro knows it
    "jit": ("JitTrace_ELBO", True),
    "jit-meanfield": ("JitTraceMeanField_ELBO", True),
    "enum": ("TraceEnum_ELBO", False),  # sums out enumerated discrete sites
    "jit-enum": ("JitTraceEnum_ELBO", True),
    "iwae": ("RenyiELBO", False),  # alpha=0: the IWAE bound, k = num_particles (infer.svi.IWAE_ELBO)
}


@dataclass
class StoryCheck:
    """What :func:`check_story` found by running the model and the guide once."""

    elbo: str  # the objective ``fit`` uses
    latent: list[str] = field(default_factory=list)  # sites the guide samples
    observed: list[str] = field(default_factory=list)  # sites with obs=
    enumerated: list[str] = field(default_factory=list)  # discrete sites summed out exactly
    plate_nesting: int = 0  # deepest plate dimension used
    summed_in_model: list[str] = field(default_factory=list)  # enumerated sites the guide does not sample


def check_story(story, x, y=None, *, elbo: str | None = None, batch: int = 4, strict: bool = False) -> StoryCheck:
    """Run guide and model once on ``batch`` examples; find the objective; catch mistakes.

    Raises one ``ValueError`` line naming the site for: an exception inside
    ``model``/``guide``; a guide site the model lacks; a latent model site with no guide
    site (often a likelihood missing ``obs=``); values whose shape does not fit the
    distribution; log-probabilities with dimensions no plate declares (a missing
    ``.to_event``). Random-number state and train/eval mode are left as they were; a story
    that uses more plates than its ``max_plate_nesting`` gets it raised (instance attribute).

    :param story: a :class:`probgen.story.Story` (``model``, ``guide``, ``elbo``, ``max_plate_nesting``).
    :param x: data (already through ``story.prepare``); ``y``: labels or ``None``.
    :param elbo: objective requested by the caller (``None``/``"auto"``: detect).
    :param strict: also require an observed site, refuse a discrete site the guide samples without
        enumeration, and a NaN log-prob (a user's program: :mod:`probgen.adapt`).
    :return: a :class:`StoryCheck`; ``elbo`` is ``"enum"`` (or ``"jit-enum"``) when a
        site is marked for enumeration, else the requested or declared objective.
    """
    name = getattr(story, "story_name", None) or type(story).__name__
    x = x[:batch]
    y = None if y is None else y[:batch]
    rng = pyro.util.get_rng_state()
    was_training = story.training
    story.eval()  # no dropout / batch-norm updates from the check
    try:
        with torch.no_grad(), pyro_state_kept():
            def run(role, fn):
                tr = _trace_for_check(f"{name}.{role}", fn, x, y)
                if strict and role == "guide":  # the guide's shapes against the model's own, before the model uses them
                    _check_shapes_against_prior(name, story, tr, x, y)
                return tr

            guide_tr, model_tr = trace_pair(story.model, story.guide, x, y, run=run)
            found = _check_sites(name, model_tr, guide_tr, x)
            nesting = _check_log_probs(name, model_tr, guide_tr, story.max_plate_nesting)
            if strict:
                _check_strict(name, model_tr, guide_tr, found)
            if nesting > story.max_plate_nesting:
                story.max_plate_nesting = nesting  # instance attribute: enumeration and IWAE need it
            found.elbo = resolve_elbo(story, elbo, found.enumerated)
            found.plate_nesting = nesting
            if found.enumerated:  # let TraceEnum_ELBO validate what it alone checks
                enum = pyro.infer.TraceEnum_ELBO(max_plate_nesting=story.max_plate_nesting)
                try:
                    enum.loss(story.model, story.guide, x, y)
                except (ValueError, RuntimeError, NotImplementedError) as e:
                    raise ValueError(f"{name}: TraceEnum_ELBO cannot sum out "
                                     f"{', '.join(map(repr, found.enumerated))}: {first_line(e)}") from e
    finally:
        pyro.util.set_rng_state(rng)
        story.train(was_training)
    return found


def check_elbo(elbo: str, name: str = "") -> str:
    """``elbo`` if it names an objective of :data:`ELBOS` (or ``auto``); a one-line ``ValueError`` otherwise."""
    if elbo != "auto" and elbo not in ELBOS:
        raise ValueError(f"{name + ': ' if name else ''}unknown elbo {elbo!r}: use one of auto, {', '.join(ELBOS)}")
    return elbo


def resolve_elbo(story, requested: str | None, enumerated: list[str]) -> str:
    """The objective ``fit`` uses: the requested one, else the story's declared ``elbo``; switched
    to ``"enum"`` (``"jit-enum"``) when sites are enumerated.

    :param story: the story (or its class): its ``elbo`` and name.
    :param requested: the caller's objective (``None``/``"auto"``: the declared one).
    :param enumerated: names of the sites marked for enumeration.
    :raises ValueError: an unknown name, or a requested objective that cannot sum the enumerated sites.
    """
    name = story.__name__ if isinstance(story, type) else (getattr(story, "story_name", None) or type(story).__name__)
    requested = None if requested in (None, "auto") else requested
    chosen = requested or ("trace" if story.elbo == "auto" else story.elbo)
    if enumerated and "enum" not in chosen:
        if requested is not None:
            raise ValueError(f"{name}: elbo={requested!r} cannot sum out the enumerated site "
                             f"{enumerated[0]!r}; use elbo='enum' or leave elbo unset")
        chosen = "jit-enum" if chosen.startswith("jit") else "enum"
    check_elbo(chosen, name)
    return chosen


def _trace_for_check(where: str, fn, x, y):
    """Trace ``fn(x, y)``; an exception becomes one ``ValueError`` line prefixed ``where``."""
    tracer = poutine.trace(fn)
    try:
        tracer(x, y)
    except SystemExit as e:  # a story must never end the process
        raise ValueError(f"{where}: called sys.exit({e.code}){_at(e)}: a story must not exit") from None
    except Exception as e:  # noqa: BLE001 - any error of the user's code becomes one line
        msg = first_line(e)
        if isinstance(e, ValueError) and msg.startswith(where):  # already one line naming this function
            raise ValueError(msg) from e
        m = re.match(r"Shape mismatch inside plate\('(.*)'\) at site (\S+) dim (-?\d+), (\d+) vs (\d+)", msg)
        if m:  # Pyro's wording, with the site quoted and the usual fix
            plate, site, dim, size, got = m.groups()
            msg = (f"site {site!r}: the distribution has size {got} at dim {dim}, where plate {plate!r} "
                   f"has size {size}; a batched distribution may need .to_event(1)")
        elif "site" not in msg:
            done = list(sample_sites(tracer.msngr.trace))
            msg += f" (error after site {done[-1]!r})" if done else " (error before the first sample site)"
        if not isinstance(e, (ValueError, RuntimeError, IndexError, TypeError)):
            msg = f"{type(e).__name__}: {msg}"
        raise ValueError(f"{where}: {msg}{_at(e)}") from e
    return tracer.msngr.get_trace()


def user_frame(e: BaseException) -> str | None:
    """``file.py:line`` of the innermost frame of the traceback that is the user's code (not
    torch, Pyro, probgen or the standard library), or ``None``."""
    import os
    import sysconfig

    skip = tuple(os.path.dirname(p) + os.sep for p in (torch.__file__, pyro.__file__, __file__)) + (
        sysconfig.get_paths()["stdlib"] + os.sep,)
    found, tb = None, e.__traceback__
    while tb is not None:
        path = tb.tb_frame.f_code.co_filename
        if not path.startswith(skip) and not path.startswith("<"):
            found = f"{path}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def at_user_frame(e: BaseException) -> str:
    """`` (at file.py:line)`` of :func:`user_frame`, or an empty string."""
    return _at(e)


def _at(e: BaseException) -> str:
    where = user_frame(e)
    return f" (at {where})" if where else ""


def _check_strict(name: str, model_tr, guide_tr, found: StoryCheck) -> None:
    """What a user's program must have beyond a Story's checks: data, guidable discrete sites, finite log-probs."""
    msites, gsites = sample_sites(model_tr), sample_sites(guide_tr)
    if not [n for n in found.observed if type(msites[n]["fn"]).__name__ != "Unit"]:
        raise ValueError(f"{name}.model has no observed site: give the likelihood the data, "
                         "pyro.sample('obs', ..., obs=x)")
    for n in found.latent:
        fn = gsites[n]["fn"]
        if not is_enumerated(gsites[n]) and not getattr(fn, "has_rsample", True):
            how = ("mark it infer={'enumerate': 'parallel'} in the model and leave it out of the guide"
                   if getattr(fn, "has_enumerate_support", False) else
                   f"{type(fn).__name__} cannot be enumerated: make it continuous or bound its support")
            raise ValueError(f"{name}.guide: site {n!r} is discrete and sampled without enumeration "
                             f"(its gradient would be a high-variance score function): {how}")
    for which, tr in (("model", model_tr), ("guide", guide_tr)):
        for n, s in sample_sites(tr).items():
            lp = s.get("log_prob")
            if isinstance(lp, torch.Tensor) and torch.isnan(lp).any():
                raise ValueError(f"{name}.{which}: site {n!r} has log-prob NaN: check its parameters and "
                                 "that its value lies in its support")


def _check_shapes_against_prior(name: str, story, guide_tr, x, y) -> None:
    try:
        prior_tr = poutine.trace(poutine.block(story.model, hide_fn=lambda m: m["type"] == "sample" and is_enumerated(m))).get_trace(x, y)
    except Exception:  # noqa: BLE001 - the replayed run below reports it
        return
    prior = sample_sites(prior_tr)
    for n, s in sample_sites(guide_tr).items():
        if n in prior and not prior[n]["is_observed"] and isinstance(s["value"], torch.Tensor):
            got, want = tuple(s["value"].shape), tuple(prior[n]["value"].shape)
            if got != want:
                raise ValueError(f"{name}.guide: site {n!r}: the guide's value has shape {got}, the model's "
                                 f"has {want}; make them agree")


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (two for Pyro's log_prob errors), for one-line errors."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    if lines[0].startswith("Error while computing log_prob") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"
    return lines[0]


def sample_sites(tr) -> dict:
    """The sample sites of a trace, without subsample sites: ``{name: site}``."""
    return {n: s for n, s in tr.nodes.items() if s["type"] == "sample" and not site_is_subsample(s)}


def trace_pair(model, guide, *args, enum_dim: int | None = None, run=None):
    """Trace the guide, then the model replayed on the guide's values (the one place that does it).

    :param args: the arguments of both, e.g. ``(x, y)``.
    :param enum_dim: enumerate the model's marked sites from this dim leftwards (``None``: no enumeration).
    :param run: ``run(role, fn) -> trace`` traces ``fn(*args)`` for role ``"guide"`` then ``"model"``
        (default ``poutine.trace(fn).get_trace(*args)``; the check wraps errors there).
    :return: ``(guide_trace, model_trace)``.
    """
    run = run or (lambda role, fn: poutine.trace(fn).get_trace(*args))
    guide_tr = run("guide", guide)
    replayed = poutine.replay(model, trace=guide_tr)
    if enum_dim is not None:
        replayed = poutine.enum(replayed, first_available_dim=enum_dim)
    return guide_tr, run("model", replayed)


@contextmanager
def pyro_state_kept():
    """Pyro's global handler stack and plate dims as they were on entry, also when the body is interrupted
    (Ctrl-C between a plate's dim allocation and its push leaves the dim taken: every later plate at that
    dim would "collide")."""
    from pyro.poutine.runtime import _DIM_ALLOCATOR, _PYRO_STACK

    depth, dims = len(_PYRO_STACK), list(_DIM_ALLOCATOR._stack)
    try:
        yield
    finally:
        del _PYRO_STACK[depth:]
        _DIM_ALLOCATOR._stack[:] = dims


def is_enumerated(site) -> bool:
    """The site is marked for enumeration (``infer={"enumerate": "parallel"}`` or sequential)."""
    return site["infer"].get("enumerate") in ("parallel", "sequential")


def latent_sites(model, x, y) -> dict:
    """The latent (unobserved, not enumerated) sample sites of one run of ``model(x, y)``."""
    tr = poutine.trace(poutine.block(model, hide_fn=lambda m: m["type"] == "sample" and bool(m["infer"].get(
        "enumerate")))).get_trace(x, y)
    return {n: s for n, s in sample_sites(tr).items() if not s["is_observed"]}


def _check_sites(name: str, model_tr, guide_tr, x) -> StoryCheck:
    """Model/guide site agreement and value shapes; the elbo is filled in by the caller."""
    msites, gsites = sample_sites(model_tr), sample_sites(guide_tr)
    observed = [n for n, s in msites.items() if s["is_observed"]]
    data_observed = [n for n in observed if not msites[n]["infer"].get("_deterministic")
                     and type(msites[n]["fn"]).__name__ != "Unit"]  # not pyro.deterministic / factor
    guided = [n for n, s in gsites.items() if not s["is_observed"] and not s["infer"].get("is_auxiliary")]
    for n in guided:
        if n not in msites:
            raise ValueError(f"{name}: guide site {n!r} is not in the model "
                             f"(model sites: {', '.join(map(repr, msites)) or 'none'})")
        if msites[n]["is_observed"]:
            raise ValueError(f"{name}: site {n!r} is observed in the model, so the guide must not sample it")
    unguided = [n for n, s in msites.items() if not s["is_observed"] and n not in gsites and not is_enumerated(s)]
    if unguided:
        # a likelihood without obs= looks like a latent site the guide forgot
        like_data = [n for n in unguided if x is not None and msites[n]["value"].numel() == x.numel()]
        if like_data or (x is not None and not data_observed):
            n = (like_data or unguided)[-1]
            raise ValueError(f"{name}.model: site {n!r} is not observed: pass obs=x to pyro.sample({n!r}, ...) "
                             f"(if {n!r} is latent, sample it in guide())")
        n = unguided[0]
        raise ValueError(f"{name}: model site {n!r} has no guide site: sample {n!r} in guide(), mark it for "
                         "enumeration if it is discrete (infer={'enumerate': 'parallel'}), "
                         "or set autoguide = 'normal' if it is global")
    for n, s in msites.items():
        fn, v = s["fn"], s["value"]
        if not isinstance(v, torch.Tensor) or not hasattr(fn, "event_shape"):
            continue
        what = "observed value" if s["is_observed"] else ("value from the guide" if n in gsites else "value")
        ev, bs = tuple(fn.event_shape), tuple(fn.batch_shape)
        ok = v.dim() >= len(ev) and tuple(v.shape[v.dim() - len(ev):]) == ev
        if ok:
            try:
                torch.broadcast_shapes(tuple(v.shape[:v.dim() - len(ev)]), bs)
            except RuntimeError:
                ok = False
        if not ok:
            raise ValueError(f"{name}.model: site {n!r}: the {what} has shape {tuple(v.shape)}, which does not fit "
                             f"the distribution's shape {bs + ev} (batch {bs}, event {ev}); reshape one of them")
    in_model = [n for n, s in msites.items() if is_enumerated(s) and n not in gsites]
    enumerated = in_model + [n for n, s in gsites.items() if is_enumerated(s)]
    return StoryCheck(elbo="", latent=guided, observed=observed, enumerated=enumerated, summed_in_model=in_model)


def _check_log_probs(name: str, model_tr, guide_tr, max_plate_nesting: int) -> int:
    """Compute every site's log-prob; check its dims against the plates. Returns the plate nesting used."""
    nesting = 0
    for tr in (model_tr, guide_tr):
        for s in sample_sites(tr).values():
            for f in s["cond_indep_stack"]:
                if f.vectorized and f.dim is not None:
                    nesting = max(nesting, -f.dim)
    for which, tr in (("model", model_tr), ("guide", guide_tr)):
        try:
            tr.compute_log_prob()
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{name}.{which}: {first_line(e)}") from e
        for n, s in sample_sites(tr).items():
            if "log_prob" not in s:
                continue
            try:
                pyro.util.check_site_shape(s, max(nesting, max_plate_nesting))
            except ValueError as e:
                detail = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
                got = detail[1] if len(detail) > 1 else detail[0]
                raise ValueError(f"{name}.{which}: site {n!r} has log-prob dims that no plate declares ({got}); "
                                 "add .to_event(1) to its distribution, or put those dims in a pyro.plate") from e
    return nesting
