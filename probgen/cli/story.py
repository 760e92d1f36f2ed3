"""Your own generative story on the command line, and ``probgen train mixture-vae``.

``probgen train --story path/to/file.py:ClassName --data digits [--story-args key=value ...]``
imports that file and trains the named :class:`probgen.Story` subclass with the usual
training flags. Importing a file runs its code (as ``python file.py`` would, except the
``if __name__ == "__main__":`` part), so it only ever happens when you name the file:
with ``--story`` here, or ``load_story_checkpoint(path, allow_code=True)`` in Python. The
checkpoint records the story's ``file.py:ClassName`` and constructor arguments; loading it
with :func:`probgen.load` or ``probgen sample`` alone is refused and runs nothing.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import inspect
import re
import sys
import time
import warnings
from pathlib import Path

from . import common
from .common import CLIError

__all__ = ["register", "run_story_train", "add_story_flags", "load_story_class", "load_story_checkpoint",
           "parse_story_args", "STORY_DEFAULTS"]

_PREFIX = "story_opt_"  # parent-parser dests, so that MODEL subcommands never overwrite them

#: the flags ``probgen train --story`` takes, with their defaults
STORY_DEFAULTS = {
    "data": "digits", "data_dir": None, "binarize": True, "continuous": False, "download": False,
    "seed": 0, "device": "cpu", "quiet": False, "epochs": 50, "batch_size": 128, "lr": 1e-3,
    "patience": 10, "resume": False, "clip_norm": None, "elbo": None, "labels": False, "num_samples": 100,
}


def register(sub) -> None:
    common.add_trainer("mixture-vae", "VAE with a Gaussian-mixture prior (c enumerated, TraceEnum_ELBO): "
                       "clusters and generates", _mvae_args, _mvae_run)


def add_story_flags(p: argparse.ArgumentParser) -> None:
    """Add the data, run and training flags of ``probgen train --story`` to the ``train`` parser.

    They are stored under their own names, so ``probgen train --epochs 5 vae`` is an error
    (the VAE's flags go after ``vae``) instead of being silently overwritten.
    """
    g = p.add_argument_group("with --story (a MODEL's own flags go after MODEL)")
    d = STORY_DEFAULTS

    def add(flag, key, **kw):
        if "action" not in kw:
            kw["metavar"] = key.upper()
        g.add_argument(flag, dest=_PREFIX + key, default=argparse.SUPPRESS, **kw)

    add("--data", "data", help=f"data set name or path (default: {d['data']})")
    add("--data-dir", "data_dir", help="folder with the benchmark data (default: $PROBGEN_DATA_DIR)")
    add("--binarize", "binarize", action="store_true", help="threshold grey levels at 0.5 (default)")
    add("--no-binarize", "binarize", action="store_false", help="keep grey levels")
    add("--continuous", "continuous", action="store_true", help="dequantize grey levels")
    add("--download", "download", action="store_true", help="allow downloading MNIST")
    add("--seed", "seed", type=int, help="random seed (default: 0)")
    add("--device", "device", help="cpu or cuda (default: cpu)")
    add("--quiet", "quiet", action="store_true", help="no progress bars")
    add("--epochs", "epochs", type=int, help=f"passes over the data (default: {d['epochs']})")
    add("--batch-size", "batch_size", type=int, help=f"(default: {d['batch_size']})")
    add("--lr", "lr", type=float, help=f"Adam learning rate (default: {d['lr']})")
    add("--patience", "patience", type=int, help=f"early-stopping patience (default: {d['patience']})")
    add("--resume", "resume", action="store_true", help="continue from OUT/<kind>.last.pt")
    add("--clip-norm", "clip_norm", type=float, help="clip gradients to this norm")
    add("--elbo", "elbo", help="objective (default: detected; enum for enumerated sites)")
    add("--labels", "labels", action="store_true", help="pass the data's labels to the story as y")
    add("--num-samples", "num_samples", type=int,
        help=f"importance samples for the test log-likelihood printed at the end, 0: skip "
             f"(default: {d['num_samples']})")


def stray_story_flags(args) -> list[str]:
    """Story-only flags given without ``--story`` (they were put before a MODEL name)."""
    return ["--" + k[len(_PREFIX):].replace("_", "-") for k in vars(args) if k.startswith(_PREFIX)]


def parse_story_args(items) -> dict:
    """``["z_dim=4", "hidden=[64,32]", "name=t"]`` → ``{"z_dim": 4, "hidden": [64, 32], "name": "t"}``.

    Values are Python literals where they parse as one (numbers, lists, True/None), else strings.
    """
    out = {}
    for item in items or []:
        key, sep, text = str(item).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise CLIError(f"--story-args: expected KEY=VALUE, got {item!r}")
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

    path = Path(path)
    payload = load_checkpoint(path)
    source = (payload.get("extra") or {}).get("story_source")
    if story is None and source is None:
        return common.load_model(path, device=device)  # a built-in model: no code involved
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


def run_story_train(args) -> int:
    """``probgen train --story FILE.py:Class``: build the story, fit it, save ``OUT/<kind>.pt``."""
    import torch

    if getattr(args, "model", None):
        raise CLIError(f"--story trains your own story: leave out the model name {args.model!r}")
    opts = dict(STORY_DEFAULTS)
    opts.update({k[len(_PREFIX):]: v for k, v in vars(args).items() if k.startswith(_PREFIX)})
    ns = argparse.Namespace(**opts, out=args.out)
    if ns.epochs < 0 or ns.num_samples < 0:
        raise CLIError("--epochs and --num-samples must be >= 0")
    cls = load_story_class(args.story)
    kwargs = parse_story_args(args.story_args)
    common.seed_everything(ns.seed)
    ds = common.load_dataset(ns, need_labels=ns.labels)
    params = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in kwargs if k not in params and not takes_any]
    if unknown:
        known = [n for n in params if n != "self"]
        raise CLIError(f"--story-args: {cls.__name__} takes no argument {unknown[0]!r} "
                       f"(it takes: {', '.join(known) or 'nothing'})")
    if "x_dim" in params and "x_dim" not in kwargs:
        kwargs["x_dim"] = ds.x_dim  # filled from the data
    if "x_shape" in params and "x_shape" not in kwargs:
        kwargs["x_shape"] = list(ds.shape)
    try:
        model = cls(**kwargs)
    except TypeError as e:
        raise CLIError(f"{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}): {e}") from None
    out = common.out_dir(ns)
    path = out / f"{model.kind}.pt"
    t0 = time.perf_counter()
    common.fit_story(model, ns, ds, path, labels=ns.labels, elbo=ns.elbo)
    print(f"trained {args.story} on {ds.describe()} in {time.perf_counter() - t0:.1f} s "
          f"({model.n_params()} parameters, elbo={model.checked.elbo if hasattr(model, 'checked') else ns.elbo}) "
          f"-> {path}")
    if ns.num_samples:
        from ..evaluate import summarize

        with torch.no_grad():
            ll = model.log_prob(ds.test, ds.test_labels if ns.labels else None, num_samples=ns.num_samples)
        print(f"test log-likelihood: {summarize(ll)} nats/image (IWAE, K={ns.num_samples})")
    return 0


# -- probgen train mixture-vae ---------------------------------------------------------
def _mvae_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-clusters", type=int, default=10, help="K, components of the prior (default: 10)")
    p.add_argument("--z-dim", type=int, default=10, help="code size (default: 10)")
    p.add_argument("--hidden", default="256", help="hidden widths, comma-separated (default: 256)")
    p.add_argument("--likelihood", choices=("auto", "normal", "bernoulli"), default="auto",
                   help="auto: bernoulli for binary data, else normal")
    p.add_argument("--fixed-weights", action="store_true", help="keep the mixture weights uniform")
    p.add_argument("--warmup-epochs", type=int, default=10,
                   help="epochs before the prior's components are placed on k-means clusters of the codes "
                        "(0: no warm start; default: 10)")
    common.add_fit_args(p, epochs=100, batch_size=128, lr=1e-3)


def _mvae_run(args, ds, path: Path):
    from ..models import MixtureVAE
    from ..models.mixture_vae import matched_accuracy

    likelihood = ("bernoulli" if ds.binarized else "normal") if args.likelihood == "auto" else args.likelihood
    model = MixtureVAE(ds.x_dim, n_clusters=args.n_clusters, z_dim=args.z_dim,
                       hidden=common.parse_int_list(args.hidden, "--hidden"), likelihood=likelihood,
                       x_shape=ds.shape, learn_weights=not args.fixed_weights)
    model = model.to(common.resolve_device(args.device))
    if args.warmup_epochs > 0 and not (args.resume and path.with_name(path.stem + ".last.pt").exists()):
        model.fit(ds.train, val=ds.val, epochs=args.warmup_epochs, batch_size=args.batch_size, lr=args.lr,
                  progress=not args.quiet, patience=None, clip_norm=args.clip_norm)
        model.init_clusters(ds.train, seed=args.seed)
    common.fit_story(model, args, ds, path)
    if ds.test_labels is not None:
        acc = matched_accuracy(model.cluster(ds.test), ds.test_labels)
        print(f"clusters: test accuracy {acc:.3f} (clusters matched to labels by the Hungarian algorithm)")
        model.checkpoint_extra = {"test_cluster_accuracy": acc}
        model.save(path, extra=model.checkpoint_extra)
    return model
