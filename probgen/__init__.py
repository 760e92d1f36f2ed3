"""probgen: deep generative models written as probabilistic programs (Pyro).

Families: the Gaussian mixture (enumerated discrete site), the VAE and its
relatives, autoregressive pixel models, GANs, and the sentence VAE.
"""
from __future__ import annotations

from ._version import __version__

__all__ = ["__version__", "Story", "load_data", "log_likelihood", "fit", "load", "score", "sample", "compare",
           "recipes"]


#: lazy names: ``import probgen`` must not pull in torch/pyro for ``probgen --help``
_LAZY = {"Story": (".story", "Story"), "load_data": (".data", "load"), "load": (".models", "load"),
         "score": (".evaluate", "score"), "recipes": (".recipes", None)}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        module = importlib.import_module(module, __name__)
        return module if attr is None else getattr(module, attr)
    raise AttributeError(f"module 'probgen' has no attribute {name!r}")


def log_likelihood(story, x, *, y=None, num_samples: int = 1000):
    """Per-example log p(x) in nats for any story: exact where the model has it, else the
    importance-weighted estimate with ``num_samples`` codes per example (the story's own
    ``log_prob``, which also sums enumerated model sites exactly in each weight).

    :param story: a trained :class:`probgen.Story` (or anything with a model/guide pair).
    :param x: data ``[n, ...]``; ``y``: labels for conditional stories.
    :param num_samples: K importance samples per example.
    """
    from .story import Story

    if isinstance(story, Story):
        return story.log_prob(x, y, num_samples=num_samples)
    from .evaluate import log_likelihood as _iwae

    return _iwae(story, x, y=y, num_samples=num_samples)


def fit(story, data, **train_options):
    """Train any story on data (a tensor or a :class:`probgen.data.Dataset`).

    :param story: a :class:`probgen.Story` instance.
    :param data: training tensor ``[n, ...]`` or a Dataset (its ``val`` split is used
        for early stopping, its labels are passed as ``y``).
    :param train_options: see :meth:`probgen.story.Story.fit`.
    :return: the trained story.
    """
    from .data import Dataset

    if isinstance(data, Dataset):
        train_options.setdefault("val", data.val)
        if data.train_labels is not None:
            train_options.setdefault("y", data.train_labels)
            train_options.setdefault("val_y", data.val_labels)
        data = data.train
    return story.fit(data, **train_options)


def sample(model, n: int = 64, **options):
    """``n`` samples of a model or of a checkpoint path (``label``, ``mean``, ``temperature`` where the
    model takes them): a tensor ``[n, *x_shape]`` in [0, 1], or a list of strings for text models."""
    import torch

    if not hasattr(model, "sample"):
        from .models import load

        model = load(model)
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
