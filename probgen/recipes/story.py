"""Your own generative story: ``user_story`` (``probgen train --story file.py:Class``) and
explicit loading of its checkpoints.

Importing a file runs its code (as ``python file.py`` would, except the
``if __name__ == "__main__":`` part), so it only ever happens when you name the file: with
``--story`` / :func:`user_story`, or ``load_story_checkpoint(path, allow_code=True)``. The
checkpoint records the story's ``file.py:ClassName`` and constructor arguments; loading it
with :func:`probgen.load` or ``probgen sample`` alone is refused and runs nothing.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .config import DataConfig, FitConfig, RunConfig, load_data, opt, out_dir, runs_in, seed_everything
from .guard import check_sizes, recorded_code
from .models import fit_model
from .usercode import StoryExit, exits_refused, user_code

__all__ = ["StoryConfig", "StoryResult", "user_story", "load_story_class", "load_story_program",
           "load_story_checkpoint", "parse_story_args", "build_story", "recorded_code", "story_label", "story_stem",
           "svi_mixture_hint"]


@dataclass
class StoryConfig(FitConfig):
    """``probgen train --story FILE.py:Class``: a user's story, its arguments, how it is fitted."""

    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = runs_in("runs/train")
    story: str = opt("", "train your own story: path/to/file.py:ClassName, file.py:model,guide or file.py "
                         "(any Pyro model/guide pair; runs that file's code)")
    story_args: list = opt(None, "constructor arguments of the story: KEY=VALUE ... or one JSON object",
                           nargs="*", metavar="KEY=VALUE", default_factory=list)
    elbo: str | None = opt(None, "objective (default: detected; enum for enumerated sites)")
    labels: bool = opt(False, "pass the data's labels to the story as y (automatic when its model requires y)")
    num_samples: int = opt(100, "importance samples for the test log-likelihood printed at the end, 0: skip")
    story_name: str | None = opt(None, "the story's name in tables and run files (default: FILE.py:NAME; its "
                                       "files OUT/FILE.NAME.pt)", flag="--name", metavar="NAME")

    def fit_options(self, run: RunConfig) -> dict:
        """SVI's options and the objective (``elbo``; ``None``: detected by the story check)."""
        return {**super().fit_options(run), "elbo": self.elbo}


@dataclass
class StoryResult:
    """The fitted story, its checkpoint, and its test log-likelihood (IWAE) when asked for."""

    model: object
    path: Path
    seconds: float
    dataset: object
    test_log_likelihood: object | None = None  # summarize(...) of the IWAE values, or None
    num_samples: int = 0
    estimator: str = "IWAE"  # "IWAE, marginal over labels" for a program that takes a label
    conditional: object | None = None  # summarize(log p(x | true y)) for such a program
    label_prior: str | None = None  # "uniform over 10" or "the model's site 'y'"
    name: str = ""  # its name in tables (story_label)
    notes: list = field(default_factory=list)  # one line each: what the number is, warnings, hints
    source: dict | None = None  # where its code came from ({"spec", "path", "class", "sha256"})

    def lines(self, spec: str) -> list[str]:
        elbo = self.model.checked.elbo if self.model.traits.trainer == "svi" else None
        out = [f"trained {spec} on {self.dataset.describe()} in {self.seconds:.1f} s "
               f"({self.model.n_params()} parameters, elbo={elbo}) -> {self.path}"]
        if self.test_log_likelihood is not None:
            k = "" if self.num_samples is None else f", K={self.num_samples}"
            out.append(f"test log-likelihood: {self.test_log_likelihood} nats/image ({self.estimator}{k})")
        if self.label_prior is not None:
            cond = "n/a (p(y) depends on a latent)" if self.conditional is None else f"{self.conditional} nats/image"
            out.append(f"  p(y): {self.label_prior}; conditional log p(x | true y): {cond} (separate column)")
        return out + [f"  {note}" for note in self.notes]


