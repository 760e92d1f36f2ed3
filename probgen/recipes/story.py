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
from .models import fit_svi_model

__all__ = ["StoryConfig", "StoryResult", "user_story", "load_story_class", "load_story_checkpoint",
           "parse_story_args"]


@dataclass
class StoryConfig(FitConfig):
    """``probgen train --story FILE.py:Class``: a user's story, its arguments, how it is fitted."""

    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = runs_in("runs/train")
    story: str = opt("", "train your own story: path/to/file.py:ClassName (runs that file's code)")
    story_args: list = opt(None, "constructor arguments of the story", nargs="*", metavar="KEY=VALUE",
                           default_factory=list)
    elbo: str | None = opt(None, "objective (default: detected; enum for enumerated sites)")
    labels: bool = opt(False, "pass the data's labels to the story as y")
    num_samples: int = opt(100, "importance samples for the test log-likelihood printed at the end, 0: skip")


@dataclass
class StoryResult:
    """The fitted story, its checkpoint, and its test log-likelihood (IWAE) when asked for."""

    model: object
    path: Path
    seconds: float
    dataset: object
    test_log_likelihood: object | None = None  # summarize(...) of the IWAE values, or None
    num_samples: int = 0

    def lines(self, spec: str) -> list[str]:
        elbo = self.model.checked.elbo if hasattr(self.model, "checked") else None
        out = [f"trained {spec} on {self.dataset.describe()} in {self.seconds:.1f} s "
               f"({self.model.n_params()} parameters, elbo={elbo}) -> {self.path}"]
        if self.test_log_likelihood is not None:
            out.append(f"test log-likelihood: {self.test_log_likelihood} nats/image (IWAE, K={self.num_samples})")
        return out


def parse_story_args(items) -> dict:
    """``["z_dim=4", "hidden=[64,32]", "name=t"]`` → ``{"z_dim": 4, "hidden": [64, 32], "name": "t"}``.

    Values are Python literals where they parse as one (numbers, lists, True/None), else strings.
    """
    if isinstance(items, dict):
        return dict(items)
    out = {}
    for item in items or []:
        key, sep, text = str(item).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise ValueError(f"--story-args: expected KEY=VALUE, got {item!r}")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()
        out[key] = value
    return out


def load_story_class(spec: str):
    """Import ``path/to/file.py:ClassName`` and return the class. **Runs that file's code.**

    :param spec: file and class name, separated by a colon.
    :raises FileNotFoundError: no such file.
    :raises ValueError: a malformed spec, or the file has no such :class:`probgen.Story` subclass.
    """
    from ..story import Story

    path_text, sep, cls_name = str(spec).rpartition(":")
    if not sep or not path_text or not cls_name.isidentifier():
        raise ValueError(f"story {spec!r}: expected path/to/file.py:ClassName")
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
            loader_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[mod_name]
            raise
        finally:
            sys.path.remove(str(path.parent))
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Story)):
        found = sorted(n for n, v in vars(module).items()
                       if isinstance(v, type) and issubclass(v, Story) and v.__module__ == mod_name)
        raise ValueError(f"{path_text} has no Story subclass {cls_name!r} "
                         f"(Story subclasses there: {', '.join(found) or 'none'})")
    cls._probgen_source = {"spec": f"{path_text}:{cls_name}", "path": str(path), "class": cls_name,
                           "sha256": sha}
    return cls


def load_story_checkpoint(path: str | Path, *, allow_code: bool = False, story: str | None = None,
                          device: str = "cpu"):
    """Load a checkpoint of a user's story. Loading imports the story's file: it **runs that code**.

    :param path: a ``.pt`` written by ``probgen train --story`` (or ``story.save``).
    :param allow_code: must be ``True`` to import the story's file; without it nothing runs.
    :param story: ``file.py:ClassName`` to use instead of the one recorded in the checkpoint.
    :param device: where to put the model.
    :return: the story, in eval mode. Built-in models load as with :func:`probgen.load`.
    """
    from ..io import load_checkpoint
    from ..models import load

    path = Path(path)
    payload = load_checkpoint(path)
    source = (payload.get("extra") or {}).get("story_source")
    if story is None and source is None:
        return load(path, device=device)  # a built-in model: no code involved
    spec = story or source["spec"]
    if not allow_code:
        raise ValueError(f"{path}: holds the user story {spec}; loading it runs that file's code: "
                         "pass allow_code=True (CLI: --story FILE.py:Class)")
    if story is None:  # the recorded file: absolute path first, then as given (from here, from the checkpoint)
        candidates = [Path(source["path"]), Path(spec.rpartition(":")[0]),
                      path.parent / spec.rpartition(":")[0]]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"{path}: the story file {spec.rpartition(':')[0]} is gone; "
                                    "pass story='path/to/file.py:ClassName'")
        spec = f"{found}:{source['class']}"
    cls = load_story_class(spec)
    if source and source.get("sha256") not in (None, cls._probgen_source["sha256"]):
        warnings.warn(f"{cls._probgen_source['path']} changed since {path} was written", stacklevel=2)
    try:
        return cls.from_checkpoint(payload, device=device)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def user_story(cfg: StoryConfig) -> StoryResult:
    """Build the story named by ``cfg.story``, fit it, save ``run.out/<kind>.pt``, score the test set."""
    import torch

    if cfg.epochs < 0 or cfg.num_samples < 0:
        raise ValueError("--epochs and --num-samples must be >= 0")
    cls = load_story_class(cfg.story)
    kwargs = parse_story_args(cfg.story_args)
    seed_everything(cfg.run.seed)
    ds = load_data(cfg.data, need_labels=cfg.labels)
    params = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in kwargs if k not in params and not takes_any]
    if unknown:
        known = [n for n in params if n != "self"]
        raise ValueError(f"--story-args: {cls.__name__} takes no argument {unknown[0]!r} "
                         f"(it takes: {', '.join(known) or 'nothing'})")
    if "x_dim" in params and "x_dim" not in kwargs:
        kwargs["x_dim"] = ds.x_dim  # filled from the data
    if "x_shape" in params and "x_shape" not in kwargs:
        kwargs["x_shape"] = list(ds.shape)
    try:
        model = cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}): {e}") from None
    out = out_dir(cfg.run.out)
    path = out / f"{model.kind}.pt"
    t0 = time.perf_counter()
    fit_svi_model(model, cfg, ds, path, cfg.run, labels=cfg.labels, elbo=cfg.elbo)
    result = StoryResult(model, path, time.perf_counter() - t0, ds, num_samples=cfg.num_samples)
    if cfg.num_samples:
        from ..evaluate import summarize

        with torch.no_grad():
            ll = model.log_prob(ds.test, ds.test_labels if cfg.labels else None, num_samples=cfg.num_samples)
        result.test_log_likelihood = summarize(ll)
    return result
