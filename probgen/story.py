"""A generative story: a Pyro ``model`` and ``guide`` with probgen's API around them.

Subclass :class:`Story`, write ``model(x, y=None)`` and ``guide(x, y=None)`` with the
same sample-site names, and you get ``fit`` (the SVI loop of :mod:`probgen.train`),
``log_prob`` (exact or importance-weighted, :mod:`probgen.evaluate`), ``save`` and
``load`` (safe checkpoints that rebuild the model from its constructor arguments).

Before training, :meth:`Story.check` runs the model and guide once on a few examples
and turns the usual mistakes into one clear line naming the site (a latent site
missing from the guide, a likelihood without ``obs=``, shapes that do not fit the
plates), and picks the objective: a story with a discrete site marked for
enumeration (``infer={"enumerate": "parallel"}`` or ``config_enumerate``) trains with
``TraceEnum_ELBO`` automatically; ``elbo = "meanfield"`` declares the analytic KL.
A story with only global latent variables may skip writing a guide: set
``autoguide = "normal"`` (``AutoNormal``) or ``"delta"`` (``AutoDelta``, MAP).

Constructor arguments are recorded automatically, so they must be plain values
(numbers, strings, lists, dicts) and should be keyword-only.
"""
from __future__ import annotations

import functools
import inspect
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample
from torch import nn

from . import evaluate, train
from .io import load_checkpoint, save_checkpoint

__all__ = ["Story", "REGISTRY", "register", "check_data", "LIKELIHOODS", "check_likelihood", "check_x_shape",
           "pixel_likelihood", "StoryCheck", "AUTOGUIDES"]

#: ``autoguide`` values -> Pyro autoguide class name
AUTOGUIDES = {"normal": "AutoNormal", "delta": "AutoDelta"}

#: kind name -> Story subclass, filled as subclasses are defined
REGISTRY: dict[str, type["Story"]] = {}
_instance_ids = itertools.count()


def register(cls: type["Story"]) -> type["Story"]:
    """Make a Story subclass loadable by its ``kind`` name.

    :raises ValueError: the kind belongs to a built-in probgen model and ``cls`` is not it
        (a user class named ``VAE`` must set its own ``kind``).
    """
    old = REGISTRY.get(cls.kind)
    if old is not None and old.__module__.startswith("probgen.") and not cls.__module__.startswith("probgen."):
        raise ValueError(f"{cls.__name__}: kind {cls.kind!r} is taken by {old.__module__}.{old.__name__}; "
                         f"set a class attribute kind = '...' of your own")
    REGISTRY[cls.kind] = cls
    return cls


def check_data(x, *, x_dim: int | None = None, binary: bool = False, name: str = "x") -> torch.Tensor:
    """Validate a data tensor for a model: numeric, finite, non-empty, right size, range.

    :param x: data ``[n, ...]`` (tensor or array).
    :param x_dim: number of values per example the model expects (``None``: any).
    :param binary: values must lie in [0, 1] (Bernoulli likelihood).
    :raises ValueError: naming the problem.
    """
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x)
        except Exception:  # noqa: BLE001
            raise ValueError(f"{name}: expected a tensor or array, got {type(x).__name__}") from None
    if x.dtype == torch.bool or not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int32, torch.int64)):
        if x.dtype != torch.bool:
            raise ValueError(f"{name}: expected numbers, got dtype {x.dtype}")
    x = x.float()  # float64/float16 too: the networks are float32
    if x.dim() == 0:
        raise ValueError(f"{name}: expected a batch [n, ...], got a scalar")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: empty data (shape {tuple(x.shape)})")
    if x_dim is not None and x[0].numel() != x_dim:
        raise ValueError(f"{name}: each example must have {x_dim} values, got shape {tuple(x.shape[1:])} "
                         f"({x[0].numel()} values)")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: data contains NaN or inf")
    if binary and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name}: a Bernoulli likelihood needs values in [0, 1], "
                         f"got {float(x.min()):.3g}..{float(x.max()):.3g}")
    return x


@dataclass
class StoryCheck:
    """What :meth:`Story.check` found by running the model and the guide once."""

    elbo: str  # the objective ``fit`` uses
    latent: list[str] = field(default_factory=list)  # sites the guide samples
    observed: list[str] = field(default_factory=list)  # sites with obs=
    enumerated: list[str] = field(default_factory=list)  # discrete sites summed out exactly
    plate_nesting: int = 0  # deepest plate dimension used
    summed_in_model: list[str] = field(default_factory=list)  # enumerated sites the guide does not sample