def parse_story_args(items) -> dict:
    """``["z_dim=4", "hidden=[64,32]", "name=t"]`` → ``{"z_dim": 4, "hidden": [64, 32], "name": "t"}``.

    Values are Python literals or JSON values where they parse as one (numbers, lists, ``True``/``None``,
    ``true``/``false``/``null``), else strings. One item that starts with ``{`` is read as a JSON object:
    ``['{"z_dim": 4}']``.
    """
    if isinstance(items, dict):
        return _shallow(dict(items))
    if isinstance(items, str):
        items = [items]
    if items and len(items) == 1 and str(items[0]).lstrip().startswith("{"):
        import json

        try:
            value = json.loads(items[0])
        except json.JSONDecodeError as e:
            raise ValueError(f"--story-args: not a JSON object ({e.msg} at character {e.pos})") from None
        except RecursionError:  # the parser's own stack: a value nested thousands deep
            raise ValueError(f"--story-args: nested more than {MAX_NESTING} levels deep") from None
        if not isinstance(value, dict):
            raise ValueError("--story-args: expected a JSON object {\"key\": value}")
        return _shallow(value)
    out = {}
    for item in items or []:
        key, sep, text = str(item).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise ValueError(f"--story-args: expected KEY=VALUE, got {item!r}")
        out[key] = _value(text.strip())
    return _shallow(out)


#: lists and objects inside lists and objects one ``--story-args`` value may hold (a constructor's arguments)
MAX_NESTING = 32


def _shallow(args: dict) -> dict:
    """``args`` if no value is nested more than :data:`MAX_NESTING` deep (walked without recursion)."""
    stack = [(v, 1) for v in args.values()]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, tuple, dict, set)):
            if depth > MAX_NESTING:
                raise ValueError(f"--story-args: nested more than {MAX_NESTING} levels deep")
            stack += [(v, depth + 1) for v in (value.values() if isinstance(value, dict) else value)]
    return args


def _value(text: str):
    """A Python literal, else a JSON value (``null``, ``true``, ``[1, 2]``), else the string itself."""
    import json

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):  # the last two: nested thousands deep
        pass
    try:
        return json.loads(text)
    except ValueError:
        return text
    except RecursionError:
        raise ValueError(f"--story-args: nested more than {MAX_NESTING} levels deep") from None


def story_label(spec: str, name: str | None = None) -> str:
    """A user story's name in tables and figures: ``name`` (``--name``), else its spec without folders
    (``pyro_vae.py:VAE``, ``gmm.py``): never the name of a built-in model, whatever its class is called.

    :raises ValueError: ``name`` is a built-in model's name or not a plain name.
    """
    from .models import MODELS, load_families

    if name:
        load_families()
        if name in MODELS or name == "compare":
            raise ValueError(f"--name {name}: is the name of probgen's own {name!r}; choose another name")
        if not re.fullmatch(r"[0-9A-Za-z_][0-9A-Za-z_.:,+-]*", name) or name.endswith(".pt"):
            raise ValueError(f"--name {name!r}: use letters, digits and _ . : , + - (no folder, no .pt)")
        return name
    path, sep, names = str(spec).rpartition(":") if ":" in str(spec) and not str(spec).endswith(".py") else (spec, "", "")
    return Path(path).name + (sep + names if sep else "")


def story_stem(label: str) -> str:
    """The file stem of a story's run files (``OUT/<stem>.pt``): its label with ``.py:`` -> ``.``, ``,`` -> ``-``
    (``pyro_vae.VAE``); ``-story`` added where that is a built-in model's name (a ``vae.py`` of functions)."""
    from .models import MODELS, load_families

    stem = re.sub(r"[^0-9A-Za-z_.+-]+", "-", label.replace(".py:", ".").removesuffix(".py").replace(":", "."))
    load_families()
    return stem + "-story" if stem in MODELS or stem == "compare" else stem


