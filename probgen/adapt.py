"""Bring your own Pyro program: :func:`as_story` wraps any model/guide pair in a :class:`probgen.Story`.

probgen accepts, unchanged:

- any object with ``model(x, ...)`` and ``guide(x, ...)`` methods (a plain ``nn.Module`` as in
  Pyro's examples, a ``PyroModule``, or a plain class holding modules), or its class and the
  constructor arguments;
- a pair of plain functions ``(model, guide)``, or a Python module whose top level defines them.

Parameters may be registered with ``pyro.module``, ``PyroModule``, ``pyro.param`` or an autoguide
(``AutoDelta(poutine.block(model, expose=[...]))``, ``AutoNormal``, ...: set up lazily on the first
call): the program runs with a param store of its own (:mod:`probgen.paramstore`: two wrapped
programs never share parameters, whatever names they use) and the wrapper owns the plain
``pyro.param`` tensors as ``nn.Parameter`` s, so that ``state_dict`` / ``load_state_dict`` (and so
training, early stopping, checkpoints) cover all of them. Observed and latent sites are found by
tracing (:func:`probgen.check.check_story`), never by their names. A checkpoint holds the state and the user's constructor arguments; loading it needs
the user's class, named in a one-line error (``probgen.load(path, story=MyVAE)``): no code is
ever unpickled.
"""
from __future__ import annotations

from dataclasses import replace

import inspect
import re
import types
from pathlib import Path

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.messenger import Messenger
from torch import nn
from torch.distributions import transform_to

from .check import StoryCheck, at_user_frame, check_story, first_line, sample_sites, trace_pair
from .data import MAX_CLASSES, check_tensor
from .paramstore import find_autoguides, mirror, new_tables, private_store, rebind
from .story import Story, Traits

__all__ = ["PyroProgram", "as_story", "split_program", "constructor_args"]

_PLAIN = (bool, int, float, str, type(None))


def split_program(obj, guide=None) -> tuple:
    """``(model, guide, owner, name)`` of anything probgen accepts as a program.

    :raises ValueError: no ``model`` or no ``guide`` (one line naming the object).
    """
    if isinstance(obj, (tuple, list)):
        if len(obj) != 2:
            raise ValueError(f"a program pair must be (model, guide), got {len(obj)} items")
        obj, guide = obj
    if callable(obj) and guide is not None and not hasattr(obj, "model"):
        name = getattr(obj, "__name__", "model")
        if name == "model":  # the module's name says more than "model"
            name = str(getattr(obj, "__module__", "") or "program").rpartition(".")[2]
        if not callable(guide):
            raise ValueError(f"{name}: the guide must be a function, got {type(guide).__name__}")
        _distinct(obj, guide, name)
        return obj, guide, None, name
    what = obj.__name__ if isinstance(obj, types.ModuleType) else type(obj).__name__
    for attr in ("model", "guide"):
        if not callable(getattr(obj, attr, None)):
            raise ValueError(f"{what} has no {attr}(x) {'function' if isinstance(obj, types.ModuleType) else 'method'}:"
                             " a story needs model(x) and guide(x) with the same latent site names")
    name = what.rpartition(".")[2] if isinstance(obj, types.ModuleType) else what
    _distinct(obj.model, obj.guide, name)
    return obj.model, obj.guide, obj, name


def _distinct(model, guide, name: str) -> None:
    """Refuse a guide that is the model itself (``(model, model)``): one line, not a trace of Pyro's."""
    if getattr(model, "__func__", model) is getattr(guide, "__func__", guide):
        raise ValueError(f"{name}: the guide is the model itself ((model, model)); pass (model, guide), the guide "
                         "sampling the model's latent sites")