LIKELIHOODS = ("bernoulli", "normal")


def check_likelihood(likelihood: str) -> str:
    """Validate a pixel-likelihood name (``"bernoulli"`` or ``"normal"``)."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    return likelihood


def check_x_shape(x_dim: int, x_shape=None) -> tuple[int, ...]:
    """The shape of one example (default ``(x_dim,)``); it must hold ``x_dim`` values."""
    shape = tuple(x_shape) if x_shape is not None else (x_dim,)
    if int(torch.tensor(shape).prod()) != x_dim:
        raise ValueError(f"x_shape {shape} does not hold x_dim={x_dim} values")
    return shape


def pixel_likelihood(likelihood: str, decoded) -> "pyro.distributions.TorchDistribution":
    """p(x | decoder output), one event per example: Bernoulli(logits) or Normal(loc, scale).

    ``validate_args=False`` for Bernoulli: grey levels in [0, 1] are allowed as soft targets.
    """
    import pyro.distributions as dist

    if likelihood == "bernoulli":
        return dist.Bernoulli(logits=decoded, validate_args=False).to_event(1)
    loc, scale = decoded
    return dist.Normal(loc, scale).to_event(1)


class Story(nn.Module):
    """Base class of every probgen model (and of the user's own stories).

    Class attributes a subclass may set:

    - ``kind``: registry name, used in checkpoints (``"vae"``); defaults to the class name.
    - ``elbo``: default objective name for :func:`probgen.train.make_elbo`
      (``"trace"``; ``"meanfield"`` declares the analytic KL; ``"auto"`` = ``"trace"``).
      Whatever is declared, a story with a site marked for enumeration trains with
      ``TraceEnum_ELBO`` (``"enum"``), see :meth:`check`.
    - ``has_exact_log_prob``: ``log_prob`` is exact, so no importance sampling is needed.
    - ``max_plate_nesting``: plates nested in ``model`` (raised automatically if the model uses more).
    - ``autoguide``: ``None`` (write ``guide``), ``"normal"`` (Pyro's ``AutoNormal``) or
      ``"delta"`` (``AutoDelta``, a MAP point estimate) for stories whose latent variables are
      global (not one per example: those need an encoder guide).
    """

    kind: ClassVar[str] = "story"
    elbo: ClassVar[str] = "trace"
    has_exact_log_prob: ClassVar[bool] = False
    max_plate_nesting: ClassVar[int] = 1
    autoguide: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "kind" not in cls.__dict__:
            cls.kind = cls.__name__.lower()
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = _recording_init(init)
        register(cls)

    # -- identity ---------------------------------------------------------------
    @property
    def config(self) -> dict:
        """The constructor arguments this model was built with."""
        return dict(getattr(self, "_probgen_config", {}))

    @property
    def pyro_name(self) -> str:
        """Name of this instance's parameters in Pyro's param store (unique per instance,
        so two models never share parameters by accident)."""
        name = self.__dict__.get("_pyro_name")
        if name is None:
            name = f"{self.kind}_{next(_instance_ids)}"
            object.__setattr__(self, "_pyro_name", name)
        return name

    def register_params(self) -> None:
        """Register this module's parameters with Pyro (``pyro.module``); call it in
        ``model`` and ``guide``."""
        pyro.module(self.pyro_name, self)

    def n_params(self) -> int:
        """Number of trainable numbers."""
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        for t in itertools.chain(self.parameters(), self.buffers()):
            return t.device
        return torch.device("cpu")

    # -- the probabilistic program -------------------------------------------------
    def model(self, x: torch.Tensor | None, y: torch.Tensor | None = None):
        raise NotImplementedError(f"{type(self).__name__} must define model(x, y=None)")

    def guide(self, x: torch.Tensor | None, y: torch.Tensor | None = None, *args, **kwargs):
        """Default guide: the automatic guide when ``autoguide`` is set, else no latent
        sites (the model's parameters are fitted by maximum likelihood)."""
        self.register_params()
        if self.autoguide is not None:
            if self._modules.get("_autoguide") is None:
                self._setup_autoguide(x, y)
            return self._autoguide(x, y, *args, **kwargs)
        return None

    def prepare(self, x, y=None):
        """Validate and reshape user data before fitting or scoring; override per model."""
        return check_data(x), y

    # -- the probgen API ---------------------------------------------------------
    def fit(self, x, *, y=None, val=None, val_y=None, epochs: int = 20, batch_size: int = 128,
            lr: float = 1e-3, elbo: str | None = None, progress: bool = True,
            checkpoint: str | Path | None = None, resume: bool = False, patience: int | None = 10,
            check: bool = True, **options: Any) -> "Story":
        """Train by SVI (see :func:`probgen.train.fit_svi` for every option).

        :param x: training data ``[n, ...]``; ``y``: labels for conditional models.
        :param val: validation data (early stopping, best-model selection).
        :param elbo: objective name (:data:`probgen.train.ELBOS`); ``None``/``"auto"``: the
            story's declared ``elbo``, switched to ``TraceEnum_ELBO`` when a site is enumerated.
        :param check: first run :meth:`check` on a few examples (clear errors naming the site).
        :return: ``self``, trained; ``self.train_result`` holds the history and
            ``self.checked`` what :meth:`check` found.
        """
        x, y = self.prepare(x, y)
        if val is not None:
            val, val_y = self.prepare(val, val_y)
        x = x.to(self.device)
        y = None if y is None else torch.as_tensor(y, device=self.device)  # labels beside the data, moved once
        val_y = None if val_y is None else torch.as_tensor(val_y, device=self.device)
        if self.autoguide is not None and self._modules.get("_autoguide") is None:
            self._setup_autoguide(x, y)  # before fit_svi copies the state
        if check:
            self.checked = self.check(x, y, elbo=elbo)
            elbo = self.checked.elbo
        elif elbo in (None, "auto"):
            elbo = "trace" if self.elbo == "auto" else self.elbo
        self.train_result = train.fit_svi(
            self, x, y=y, val=None if val is None else val.to(self.device), val_y=val_y,
            epochs=epochs, batch_size=batch_size, lr=lr, elbo=elbo, progress=progress,
            checkpoint=checkpoint, resume=resume, patience=patience, **options)
        return self

    def log_prob(self, x, y=None, *, num_samples: int = 1000) -> torch.Tensor:
        """Per-example log p(x) in nats: exact if the model has it, else IWAE with K samples."""
        x, y = self.prepare(x, y)
        if self.autoguide is not None and self._modules.get("_autoguide") is None:
            self._setup_autoguide(x, y)
        y = None if y is None else torch.as_tensor(y, device=self.device)
        x = x.to(self.device)
        if not self.has_exact_log_prob and len(x):
            if getattr(self, "checked", None) is None:
                try:
                    self.checked = self.check(x, y)
                except ValueError:  # the check only decides the estimator here
                    self.checked = StoryCheck(elbo=self.elbo)
            if self.checked.summed_in_model:  # discrete sites with no guide site: summed in each weight
                return self._enumerated_iwae(x, y, num_samples)
        return evaluate.log_likelihood(self, x, y=y, num_samples=num_samples)

    @torch.no_grad()
    def _enumerated_iwae(self, x, y, num_samples: int, batch_size: int = 256, sample_chunk: int = 64):
        """IWAE whose weights sum the model's enumerated sites exactly:
        log p(x) ≈ log (1/K) Σ_k Σ_c p(x, z_k, c) / q(z_k | x). Valid for enumerated sites that
        are local to the examples (inside the data plate), as in a mixture."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        dim = -(self.max_plate_nesting + 1)  # the particle plate, left of the model's plates
        was_training = self.training
        self.eval()
        out = []
        try:
            for start in range(0, len(x), batch_size):
                xb = x[start:start + batch_size]
                yb = None if y is None else y[start:start + batch_size]
                acc, done = None, 0
                while done < num_samples:
                    k = min(sample_chunk, num_samples - done)
                    with pyro.plate("iwae_particles", k, dim=dim):
                        guide_tr = poutine.trace(self.guide).get_trace(xb, yb)
                        model = poutine.enum(poutine.replay(self.model, trace=guide_tr), first_available_dim=dim - 1)
                        model_tr = poutine.trace(model).get_trace(xb, yb)
                    lw = self._summed_log_joint(model_tr, len(xb), dim) - _total_log_prob(guide_tr)
                    lse = torch.logsumexp(lw.expand(k, len(xb)), 0)
                    acc = lse if acc is None else torch.logaddexp(acc, lse)
                    done += k
                out.append(acc - math.log(num_samples))
        finally:
            self.train(was_training)
        return torch.cat(out)

    def _summed_log_joint(self, model_tr, n: int, dim: int) -> torch.Tensor:
        """log Σ_c p(x, z, c) per particle and example, ``[K, n]``."""
        for name, site in _sample_sites(model_tr).items():
            if _is_enumerated(site) and not any(f.size == n and f.vectorized for f in site["cond_indep_stack"]):
                raise ValueError(f"{type(self).__name__}: site {name!r} is enumerated outside the data plate; "
                                 "per-example likelihoods need it summed after the product over examples")
        if self.max_plate_nesting != 1:
            raise ValueError(f"{type(self).__name__}: likelihoods of enumerated stories need exactly one "
                             f"plate (the data), got max_plate_nesting={self.max_plate_nesting}")
        total = _total_log_prob(model_tr)  # enum dims × K × n
        while total.dim() > 2:  # sum out every enumerated dimension
            total = torch.logsumexp(total, 0)
        return total

    # -- checks before training ----------------------------------------------------
    def check(self, x, y=None, *, elbo: str | None = None, batch: int = 4) -> StoryCheck:
        """Run guide and model once on ``batch`` examples; find the objective; catch mistakes.

        Raises one ``ValueError`` line naming the site for: an exception inside
        ``model``/``guide``; a guide site the model lacks; a latent model site with no guide
        site (often a likelihood missing ``obs=``); values whose shape does not fit the
        distribution; log-probabilities with dimensions no plate declares (a missing
        ``.to_event``). Random-number state and train/eval mode are left as they were.

        :param x: data (already through :meth:`prepare`); ``y``: labels or ``None``.
        :param elbo: objective requested by the caller (``None``/``"auto"``: detect).
        :return: a :class:`StoryCheck`; ``elbo`` is ``"enum"`` (or ``"jit-enum"``) when a
            site is marked for enumeration, else the requested or declared objective.
        """
        name = type(self).__name__
        x = x[:batch]
        y = None if y is None else y[:batch]
        rng = pyro.util.get_rng_state()
        was_training = self.training
        self.eval()  # no dropout / batch-norm updates from the check
        try:
            with torch.no_grad():
                guide_tr = self._trace_for_check("guide", self.guide, x, y)
                model_tr = self._trace_for_check("model", poutine.replay(self.model, trace=guide_tr), x, y)
                found = _check_sites(name, model_tr, guide_tr, x)
                nesting = _check_log_probs(name, model_tr, guide_tr, self.max_plate_nesting)
                if nesting > self.max_plate_nesting:
                    self.max_plate_nesting = nesting  # instance attribute: enumeration and IWAE need it
                found.elbo = self._resolve_elbo(elbo, found.enumerated)
                found.plate_nesting = nesting
                if found.enumerated:  # let TraceEnum_ELBO validate what it alone checks
                    enum = train.make_elbo("enum", max_plate_nesting=self.max_plate_nesting)
                    try:
                        enum.loss(self.model, self.guide, x, y)
                    except (ValueError, RuntimeError, NotImplementedError) as e:
                        raise ValueError(f"{name}: TraceEnum_ELBO cannot sum out "
                                         f"{', '.join(map(repr, found.enumerated))}: {_first_line(e)}") from e
        finally:
            pyro.util.set_rng_state(rng)
            self.train(was_training)
        return found

    def _resolve_elbo(self, requested: str | None, enumerated: list[str]) -> str:
        name = type(self).__name__
        requested = None if requested in (None, "auto") else requested
        chosen = requested or ("trace" if self.elbo == "auto" else self.elbo)
        if enumerated and "enum" not in chosen:
            if requested is not None:
                raise ValueError(f"{name}: elbo={requested!r} cannot sum out the enumerated site "
                                 f"{enumerated[0]!r}; use elbo='enum' or leave elbo unset")
            chosen = "jit-enum" if chosen.startswith("jit") else "enum"
        if chosen not in train.ELBOS:
            raise ValueError(f"{name}: unknown elbo {chosen!r}: use one of auto, {', '.join(train.ELBOS)}")
        return chosen

    def _trace_for_check(self, which: str, fn, x, y):
        tracer = poutine.trace(fn)
        try:
            tracer(x, y)
        except (ValueError, RuntimeError, IndexError, TypeError, KeyError) as e:
            msg = _first_line(e)
            m = re.match(r"Shape mismatch inside plate\('(.*)'\) at site (\S+) dim (-?\d+), (\d+) vs (\d+)", msg)
            if m:  # Pyro's wording, with the site quoted and the usual fix
                plate, site, dim, size, got = m.groups()
                msg = (f"site {site!r}: the distribution has size {got} at dim {dim}, where plate {plate!r} "
                       f"has size {size}; a batched distribution may need .to_event(1)")
            elif "site" not in msg:
                done = list(_sample_sites(tracer.msngr.trace))
                msg += f" (error after site {done[-1]!r})" if done else " (error before the first sample site)"
            raise ValueError(f"{type(self).__name__}.{which}: {msg}") from e
        return tracer.msngr.get_trace()

    # -- automatic guides ------------------------------------------------------------
    def _setup_autoguide(self, x, y=None) -> None:
        """Build the ``autoguide`` for this story from one example and create its parameters."""
        from pyro.infer import autoguide as autoguides

        name = type(self).__name__
        if self.autoguide not in AUTOGUIDES:
            raise ValueError(f"{name}: autoguide must be one of {', '.join(AUTOGUIDES)} or None, "
                             f"got {self.autoguide!r}")
        if x is None or len(x) == 0:
            raise ValueError(f"{name}: the automatic guide is built from data: call fit(x) first")
        y1 = None if y is None else y[:1]
        if len(x) >= 2:  # a latent whose shape follows the batch is per-example: no fixed guide fits it
            shapes = [{n: tuple(s["value"].shape) for n, s in _latent_sites(self.model, xb, yb).items()}
                      for xb, yb in ((x[:1], y1), (x[:2], None if y is None else y[:2]))]
            for site, shape in shapes[0].items():
                if shapes[1].get(site) != shape:
                    raise ValueError(f"{name}: site {site!r} has one value per example, which "
                                     f"autoguide={self.autoguide!r} cannot guide; write guide(x) with an "
                                     "encoder (automatic guides are for global latent variables)")
        blocked = poutine.block(self.model, hide_fn=lambda m: m["type"] == "sample"
                                and bool(m["infer"].get("enumerate")))  # summed out, not guided
        guide = getattr(autoguides, AUTOGUIDES[self.autoguide])(blocked)
        guide._pyro_name = f"{self.pyro_name}$$$_autoguide"  # unique in the param store, kept on resume
        self.add_module("_autoguide", guide)
        self.register_buffer("_autoguide_x", x[:1].detach().clone())
        if y1 is not None:
            self.register_buffer("_autoguide_y", y1.detach().clone())
        guide(x[:1], y1)  # creates the parameters

    def load_state_dict(self, state_dict, strict: bool = True, **kwargs):
        if self.autoguide is not None and self._modules.get("_autoguide") is None and "_autoguide_x" in state_dict:
            self._setup_autoguide(state_dict["_autoguide_x"], state_dict.get("_autoguide_y"))
        return super().load_state_dict(state_dict, strict=strict, **kwargs)

    def sample(self, n: int, **kwargs) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not define sample(n)")

    def save(self, path: str | Path, *, extra: dict | None = None) -> Path:
        """Write a checkpoint (constructor arguments + state) atomically.

        A story loaded from a user's file (``probgen train --story file.py:Class``) also
        records where it came from, so that loading it back is explicit (it runs that file).
        """
        source = type(self).__dict__.get("_probgen_source")
        if source is not None:
            extra = {**(extra or {}), "story_source": dict(source)}
        return save_checkpoint(path, kind=self.kind, config=self.config,
                               state_dict=self.state_dict(), extra=extra)

    @classmethod
    def from_checkpoint(cls, payload: dict, *, device: str | torch.device = "cpu") -> "Story":
        """Rebuild a model from a loaded checkpoint dict."""
        if cls is not Story and payload["kind"] != cls.kind:
            raise ValueError(f"checkpoint holds a {payload['kind']!r} model, not {cls.kind!r}")
        target = REGISTRY.get(payload["kind"]) if cls is Story else cls
        source = (payload.get("extra") or {}).get("story_source")
        if cls is Story and source and getattr(target, "_probgen_source", {}).get("path") != source.get("path"):
            raise ValueError(f"checkpoint holds the user story {source.get('spec')}: loading it runs that "
                             "file's code, so it is never done implicitly; use probgen.cli.story."
                             "load_story_checkpoint(path, allow_code=True) or the class's own load()")
        if target is None:
            raise ValueError(f"checkpoint holds an unknown model kind {payload['kind']!r}")
        try:
            model = target(**payload["config"])
            model.load_state_dict(payload["state_dict"])
        except (TypeError, RuntimeError) as e:
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
            detail = next((ln for ln in lines if ln.startswith(("size mismatch", "Missing", "Unexpected"))), lines[0])
            raise ValueError(f"checkpoint does not fit {target.__name__}: {detail}") from None
        model.checkpoint_extra = payload.get("extra", {})
        return model.to(device).eval()

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "cpu") -> "Story":
        """Load a checkpoint written by :meth:`save` (``weights_only``: runs no code)."""
        payload = load_checkpoint(path)
        try:
            return cls.from_checkpoint(payload, device=device)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


def _recording_init(init):
    sig = inspect.signature(init)

    @functools.wraps(init)
    def wrapped(self, *args, **kwargs):
        if "_probgen_config" not in self.__dict__:  # the outermost class records
            try:
                bound = sig.bind(self, *args, **kwargs)
            except TypeError as e:
                raise ValueError(f"{type(self).__name__}: {e}") from None
            bound.apply_defaults()
            cfg = {}
            for name, value in list(bound.arguments.items())[1:]:
                kind = sig.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    cfg.update(value)
                elif kind is inspect.Parameter.VAR_POSITIONAL:
                    if value:
                        raise ValueError(f"{type(self).__name__}: *args cannot be recorded in a checkpoint")
                else:
                    cfg[name] = value
            object.__setattr__(self, "_probgen_config", cfg)
        init(self, *args, **kwargs)

    return wrapped


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    if lines[0].startswith("Error while computing log_prob") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"
    return lines[0]


def _sample_sites(tr) -> dict:
    return {n: s for n, s in tr.nodes.items() if s["type"] == "sample" and not site_is_subsample(s)}


def _is_enumerated(site) -> bool:
    return site["infer"].get("enumerate") in ("parallel", "sequential")


def _latent_sites(model, x, y) -> dict:
    tr = poutine.trace(poutine.block(model, hide_fn=lambda m: m["type"] == "sample" and bool(m["infer"].get(
        "enumerate")))).get_trace(x, y)
    return {n: s for n, s in _sample_sites(tr).items() if not s["is_observed"]}


def _check_sites(name: str, model_tr, guide_tr, x) -> StoryCheck:
    """Model/guide site agreement and value shapes; the elbo is filled in by the caller."""
    msites, gsites = _sample_sites(model_tr), _sample_sites(guide_tr)
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
    unguided = [n for n, s in msites.items() if not s["is_observed"] and n not in gsites and not _is_enumerated(s)]
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
    in_model = [n for n, s in msites.items() if _is_enumerated(s) and n not in gsites]
    enumerated = in_model + [n for n, s in gsites.items() if _is_enumerated(s)]
    return StoryCheck(elbo="", latent=guided, observed=observed, enumerated=enumerated, summed_in_model=in_model)


def _total_log_prob(tr) -> torch.Tensor:
    """Sum of all sample sites' log-probs, broadcast together (``[enum dims..., K, n]``)."""
    tr.compute_log_prob()
    total = torch.zeros(())
    for site in _sample_sites(tr).values():
        total = total + site["log_prob"]
    return total


def _check_log_probs(name: str, model_tr, guide_tr, max_plate_nesting: int) -> int:
    """Compute every site's log-prob; check its dims against the plates. Returns the plate nesting used."""
    nesting = 0
    for tr in (model_tr, guide_tr):
        for s in _sample_sites(tr).values():
            for f in s["cond_indep_stack"]:
                if f.vectorized and f.dim is not None:
                    nesting = max(nesting, -f.dim)
    for which, tr in (("model", model_tr), ("guide", guide_tr)):
        try:
            tr.compute_log_prob()
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{name}.{which}: {_first_line(e)}") from e
        for n, s in _sample_sites(tr).items():
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