def _import_story_file(path_text: str, spec: str):
    """Import a story file once per content (a changed file is imported again). **Runs its code.**"""
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"story file not found: {path_text}")
    if path.suffix != ".py":
        raise ValueError(f"story {spec!r}: {path_text} is not a .py file")
    code = path.read_bytes()
    sha = hashlib.sha256(code).hexdigest()
    mod_name = f"probgen_story_{re.sub(r'[^0-9a-zA-Z_]', '_', path.stem)}_{sha[:12]}"
    module = sys.modules.get(mod_name)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = module
        sys.path.insert(0, str(path.parent))  # the file may import its neighbours, as with `python file.py`
        try:
            with exits_refused():
                loader_spec.loader.exec_module(module)
        except SystemExit as e:
            del sys.modules[mod_name]
            call = "os._exit" if isinstance(e, StoryExit) else "sys.exit"
            raise ValueError(f"{path_text}: called {call}({e.code}) on import: a story file must not exit") from None
        except (KeyboardInterrupt, GeneratorExit):
            del sys.modules[mod_name]
            raise
        except BaseException as e:  # noqa: BLE001 - the user's file (its own BaseException too): one line
            del sys.modules[mod_name]
            from ..check import at_user_frame, first_line

            raise ValueError(f"{path_text}: importing it failed: {type(e).__name__}: {first_line(e)}"
                             f"{at_user_frame(e)}") from None
        finally:
            sys.path.remove(str(path.parent))
    return module, {"path": str(path), "sha256": sha}


def load_story_program(spec: str):
    """Import ``file.py:Name`` (a class or object with ``model``/``guide``, or a ``(model, guide)``
    pair), ``file.py:model_fn,guide_fn`` or ``file.py`` (its top-level ``model`` and ``guide``).
    **Runs that file's code.**

    :return: ``(obj, source)``: the class, object, pair or module, and where it came from
        (``{"spec", "path", "class", "sha256"}``).
    :raises FileNotFoundError: no such file.
    :raises ValueError: a malformed spec, or nothing of that name with a model and a guide.
    """
    from ..story import Story

    text = str(spec)
    path_text, sep, name = text.rpartition(":") if ":" in text and not text.endswith(".py") else (text, "", "")
    names = [n.strip() for n in name.split(",")] if name else []
    if (sep and not name) or not all(n.isidentifier() for n in names) or len(names) > 2 or not path_text:
        raise ValueError(f"story {spec!r}: expected path/to/file.py:ClassName, file.py:model,guide or file.py")
    module, source = _import_story_file(path_text, text)
    source = {"spec": text, "class": names[0] if len(names) == 1 else Path(path_text).stem, **source}
    if not names:
        obj = module
    elif len(names) == 2:
        obj = tuple(getattr(module, n, None) for n in names)
        missing = [n for n, f in zip(names, obj) if not callable(f)]
        if missing:
            raise ValueError(f"{path_text} has no function {missing[0]!r}")
    else:
        obj = getattr(module, names[0], None)
        if obj is None or not (isinstance(obj, tuple) or hasattr(obj, "model") or
                               (isinstance(obj, type) and issubclass(obj, Story))):
            found = sorted(n for n, v in vars(module).items() if not n.startswith("_") and (
                (isinstance(v, type) and v.__module__ == module.__name__ and hasattr(v, "model"))))
            raise ValueError(f"{path_text} has no story {names[0]!r} with model and guide "
                             f"(stories there: {', '.join(found) or 'none'})")
    if isinstance(obj, type) and issubclass(obj, Story):
        obj._probgen_source = source
    return obj, source


def load_story_class(spec: str):
    """Import ``path/to/file.py:ClassName`` and return the class (or object, pair, module: see
    :func:`load_story_program`). **Runs that file's code.**"""
    return load_story_program(spec)[0]


