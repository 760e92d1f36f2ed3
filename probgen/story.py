"""A generative story: a Pyro ``model`` and ``guide`` with probgen's API around them.

Subclass :class:`Story`, write ``model(x, y=None)`` and ``guide(x, y=None)`` with the
same sample-site names, declare what it is (``traits = Traits(...)``), and you get ``fit`` (the
trainer the story declares, :func:`probgen.infer.train`: SVI unless it says otherwise),
``log_prob`` (exact or importance-weighted, :mod:`probgen.evaluate`), ``save`` and
``load`` (safe checkpoints that rebuild the model from its constructor arguments).

Before training, :meth:`Story.check` (:func:`probgen.check.check_story`) runs the model and guide once
on a few examples and turns the usual mistakes into one clear line naming the site (a latent site
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
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Mapping

import pyro
import pyro.poutine as poutine
import torch
from torch import nn

from .check import StoryCheck, check_story, latent_sites
from .data import check_data
from .runtime import registered_quietly  # noqa: F401 - re-exported (trainers import it from runtime)
from .traits import ESTIMATORS, OFFERS, Traits, fold_legacy_traits

__all__ = ["Story", "Traits", "ESTIMATORS", "OFFERS", "REGISTRY", "register", "StoryCheck", "AUTOGUIDES",
           "registered_quietly"]

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


class Story(nn.Module):
    """Base class of every probgen model (and of the user's own stories).

    Class attributes a subclass may set:

    - ``kind``: registry name, used in checkpoints (``"vae"``); defaults to the class name.
    - ``elbo``: default objective name for :func:`probgen.infer.svi.make_elbo`
      (``"trace"``; ``"meanfield"`` declares the analytic KL; ``"auto"`` = ``"trace"``).
      Whatever is declared, a story with a site marked for enumeration trains with
      ``TraceEnum_ELBO`` (``"enum"``), see :meth:`check`.
    - ``traits``: what it is (:class:`Traits`: trainer, labels, estimator, abilities).
    - ``max_plate_nesting``: plates nested in ``model`` (raised automatically if the model uses more).
    - ``autoguide``: ``None`` (write ``guide``), ``"normal"`` (Pyro's ``AutoNormal``) or
      ``"delta"`` (``AutoDelta``, a MAP point estimate) for stories whose latent variables are
      global (not one per example: those need an encoder guide).
    """

    kind: ClassVar[str] = "story"
    elbo: ClassVar[str] = "trace"
    #: what this story is (trainer, labels, estimator, abilities): see :class:`Traits`
    traits: ClassVar[Traits] = Traits()
    max_plate_nesting: ClassVar[int] = 1
    autoguide: ClassVar[str | None] = None
    #: the same aten operations every step (no Python state read per step, no buffers): long fits
    #: take the captured step (:mod:`probgen.infer.compiled`, ``compile=None``). ``None`` (a user's
    #: story): the check on the first batches decides, with one line if it falls back; ``False``: eager
    static_graph: ClassVar[bool | None] = None
    #: labels a conditional story takes (``traits.labels``): 0..n_classes-1; ``None``: not conditional or not said
    n_classes: ClassVar[int | None] = None

    # what callers may read on any story, defaults before it is checked, trained or loaded (no probing)
    #: the :class:`StoryCheck` of the last check (``None``: not checked yet)
    checked: StoryCheck | None = None
    #: the last fit's history (:class:`probgen.infer.callbacks.TrainResult`; ``None``: not fitted here)
    train_result: Any = None
    #: what a checkpoint this story was loaded from held beside the state (empty: not loaded)
    checkpoint_extra: Mapping = MappingProxyType({})
    #: the data spec, optimizer and trainer state of that checkpoint (``None``: not recorded)
    checkpoint_data = checkpoint_optimizer = checkpoint_trainer = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "kind" not in cls.__dict__:
            cls.kind = cls.__name__.lower()
        fold_legacy_traits(cls)
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = _recording_init(init)
        register(cls)

    @property
    def has_exact_log_prob(self) -> bool:
        """``traits.estimator == "exact"`` (the older spelling, kept for user stories)."""
        return self.traits.exact

    @property
    def needs_labels(self) -> bool:
        """``traits.labels`` (the older spelling, kept for user stories)."""
        return self.traits.labels

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
        ``model`` and ``guide``. Skipped while a trainer that registered them once runs its
        steps (``infer.svi`` sets ``_params_registered``: per-step registration cost ~1 ms)."""
        if not self.__dict__.get("_params_registered"):
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
            return self._ensure_autoguide(x, y)(x, y, *args, **kwargs)
        return None

    def prepare(self, x, y=None):
        """Validate and reshape user data before fitting or scoring; override per model."""
        return check_data(x), y

    # -- the probgen API ---------------------------------------------------------
    def fit(self, x, *, y=None, val=None, val_y=None, method: str | None = None, **options: Any) -> "Story":
        """Train with the trainer this story declares (``traits.trainers[0]``: SVI for most, EM for the
        GMM, the adversarial game for the GAN), or with ``method`` when the story allows several.

        :param x: training data ``[n, ...]``; ``y``: labels for conditional stories.
        :param val: validation data (early stopping and best-model selection where the trainer has them).
        :param method: a trainer name from ``traits.trainers`` (``GMM.fit(x, method="svi")``).
        :param options: the trainer's options (:func:`probgen.infer.train` lists where they are
            documented: ``epochs``, ``lr``, ``checkpoint``, ``callbacks``, ...).
        :return: ``self``, trained; ``self.train_result`` holds the history.
        """
        from .infer import train  # the documented exception: Story.fit hands the story to its trainer

        self.train_result = train(self, x, y=y, val=val, val_y=val_y, method=method, **options)
        return self

    # -- the pieces a trainer asks of the story (defaults: nothing to do) ----------------------
    def begin_fit(self, x: torch.Tensor, y: torch.Tensor | None, *, method: str, options: dict,
                  val: torch.Tensor | None = None, val_y: torch.Tensor | None = None) -> None:
        """Called by :func:`probgen.infer.train` on prepared data before the trainer runs: size lazily
        built parameters, initialise (the GMM's k-means start), take the options only the story
        understands out of ``options`` (``options.pop``) for the trainer ``method``. ``val``: the prepared
        validation data, if any (the sentence VAE's probe of its KL term). The base builds the
        ``autoguide`` (before the trainer copies the state); an override calls ``super().begin_fit``."""
        if self.autoguide is not None:
            self._ensure_autoguide(x, y)

    def end_fit(self, x: torch.Tensor, y: torch.Tensor | None, *, val=None, val_y=None) -> None:
        """Called after the trainer has restored the best state, before the final checkpoint is
        written: fit what depends on the trained networks (the auto-encoder's code Gaussian, the
        GAN's Parzen bandwidth on ``val``)."""

    def epoch_end(self, record: dict) -> None:
        """Called by every trainer after each epoch (model in eval mode), before the callbacks:
        add numbers to ``record`` (the sentence VAE's KL and active units)."""

    def step_end(self) -> None:
        """Called by every trainer after each training step (the sentence VAE's annealing counter)."""

    # -- labels: a conditional story's prior over y (default: none of its own) --------------
    def label_prior(self, x: torch.Tensor, y: torch.Tensor | None = None) -> str | None:
        """The model's own site for p(y) (``pyro.sample("y", ..., obs=y)``), or ``None`` when the label
        is only an input (then a marginal over labels adds a uniform p(y))."""
        return None

    def label_log_prior(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """log p(y) ``[n]`` from the model's own label site, or ``None`` (no such site)."""
        return None

    def dequantization_log_volume(self) -> float:
        """log of the volume of one cell of the discrete values the story gives a mass to (0: a density
        already): ``log P(x) − this`` is the density of uniformly dequantized data."""
        return 0.0

    def log_prob(self, x, y=None, *, num_samples: int = 1000, model=None, guide=None, **options) -> torch.Tensor:
        """Per-example log p(x) in nats: exact if the model has it, else IWAE with K samples
        (:func:`probgen.evaluate.log_likelihood`, which sums enumerated model sites in each weight).

        :param model: score this joint instead of :meth:`model`, ``guide``: the proposal instead of
            :meth:`guide` (a story whose likelihood needs a proposal of its own passes them here).
        :param options: :func:`probgen.evaluate.log_likelihood`'s (``batch_size``, ``return_weights``, ...).
        """
        x, y = self.prepare(x, y)
        if self.autoguide is not None:
            self._ensure_autoguide(x, y)
        y = None if y is None else torch.as_tensor(y, device=self.device)
        x = x.to(self.device)
        if model is None and not self.traits.exact and len(x) and self.checked is None:
            try:  # finds the plate nesting the estimator needs
                self.checked = self.check(x, y)
            except ValueError:  # the check only informs the estimator here
                self.checked = StoryCheck(elbo=self.elbo)
        from .evaluate import log_likelihood  # the documented exception: Story.log_prob delegates upwards

        return log_likelihood(self, x, y=y, num_samples=num_samples, model=model, guide=guide, **options)

    # -- checks before training ----------------------------------------------------
    def check(self, x, y=None, *, elbo: str | None = None, batch: int = 4) -> StoryCheck:
        """Run guide and model once on ``batch`` examples; find the objective; catch mistakes
        (one ``ValueError`` line naming the site). See :func:`probgen.check.check_story`."""
        return check_story(self, x, y, elbo=elbo, batch=batch)

    # -- automatic guides ------------------------------------------------------------
    def _ensure_autoguide(self, x, y=None) -> nn.Module:
        """The automatic guide, built from ``x`` the first time it is needed."""
        if self._modules.get("_autoguide") is None:
            self._setup_autoguide(x, y)
        return self._autoguide

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
            shapes = [{n: tuple(s["value"].shape) for n, s in latent_sites(self.model, xb, yb).items()}
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

    def save(self, path: str | Path, *, data: dict | None = None, extra: dict | None = None,
             optimizer: dict | None = None, trainer: dict | None = None) -> Path:
        """Write a checkpoint (constructor arguments + state) atomically (:func:`probgen.io.save_checkpoint`).

        :param data: the data spec it was trained on (``Dataset.spec``); default: the one it
            was loaded with (``checkpoint_data``), if any.
        A story loaded from a user's file (``probgen train --story file.py:Class``) also
        records where it came from, so that loading it back is explicit (it runs that file).
        """
        source = type(self).__dict__.get("_probgen_source")
        if source is not None:
            extra = {**(extra or {}), "story_source": dict(source)}
        if data is None:
            data = self.checkpoint_data
        from .io import save_checkpoint  # the documented exception: save/load delegate upwards

        return save_checkpoint(path, kind=self.kind, config=self.config, state_dict=self.state_dict(),
                               optimizer=optimizer, trainer=trainer, data=data, extra=extra)

    @classmethod
    def from_checkpoint(cls, payload: dict, *, device: str | torch.device = "cpu", story=None) -> "Story":
        """Rebuild a model from a checkpoint dict read by :func:`probgen.io.load_checkpoint` (the second half
        of :meth:`load`, which documents ``story``): on :class:`Story` any registered kind, on a subclass
        that kind only."""
        from .io import check_device, check_finite  # the documented exception: io holds the checkpoint checks

        device = check_device(device)  # "auto" resolved here, for the wrapper of a user's program too
        target = _checkpoint_class(cls, payload, story)
        if target is not cls:  # the wrapper of a user's program takes the user's code as story=
            wrapped = (payload.get("extra") or {}).get("program") is not None
            model = target.from_checkpoint(payload, device=device, **({"story": story} if wrapped else {}))
            check_finite(model)  # NaN weights: refused as a built-in's are
            return model
        try:
            model = cls(**payload["config"])
            model.load_state_dict(payload["state_dict"])
            check_finite(model)
        except (TypeError, RuntimeError) as e:
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
            detail = next((ln for ln in lines if ln.startswith(("size mismatch", "Missing", "Unexpected"))), lines[0])
            raise ValueError(f"checkpoint does not fit {cls.__name__}: {detail}") from None
        # what the file held beside the state: information to read, never written back by itself
        model.checkpoint_extra = payload.get("extra", {})
        model.checkpoint_data = payload.get("data")  # the data spec it was trained on (None: not recorded)
        model.checkpoint_optimizer = payload.get("optimizer")  # resume files only (else None)
        model.checkpoint_trainer = payload.get("trainer")
        return model.to(device).eval()

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "cpu", story=None) -> "Story":
        """The one loader of a checkpoint written by :meth:`save` (``probgen.load``, ``probgen.models.load``
        import the families and call it): ``Story.load`` any registered kind, ``VAE.load`` a VAE only. Runs
        no code from the file; old formats are upgraded in memory (:func:`probgen.io.load_checkpoint`).

        :param device: where the model goes: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when
            available, else the CPU).
        :param story: your own code for a checkpoint of your program (class, instance, ``(model, guide)``)
            or of your Story subclass; a checkpoint recording its story's file is refused without it
            (``probgen.recipes.story.load_story_checkpoint(path, allow_code=True)`` imports the file).
        :raises ValueError: one line naming ``path``.
        """
        from .io import load_checkpoint  # the documented exception: save/load delegate upwards

        payload = load_checkpoint(path)
        try:
            return cls.from_checkpoint(payload, device=device, story=story)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


def _checkpoint_class(cls: type, payload: dict, story) -> type:
    """The class that rebuilds ``payload``: the wrapper of a user's program, the user's own class
    (``story``), or the registered kind; refuses what cannot or must not be loaded implicitly."""
    extra, kind = payload.get("extra") or {}, payload["kind"]
    program = extra.get("program")
    if program is not None:  # probgen.adapt registers the wrapper (kind "program") when imported
        wrapper = REGISTRY.get("program")
        if wrapper is None or not issubclass(wrapper, cls):
            raise ValueError(f"checkpoint holds your program {program.get('class')}: load it with "
                             f"probgen.load(path, story={program.get('class')})")
        return wrapper
    if cls is not Story:
        if kind != cls.kind:
            raise ValueError(f"checkpoint holds a {kind!r} model, not {cls.kind!r}")
        return cls
    if story is not None:
        if not (isinstance(story, type) and issubclass(story, Story)):
            raise ValueError(f"holds the built-in model {kind!r}: load it without story=")
        return story
    target, source = REGISTRY.get(kind), extra.get("story_source")
    if source and getattr(target, "_probgen_source", {}).get("path") != source.get("path"):
        raise ValueError(f"checkpoint holds the user story {source.get('spec')}: loading it runs that "
                         "file's code, so it is never done implicitly; use probgen.recipes.story."
                         "load_story_checkpoint(path, allow_code=True) or the class's own load()")
    if target is None:
        raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(sorted(REGISTRY))})")
    return target


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
