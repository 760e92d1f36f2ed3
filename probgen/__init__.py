"""probgen: deep generative models written as probabilistic programs (Pyro).

Families: the Gaussian mixture (enumerated discrete site), the VAE and its
relatives, autoregressive pixel models, GANs, and the sentence VAE.
"""
from __future__ import annotations

from ._version import __version__

__all__ = ["__version__", "Story", "as_story", "load_data", "log_likelihood", "fit", "load", "score", "sample",
           "compare", "recipes"]


#: lazy names: ``import probgen`` must not pull in torch/pyro for ``probgen --help``
_LAZY = {"Story": (".story", "Story"), "as_story": (".adapt", "as_story"), "load_data": (".data", "load"),
         "recipes": (".recipes", None)}


def load(path, *, story=None, device: str = "cpu"):
    """Load any probgen checkpoint (runs no code from the file): :meth:`probgen.Story.load` with every
    family registered.

    :param story: for a checkpoint of your own program (a plain Pyro model/guide pair trained with
        ``probgen.fit`` or ``probgen train --story``): its class (rebuilt from the recorded
        constructor arguments), an instance, or the ``(model, guide)`` pair.
    :param device: where to put the model.
    """
    from . import adapt  # noqa: F401 - registers the wrapper of a user's program
    from .models import _import_all
    from .story import Story

    _import_all()
    return Story.load(path, device=device, story=story)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        module = importlib.import_module(module, __name__)
        return module if attr is None else getattr(module, attr)
    raise AttributeError(f"module 'probgen' has no attribute {name!r}")


def log_likelihood(story, x, *, y=None, num_samples: int = 1000, refine: int = 0, estimator: str | None = None):
    """Per-example log p(x) in nats for any story: exact where the model has it, else the
    importance-weighted estimate with ``num_samples`` codes per example (the story's own
    ``log_prob``, which also sums enumerated model sites exactly in each weight).

    :param story: a trained :class:`probgen.Story`, or any Pyro program :func:`probgen.as_story`
        accepts (an object with ``model``/``guide``, a ``(model, guide)`` pair): observed and
        latent sites are found by tracing, enumerated discrete sites are summed exactly.
    :param x: data ``[n, ...]``; ``y``: labels for conditional stories.
    :param num_samples: K importance samples per example.
    :param refine: fit the proposal to each example for this many steps first, started from the guide
        (:func:`probgen.infer.refit.refine_proposal`): a tighter estimate of the same p(x) (at K = 1000 ~7× the time).
    :param estimator: ``"iwae"``: the importance-weighted estimate with the guide even for a story whose
        log p(x) is exact (PPCA): the check of one against the other. Default: as the story declares.
    """
    from .evaluate import story_log_prob

    return story_log_prob(_story_of(story), x, y, num_samples=num_samples, estimator=estimator,
                          **({"refine": refine} if refine else {}))


def score(model, x, **options):
    """The test log-likelihood of any story on ``x`` (:func:`probgen.evaluate.score`, the one scoring policy:
    the number ``compare``, the tour and the experiments report): a :class:`probgen.evaluate.Score`.
    ``estimator="iwae"`` gives the IWAE estimate of a story that also has an exact one (PPCA)."""
    from .evaluate import score as score_story

    return score_story(_story_of(model), x, **options)


def _story_of(program):
    """The Story of a user's program: one wrapper per object, so its parameters keep their
    param-store names across ``fit``, ``log_likelihood`` and ``sample`` calls."""
    from .adapt import as_story
    from .story import Story

    if isinstance(program, Story):
        return program
    if isinstance(program, (tuple, list)):  # a (model, guide) pair: remembered by its functions
        key = tuple(program)
        if key not in _PAIR_STORIES:
            _PAIR_STORIES[key] = as_story(key)
        return _PAIR_STORIES[key]
    if isinstance(program, type):  # its instances are programs (each with its own parameters), not the class
        raise TypeError(f"{program.__name__} is a class: pass an instance, {program.__name__}(...), or "
                        f"probgen.as_story({program.__name__}, **arguments)")
    cached = getattr(program, "__dict__", {}).get("_probgen_story")
    if cached is not None:
        return cached
    wrapper = as_story(program)
    object.__setattr__(program, "_probgen_story", wrapper)
    return wrapper


_PAIR_STORIES: dict = {}


def fit(story, data, **train_options):
    """Train any story on data (a tensor or a :class:`probgen.data.Dataset`).

    :param story: a :class:`probgen.Story` instance, or any Pyro program :func:`probgen.as_story`
        accepts (an ``nn.Module``/``PyroModule``/object with ``model`` and ``guide``, a
        ``(model, guide)`` pair): then the returned story wraps it (save, score, sample it).
    :param data: training tensor ``[n, ...]`` or a Dataset (its ``val`` split is used
        for early stopping, its labels are passed as ``y`` to a story whose model takes them).
    :param train_options: see :meth:`probgen.story.Story.fit`.
    :return: the trained story.
    """
    from .data import Dataset

    story = _story_of(story)
    if isinstance(data, Dataset):
        train_options.setdefault("val", data.val)
        # labels go to a story that declares it needs them (traits.labels: a CVAE, a program with model(x, y))
        if data.train_labels is not None and story.traits.labels:
            train_options.setdefault("y", data.train_labels)
            train_options.setdefault("val_y", data.val_labels)
        data = data.train
    return story.fit(data, **train_options)


def sample(model, n: int = 64, **options):
    """``n`` samples of a model or of a checkpoint path (``label``, ``mean``, ``temperature`` where the
    model takes them): a tensor ``[n, *x_shape]`` in [0, 1], or a list of strings for text models."""
    import torch

    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        model = load(model)
    else:
        model = _story_of(model)
    with torch.no_grad():
        return model.sample(n, **options)


def compare(models="gmm,vae", *, data: str = "digits", out: str = "runs/compare", num_samples: int = 1000,
             epochs: int | None = None, seed: int = 0, quiet: bool = True, **data_options):
    """Train (or load, ``from_dir=``) several families and score them on the same test set, as
    ``probgen compare`` does: returns :class:`probgen.recipes.compare.CompareResult` (``.rows``, ``.table()``).

    :param data_options: more :class:`probgen.recipes.config.DataConfig` fields (``binarize``, ``data_dir``...)
        and ``from_dir`` / ``no_diagnostics``.
    """
    from .recipes.compare import CompareConfig, compare
    from .recipes.config import DataConfig, RunConfig

    extra = {k: data_options.pop(k) for k in ("from_dir", "no_diagnostics") if k in data_options}
    cfg = CompareConfig(models=models, num_samples=num_samples, epochs=epochs,
                        data=DataConfig(data=data, seed=seed, **data_options),
                        run=RunConfig(out=str(out), seed=seed, quiet=quiet), **extra)
    return compare(cfg)