def build_story(obj, source: dict | None, kwargs: dict, ds=None):
    """The story to train: a Story subclass built with ``kwargs``, anything else wrapped
    (:class:`probgen.adapt.PyroProgram`). ``x_dim`` / ``x_shape`` arguments are filled from ``ds``."""
    from ..adapt import PyroProgram
    from ..story import Story

    if isinstance(obj, type):
        params = inspect.signature(obj.__init__).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = [k for k in kwargs if k not in params and not takes_any]
        if unknown:
            known = [n for n in params if n != "self"]
            raise ValueError(f"--story-args: {obj.__name__} takes no argument {unknown[0]!r} "
                             f"(it takes: {', '.join(known) or 'nothing'})")
        if ds is not None and "x_dim" in params and "x_dim" not in kwargs:
            kwargs["x_dim"] = ds.x_dim  # filled from the data
        if ds is not None and "x_shape" in params and "x_shape" not in kwargs:
            kwargs["x_shape"] = list(ds.shape)
        if issubclass(obj, Story):
            try:
                return obj(**kwargs)
            except TypeError as e:
                raise ValueError(f"{obj.__name__}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}): {e}") from None
    elif kwargs:
        raise ValueError(f"--story-args: {source['spec'] if source else 'the story'} is not a class: it takes no arguments")
    return PyroProgram(obj, args=kwargs, name=(source or {}).get("class"), source=source)


def load_story_checkpoint(path: str | Path, *, allow_code: bool = False, story: str | None = None,
                          device: str = "cpu"):
    """Load a checkpoint of a user's story. Loading imports the story's file: it **runs that code**, so it
    happens only with ``allow_code``; then the one loader (:meth:`probgen.story.Story.load`) rebuilds it.

    :param path: a ``.pt`` written by ``probgen train --story`` (or ``story.save``).
    :param allow_code: must be ``True`` to import the story's file; without it nothing runs.
    :param story: ``file.py:ClassName`` to use instead of the one recorded in the checkpoint.
    :param device: where to put the model.
    :return: the story, in eval mode. Built-in models load as with :func:`probgen.load`.
    """
    from ..io import load_checkpoint
    from ..models import load
    from ..story import Story

    path = Path(path)
    payload = load_checkpoint(path)
    program, source = recorded_code(payload)
    if story is None and source is None:
        if program is not None:
            raise ValueError(f"{path}: holds your program {program['class']}, its file not recorded: pass "
                             "story='path/to/file.py:Name' or probgen.load(path, story=YourClass)")
        return load(path, device=device)  # a built-in model: no code involved
    if program is None and source is None:
        raise ValueError(f"{path}: holds the built-in model {payload['kind']!r}, not a story: load it without "
                         f"story= (CLI: without --story)")
    spec = story or source["spec"]
    if not allow_code:
        raise ValueError(f"{path}: holds the user story {spec}; loading it runs that file's code: "
                         "pass allow_code=True (CLI: --story FILE.py:Class)")
    if story is None:  # the recorded file: absolute path first, then as given (from here, from the checkpoint)
        file_text = spec if spec.endswith(".py") else spec.rpartition(":")[0]
        candidates = [Path(source["path"]), Path(file_text), path.parent / file_text]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"{path}: the story file {file_text} is gone; "
                                    "pass story='path/to/file.py:ClassName'")
        spec = str(found) + spec[len(file_text):]
    obj, new_source = load_story_program(spec)
    if source and source.get("sha256") not in (None, new_source["sha256"]):
        warnings.warn(f"{new_source['path']} changed since {path} was written", stacklevel=2)
    return Story.load(path, device=device, story=obj)


def user_story(cfg: StoryConfig, *, hold: bool = True) -> StoryResult:
    """Build the story named by ``cfg.story``, fit it, save ``run.out/<stem>.pt`` (:func:`story_stem`: named
    after the story, never after a built-in), score the test set by the one policy
    (:func:`probgen.evaluate.score`).

    :param hold: run inside :func:`probgen.runs.run_folder` as ``train MODEL`` does (a lock, a manifest
        written last, a finished run replaced only with ``--resume`` / ``--force``); ``compare`` holds its
        own folder and passes ``False``; inside a folder this process holds already (the tour's), not held.
    """
    import contextlib

    from ..io import run_files
    from ..runs import inside_held, run_folder

    check_sizes(cfg)  # --epochs, --num-samples, --threads: bounded, as for every family
    label = story_label(cfg.story, cfg.story_name)
    out = out_dir(cfg.run.out)
    files = run_files(out, story_stem(label))
    hold = hold and not inside_held(out)  # inside the tour's folder: its policy has decided
    held = (run_folder(out, name=files.name, command=f"train --story {cfg.story}", force=cfg.run.force,
                       resume=cfg.resume, outputs=[files.checkpoint], resume_from=files.last)
            if hold else contextlib.nullcontext(out))
    with held:
        return _train_story(cfg, label, files.checkpoint)


