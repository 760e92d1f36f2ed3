"""probgen: deep generative models written as probabilistic programs (Pyro).

Families: the Gaussian mixture (enumerated discrete site), the VAE and its
relatives, autoregressive pixel models, GANs, and the sentence VAE.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "Story", "load_data", "log_likelihood", "fit", "load"]


def __getattr__(name: str):
    # lazy: `import probgen` must not pull in torch/pyro for `probgen --help`
    if name == "Story":
        from .story import Story
        return Story
    if name == "load_data":
        from .data import load
        return load
    if name == "log_likelihood":
        return log_likelihood
    if name == "load":
        from .models import load
        return load
    if name == "fit":
        return fit
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