def constructor_args(obj, given: dict | None = None) -> tuple[dict, bool]:
    """The constructor arguments of ``obj``: ``given`` first, then attributes of the same name
    (``self.z_dim = z_dim``), then defaults. Returns ``(args, complete)``."""
    given = dict(given or {})
    try:
        params = list(inspect.signature(type(obj).__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        return given, False
    complete = True
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in given:
            continue
        value = obj.__dict__.get(p.name, inspect.Parameter.empty)
        if isinstance(value, _PLAIN) or (isinstance(value, (list, tuple)) and all(isinstance(v, _PLAIN) for v in value)):
            given[p.name] = list(value) if isinstance(value, tuple) else value
        elif p.default is not inspect.Parameter.empty:
            given[p.name] = p.default
        else:
            complete = False
    return given, complete


class _ParamScope(Messenger):
    """Adopt every parameter a run of the program meets that the wrapper does not own yet: a new
    ``pyro.param(name, init)``, or a tensor a ``PyroModule`` put in the (private) store by itself."""

    def __init__(self, owner: "PyroProgram"):
        super().__init__()
        self.owner = owner

    def _pyro_param(self, msg) -> None:
        name, args = msg["name"], msg["args"]
        params = pyro.get_param_store()._params
        if name in params:
            if not self.owner._owns(params[name]):
                self.owner._adopt(name, params[name], None, existing=True)
        elif len(args) >= 2:
            self.owner._adopt(name, args[1], msg["kwargs"].get("constraint"))


class PyroProgram(Story):
    """A user's Pyro program as a :class:`Story`: ``model``/``guide`` delegate to it.

    :param program: an object with ``model``/``guide`` (``nn.Module``, ``PyroModule``, plain
        class), a class (built with ``args``), a ``(model, guide)`` pair, or a module.
    :param guide: the guide when ``program`` is a model function.
    :param args: constructor arguments (recorded in checkpoints; recovered from attributes
        of the same name when not given).
    :param name: name in checkpoints and run files (default: the class or module name).
    :param source: where it came from (``{"spec": "file.py:Name", ...}``), recorded in checkpoints.
    """

    kind = "program"
    elbo = "trace"
    # trained by SVI, scored by IWAE with the program's guide; a label argument is declared per instance
    traits = Traits(offers={"sample_mean"})

    def __init__(self, program, guide=None, *, args: dict | None = None, name: str | None = None,
                 source: dict | None = None):
        super().__init__()
        if isinstance(program, type) and not isinstance(program, types.ModuleType):
            try:
                program = program(**(args or {}))
            except TypeError as e:
                raise ValueError(f"{program.__name__}({', '.join(f'{k}={v!r}' for k, v in (args or {}).items())}): "
                                 f"{e}") from None
        model, guide, owner, auto = split_program(program, guide)
        self._model_fn, self._guide_fn = model, guide
        self.kind = re.sub(r"[^0-9a-z_]+", "_", (name or auto).lower()) or "program"
        self.story_name = f"{source['spec']}" if source else (name or auto)
        self.source = dict(source or {})
        self.free = nn.ParameterDict()  # plain pyro.param tensors, unconstrained
        if isinstance(owner, nn.Module):
            self.program = owner
        elif owner is not None and not isinstance(owner, types.ModuleType):
            for attr, value in vars(owner).items():  # a plain class holding modules
                if isinstance(value, nn.Module):
                    self.add_module(f"program_{attr}", value)
        object.__setattr__(self, "_owner", owner)  # not a second copy of the submodule
        is_class = owner is not None and not isinstance(owner, types.ModuleType)
        self._args, self._args_complete = constructor_args(owner, args) if is_class else ({}, True)
        self.style = "class" if is_class else ("module" if owner is not None else "functions")
        sig = _positional(model)
        self.takes_y = len(sig) >= 2
        if self.takes_y and sig[1].default is inspect.Parameter.empty:  # model(x, y): y is required
            self.traits = replace(self.traits, labels=True, offers=self.traits.offers | {"sample_label"})
        self.x_shape: list | None = None
        given = (args or {}).get("n_classes", getattr(owner, "n_classes", None))
        self.n_classes: int | None = given if isinstance(given, int) and given > 0 else None
        self._label_site: str | None | bool = False  # False: not looked for yet
        self._store, self._owned = new_tables(), set()  # its own param store; ids of the tensors it owns
        self._autoguides = find_autoguides(model, guide, *(() if owner is None else (owner,)))

    # -- identity -------------------------------------------------------------------
    @property
    def config(self) -> dict:
        """The user's constructor arguments (plain values), as far as they are known."""
        return dict(self._args)

    def register_params(self) -> None:
        """Nothing to do: the program registers its own parameters when it runs (scoped to this wrapper)."""

    # -- the probabilistic program ------------------------------------------------------
    def model(self, x, y=None):
        return self._run("model", self._model_fn, x, y)

    def guide(self, x, y=None):
        return self._run("guide", self._guide_fn, x, y)

    def _run(self, which: str, fn, x, y):
        if y is not None and not self.takes_y:
            raise ValueError(f"{self.story_name}.{which} takes no label argument: leave out y (--labels)")
        try:
            with private_store(self._store), _ParamScope(self):
                rebind(self._autoguides, self.pyro_name)
                return fn(x) if y is None else fn(x, y)
        except SystemExit as e:  # a story must never end the process
            raise ValueError(f"{self.story_name}.{which}: called sys.exit({e.code}){at_user_frame(e)}: "
                             "a story must not exit") from None

    def prepare(self, x, y=None):
        x, y = super().prepare(x, y)
        size = x[0].numel() if len(x) else None
        if self.x_shape and size is not None and size != int(torch.Size(self.x_shape).numel()):
            raise ValueError(f"{self.story_name}: the data have shape {tuple(x.shape[1:])} per example; it was "
                             f"fitted on {tuple(self.x_shape)}")
        self.x_shape = list(x.shape[1:])
        if y is not None and self.takes_y and self.n_classes is None and self.label_prior(x, y) is None:
            seen = int(check_tensor(torch.as_tensor(y), "y").max()) + 1 if len(y) else None  # no prior site: the labels seen
            if seen is not None and seen > MAX_CLASSES:  # scoring sums over every class; sampling draws one
                raise ValueError(f"{self.story_name}: labels y must lie in 0..{MAX_CLASSES - 1} (at most {MAX_CLASSES} "
                                 f"classes), got {seen - 1}")
            self.n_classes = seen
        return x, y

    # -- a label argument: an input, or a site with the program's own prior p(y) --------------
    def label_prior(self, x, y=None) -> str | None:
        """The model's site observed with the label (``pyro.sample("y", Categorical(pi), obs=y)``), or
        ``None`` when the label is only an input. With such a site the program's own p(y) is part of
        its joint, so the marginal over labels must not add another one. Found by tracing a few
        examples (the site whose observed value is the label tensor), then cached; a ``Categorical``
        site also gives ``n_classes`` (its support)."""
        if self._label_site is not False or not self.takes_y:
            return self._label_site or None
        x = x[:4]
        y = torch.zeros(len(x), dtype=torch.long, device=x.device) if y is None else torch.as_tensor(y)[:4]
        try:
            tr = self._trace_model(x, y)
        except Exception:  # noqa: BLE001 - check_story names the program's mistake in one line
            return None
        self._label_site = None
        for name, site in sample_sites(tr).items():
            v = site.get("value")
            if site["is_observed"] and torch.is_tensor(v) and v.shape == y.shape \
                    and torch.equal(v.long(), y.long()):
                self._label_site = name
                if site["fn"].has_enumerate_support:
                    self.n_classes = int(site["fn"].enumerate_support(expand=False).shape[0])
                break
        return self._label_site

    def label_log_prior(self, x, y) -> torch.Tensor | None:
        """log p(y) ``[n]`` from the program's label site, or ``None`` where there is no such site or
        it is drawn after a latent site (then p(y) may depend on the latents and is not read off)."""
        site = self.label_prior(x, y)
        if site is None:
            return None
        tr = self._trace_model(x, torch.as_tensor(y))
        for name, node in sample_sites(tr).items():  # in the order the model draws them
            if not node["is_observed"]:
                return None  # a latent first: p(y) is not one site's log-prob
            if name == site:
                return node["fn"].log_prob(node["value"]).reshape(len(x)).detach()
        return None

    def _trace_model(self, x, y):
        rng = pyro.util.get_rng_state()
        try:
            with torch.no_grad():
                return trace_pair(self.model, self.guide, x, y)[1]
        finally:
            pyro.util.set_rng_state(rng)

    def check(self, x, y=None, *, elbo: str | None = None, batch: int = 4) -> StoryCheck:
        """:func:`probgen.check.check_story`, strict about what a user's program must have; an autoguide over
        sites with one value per example is refused (it would learn one value per training example)."""
        found = check_story(self, x, y, elbo=elbo, batch=batch, strict=True)
        n = min(batch, len(x)) - 1
        if self._autoguides and n >= 1:  # set up on `batch` examples: a per-example site no longer fits n
            rng = pyro.util.get_rng_state()
            try:
                with torch.no_grad():
                    trace_pair(self.model, self.guide, x[:n], None if y is None else y[:n])
            except (ValueError, RuntimeError) as e:  # anything but an autoguide's mismatch: the check passed
                m = re.match(r"Shape mismatch inside plate\('(.*)'\) at site (\S+)", first_line(e))
                if m is None:
                    return found
                guide = type(self._autoguides[0]).__name__
                raise ValueError(f"{self.story_name}.guide: {guide} guides site {m.group(2)!r}, which has one value per "
                                 f"example (plate {m.group(1)!r}): an autoguide learns one value per training example "
                                 "and cannot score new ones; guide it with an encoder, and the global sites with the "
                                 "autoguide: AutoNormal(poutine.block(model, expose=[...]))") from None
            finally:
                pyro.util.set_rng_state(rng)
        return found

    # -- parameters ---------------------------------------------------------------------
    def _owns(self, p) -> bool:
        """``p`` is saved under a name of this wrapper: in ``free``, or a parameter of one of its modules other
        than an autoguide (whose parameters all go to ``free``: a fresh autoguide makes them lazily)."""
        if id(p) not in self._owned:
            guides = self._autoguide_params()
            self._owned = {id(q) for n, q in self.named_parameters(remove_duplicate=False)
                           if n.startswith("free.") or n not in guides}
        return id(p) in self._owned

    def _autoguide_params(self) -> dict:
        """``{name: parameter}`` of the autoguides among this wrapper's modules."""
        ids = {id(g) for g in self._autoguides}
        return {f"{n}.{k}": q for n, m in self.named_modules() if n and id(m) in ids
                for k, q in m.named_parameters(remove_duplicate=False)}

    def _adopt(self, name: str, init, constraint, *, existing: bool = False) -> None:
        """Put the param-store entry ``name`` in place (in the program's own store), owned by this wrapper:
        a new ``pyro.param(name, init)``, or (``existing``) a tensor already in the store that is not ours."""
        from pyro.distributions import constraints

        store = pyro.get_param_store()
        if existing:
            constraint = store._constraints.get(name)
        constraint = constraints.real if constraint is None else constraint
        key = re.sub(r"[^0-9A-Za-z_]", "_", name)
        loaded = self.free[key] if key in self.free else None
        if isinstance(init, nn.Parameter) and self._owns(init) and loaded is None:
            return  # a registered module's parameter: the store takes the tensor itself
        if isinstance(init, nn.Parameter):  # a module outside this wrapper (a global one): keep its tensor
            if loaded is not None and loaded is not init:
                with torch.no_grad():
                    init.copy_(loaded)
            p = init
        elif loaded is not None:
            p = loaded
        elif existing:  # a plain tensor a PyroModule or a blocked run put there: ours from now on
            p = nn.Parameter(init.detach())
        else:
            value = init() if callable(init) else init
            p = nn.Parameter(transform_to(constraint).inv(torch.as_tensor(value)).detach().clone())
        if not self._owns(p) or loaded is not None:
            self.free[key] = p
            self._owned.add(id(p))
        old = store._params.get(name)
        if old is not None and old is not p:
            store._param_to_name.pop(old, None)
        store._params[name], store._constraints[name] = p, constraint  # what pyro.param's setdefault would do
        store._param_to_name[p] = name

    def _set_up(self) -> None:
        """Run the guide once on zeros shaped like the data (``x_shape``), so that what the program makes
        lazily exists; the random-number state is left as it was, a failure is left to the real run."""
        if not self.x_shape:
            return
        x = torch.zeros(2, *self.x_shape, device=self.device)
        y = torch.zeros(2, dtype=torch.long, device=self.device) if self.needs_labels else None
        rng = pyro.util.get_rng_state()
        try:
            with torch.no_grad():
                poutine.trace(self.guide).get_trace(x, y)
        except Exception:  # noqa: BLE001 - load_state_dict names what is still missing
            pass
        finally:
            pyro.util.set_rng_state(rng)

    def state_dict(self, *args, **kwargs):
        out = super().state_dict(*args, **kwargs)
        for name in self._autoguide_params():  # kept in free.*: a fresh autoguide makes its parameters lazily
            out.pop(kwargs.get("prefix", "") + name, None)
        return out

    def load_state_dict(self, state_dict, strict: bool = True, **kwargs):
        guides = self._autoguide_params()
        state_dict = {k: v for k, v in state_dict.items() if k not in guides}
        for k, v in state_dict.items():  # plain pyro.param tensors of a fresh wrapper: created here
            key = k.partition(".")[2]
            if k.startswith("free.") and key not in self.free:
                self.free[key] = nn.Parameter(v.detach().clone())
        own = set(super().state_dict())
        if any(k not in own for k in state_dict if not k.startswith("free.")):
            self._set_up()  # modules that make their parameters on the first call (an AutoNormalMessenger)
            guides = self._autoguide_params()
        free = {id(p): "free." + k for k, p in self.free.items()}
        for name, q in guides.items():  # its free.* value, or (set up by another wrapper, set up again) its own
            state_dict[name] = state_dict.get(free.get(id(q)), q.detach())
        return super().load_state_dict(state_dict, strict=strict, **kwargs)

    # -- sampling, saving ---------------------------------------------------------------
    def sample(self, n: int, *, mean: bool = False, label: int | None = None, **kwargs) -> torch.Tensor:
        """``n`` draws of the observed site from the model (``mean``: its mean), with the
        latent sites from their priors: the model runs on ``n`` placeholder examples, unconditioned.
        A program that takes a label gets ``label`` for all ``n``, else labels from its own p(y)
        site, else uniform over ``n_classes``."""
        own = getattr(self._owner, "sample", None)
        if callable(own) and not mean and not kwargs and label is None:
            return own(n)
        if not self.x_shape:
            raise ValueError(f"{self.story_name}: sample needs the data shape: fit or score it first")
        x = torch.zeros(n, *self.x_shape, device=self.device)
        y, model = self._sample_labels(x, label), poutine.uncondition(self.model)
        site = None if y is None else self.label_prior(x, y)
        if site is not None:  # the label site keeps the labels drawn (the decoder may use its value)
            model = poutine.condition(model, data={site: y})
        with torch.no_grad():
            tr = poutine.trace(model).get_trace(x, *(() if y is None else (y,)))
        observed = [s for s in tr.nodes.values() if s["type"] == "sample" and s["name"] in self._observed(x, y)
                    and s["name"] != site]
        if not observed:
            raise ValueError(f"{self.story_name}: no observed site to sample")
        site = observed[-1]
        value = site["fn"].mean if mean else site["value"]
        return value.reshape(n, *self.x_shape)

    def _observed(self, x, y=None) -> list:
        checked = self.checked
        if checked is None or not checked.observed:
            self.checked = self.check(x, y)
        return self.checked.observed

    def _sample_labels(self, x, label: int | None) -> torch.Tensor | None:
        """Labels ``[n]`` for sampling a program that needs them (``None`` for one that does not)."""
        if not self.needs_labels:
            if label is not None:
                raise ValueError(f"{self.story_name} takes no label: leave out label=")
            return None
        n = len(x)
        if label is not None:
            if self.n_classes and not 0 <= int(label) < self.n_classes:
                raise ValueError(f"label must lie in 0..{self.n_classes - 1}, got {label}")
            return torch.full((n,), int(label), dtype=torch.long, device=x.device)
        site = self.label_prior(x)
        if site is not None:  # the program's own p(y): one unconditioned run draws the labels
            with torch.no_grad():
                tr = poutine.trace(poutine.uncondition(self.model)).get_trace(x, torch.zeros(n, dtype=torch.long))
            return tr.nodes[site]["value"].long()
        if not self.n_classes:
            raise ValueError(f"{self.story_name} takes a label: sample(n, label=...) or fit it with labels first")
        return torch.randint(self.n_classes, (n,), device=x.device)

    def save(self, path, *, data=None, extra=None, optimizer=None, trainer=None) -> Path:
        info = {"class": type(self._owner).__name__ if self.style == "class" else self.story_name,
                "style": self.style, "args_complete": self._args_complete, "x_shape": self.x_shape,
                "spec": self.source.get("spec"), "story_name": self.story_name, "n_classes": self.n_classes}
        if self.source:
            info["source"] = self.source
        return super().save(path, data=data, extra={**(extra or {}), "program": info},
                            optimizer=optimizer, trainer=trainer)

    @classmethod
    def from_checkpoint(cls, payload: dict, *, device="cpu", story=None) -> "PyroProgram":
        """Rebuild a wrapped program: ``story`` is the user's class, an instance, or a pair/module."""
        info = (payload.get("extra") or {}).get("program")
        if info is None:
            raise ValueError(f"checkpoint holds a {payload['kind']!r} model, not a wrapped Pyro program "
                             f"({cls.kind!r})")
        if story is None:
            raise ValueError(f"checkpoint holds your program {info['class']}: pass its code, "
                             f"probgen.load(path, story={info['class']})")
        if isinstance(story, type) and not info.get("args_complete", True) and not payload["config"]:
            raise ValueError(f"the constructor arguments of {info['class']} were not recorded: pass an "
                             f"instance, probgen.load(path, story={info['class']}(...))")
        args = payload["config"] if isinstance(story, type) else None
        model = cls(story, args=args, name=payload["kind"], source=info.get("source"))
        model.x_shape = info.get("x_shape")
        model.n_classes = model.n_classes or info.get("n_classes")
        try:
            model.load_state_dict(payload["state_dict"])
        except RuntimeError as e:
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            detail = next((ln for ln in lines if ln.startswith(("size mismatch", "Missing", "Unexpected"))), lines[0])
            raise ValueError(f"checkpoint does not fit {model.story_name}: {detail}") from None
        model.checkpoint_extra = payload.get("extra", {})
        model.checkpoint_data = payload.get("data")
        model.checkpoint_optimizer, model.checkpoint_trainer = payload.get("optimizer"), payload.get("trainer")
        return model.to(device).eval()


def as_story(program, guide=None, **args) -> Story:
    """Anything probgen accepts as a story, as a :class:`Story` (a Story is returned as it is).

    :param program: a Story, an object with ``model``/``guide``, its class (built with ``args``),
        a ``(model, guide)`` pair, a module defining both, or a model function with ``guide``.
    :param args: constructor arguments of a class (recorded in checkpoints).
    """
    if isinstance(program, Story):
        return program
    if isinstance(program, type) and issubclass(program, Story):
        return program(**args)
    name, source = args.pop("name", None), args.pop("source", None)
    return PyroProgram(program, guide, args=args or None, name=name, source=source)


def _positional(fn) -> list:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