def _train_story(cfg: StoryConfig, label: str, path: Path) -> StoryResult:
    obj, source = load_story_program(cfg.story)
    with user_code(cfg.story):  # the story's own failures: one line naming its file and line
        return _fit_story(cfg, label, path, obj, source)


def _fit_story(cfg: StoryConfig, label: str, path: Path, obj, source: dict) -> StoryResult:
    import torch

    kwargs = parse_story_args(cfg.story_args)
    seed_everything(cfg.run.seed)
    ds = load_data(cfg.data, need_labels=cfg.labels)
    model = build_story(obj, source, kwargs, ds)
    labels = cfg.labels or model.traits.labels  # model(x, y): y is required
    if labels and ds.train_labels is None:
        raise ValueError(f"{ds.name}: {source['spec'] if source else 'the story'} takes a label y, and the data has none")
    if labels and model.n_classes is None:
        model.n_classes = ds.n_classes  # the uniform p(y) of the marginal, unless the program has its own
    t0 = time.perf_counter()
    fit_model(model, cfg, ds, path, cfg.run, labels=labels)
    result = StoryResult(model, path, time.perf_counter() - t0, ds, num_samples=cfg.num_samples, name=label,
                         source=source)
    if cfg.num_samples:
        from ..evaluate import score, summarize

        with torch.no_grad():  # the one policy: marginal over labels for a conditional story, as the CVAE
            s = score(model, ds.test.to(model.device), y=ds.test_labels if labels else None,
                      num_samples=cfg.num_samples, khat=False)
        result.estimator, result.num_samples = s.estimator, s.k
        result.label_prior = s.extra.get("label_prior")
        result.conditional = None if s.conditional is None else summarize(s.conditional)
        result.test_log_likelihood = summarize(s.values)
        result.notes += [n for n in (s.extra.get("global_latents"), s.warning) if n]
    hint = svi_mixture_hint(model, cfg.lr, cfg.epochs)
    if hint:
        result.notes.append(hint)
    return result


def svi_mixture_hint(model, lr: float, epochs: int) -> str | None:
    """A hint when a story whose only per-example latents are enumerated (a mixture: its guide draws nothing
    per example) was fitted by SVI and shows why it may end far below EM on the same model: its loss still
    falling when training stopped (the epochs, the learning rate). ``None`` otherwise, or when not scored yet.

    :param lr: the learning rate it was trained with; ``epochs``: the epochs asked for.
    """
    from ..importance import last_plan

    plan, checked, result = last_plan(model), model.checked, model.train_result
    if plan is None or plan.local_guided or not plan.enumerated or checked is None or "enum" not in checked.elbo \
            or result is None:
        return None
    losses = [r.get("val_loss", r.get("train_loss")) for r in result.history]
    losses = [v for v in losses if v is not None]
    if len(losses) < 2 or losses[-2] - losses[-1] < 0.01:  # converged (nats per example and epoch)
        return None
    return (f"hint: {', '.join(map(repr, plan.enumerated))} is summed out exactly and the guide draws nothing per "
            f"example (a mixture), fitted by SVI: its loss still fell {losses[-2] - losses[-1]:.2g} nats/image in the "
            f"last of {len(losses)} epochs (of {epochs}) at lr={lr:g}. Gradient steps fit a mixture far more slowly "
            f"than EM fits the same model: train longer (--epochs){', raise --lr (e.g. 0.01-0.05)' if lr < 0.01 else ''}"
            ", or start the component means from data (k-means)")
