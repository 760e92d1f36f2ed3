"""``Story.fit`` lands here: the story goes to the trainer it declares (``story.traits.trainers``).

One entry point for every family and every user story::

    train(story, x, y=None, val=None, val_y=None, method=None, checkpoint=None, data=None, extra=None, **options)

1. ``method`` (default ``story.traits.trainer``) must be one the story declares and one of :data:`TRAINERS`;
2. the data go through ``story.prepare`` and onto the story's device;
3. ``story.begin_fit`` sizes and initialises the story and takes the options only it understands;
4. the trainer runs (:func:`.svi.fit_svi`, :func:`.em.fit_em`, :func:`.adversarial.fit_adversarial`);
5. ``story.end_fit`` fits what depends on the trained networks;
6. with ``checkpoint``, the final model file is written once, by the trainer's
   :class:`.callbacks.Checkpointer`, with ``data`` (the data spec) and ``extra`` (a dict, or a
   function of the trained story returning one: the recipe's metrics) -- nobody saves it again.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

__all__ = ["TRAINERS", "train", "register_trainer"]


def _svi(story, x, **options):
    from .svi import fit_story

    return fit_story(story, x, **options)


def _em(story, x, *, y=None, val=None, val_y=None, **options):
    from .em import fit_em

    return fit_em(story, x, **options)


def _adversarial(story, x, *, y=None, val=None, val_y=None, **options):
    from .adversarial import fit_adversarial

    return fit_adversarial(story, x, **options)


#: trainer name (``Traits.trainers``) -> ``fn(story, x, *, y, val, val_y, **options) -> TrainResult``
TRAINERS: dict[str, Callable] = {"svi": _svi, "em": _em, "adversarial": _adversarial}


def register_trainer(name: str, fn: Callable) -> None:
    """Add a trainer a story can declare (``Traits(trainers=(name,))``)."""
    TRAINERS[name] = fn


def train(story, x, *, y=None, val=None, val_y=None, method: str | None = None, checkpoint=None,
          data: dict | None = None, extra: dict | Callable[[Any], dict] | None = None, **options: Any):
    """Fit ``story`` with the trainer it declares (see the module docstring).

    :raises ValueError: ``method`` is not one of the story's trainers.
    """
    traits = story.traits
    method = traits.trainer if method is None else method
    if method not in traits.trainers or method not in TRAINERS:
        raise ValueError(f"{type(story).__name__} is fitted by {' or '.join(traits.trainers)}, not {method!r}")
    x, y = story.prepare(x, y)
    if val is not None:
        val, val_y = story.prepare(val, val_y)
    device = story.device
    x = x.to(device)
    y = None if y is None else torch.as_tensor(y, device=device)  # labels beside the data, moved once
    val = None if val is None else val.to(device)
    val_y = None if val_y is None else torch.as_tensor(val_y, device=device)
    story.begin_fit(x, y, method=method, options=options)
    if method != "em":
        options["checkpoint"] = checkpoint
    if checkpoint is not None and data is not None:
        story.checkpoint_data = data  # the best/last files the trainer writes record it as well
    result = TRAINERS[method](story, x, y=y, val=val, val_y=val_y, **options)
    story.train_result = result
    story.end_fit(x, y, val=val, val_y=val_y)
    dist = options.get("distributed")
    if checkpoint is not None and (dist is None or dist.is_main):  # rank 0 alone writes
        from .callbacks import Checkpointer

        Checkpointer(story, checkpoint).save_final(result, data=data, extra=extra(story) if callable(extra) else extra)
    return result
