"""``Story.fit`` lands here: the story goes to the trainer it declares (``story.traits.trainers``).

One entry point for every family and every user story::

    train(story, x, y=None, val=None, val_y=None, method=None, checkpoint=None, data=None, extra=None, **options)

1. ``method`` (default ``story.traits.trainer``) must be one the story declares and one of :data:`TRAINERS`;
2. the data go through ``story.prepare`` and onto the story's device;
3. ``story.begin_fit`` sizes and initialises the story and takes the options only it understands;
4. the trainer runs (:func:`.svi.fit_story` → :func:`.svi.fit_svi`, :func:`.em.fit_em`,
   :func:`.adversarial.fit_adversarial`), calling the story's ``step_end``/``epoch_end`` hooks and the
   callbacks; with ``checkpoint`` it keeps the best/last files of a resumable run (recording ``data``);
5. ``story.end_fit`` fits what depends on the trained networks;
6. with ``checkpoint``, the final model file is written once, by :meth:`.callbacks.Checkpointer.save_final`,
   with ``data`` (the data spec) and ``extra`` (a dict, or a function of the trained story returning
   one: the recipe's metrics) -- nobody saves it again. A distributed job's rank 0 alone writes it;
   a fit that diverged (:class:`.callbacks.DivergenceError`) writes nothing, the best file stays.

A trainer is ``fn(story, x, *, y, val, val_y, checkpoint, data, **options) -> TrainResult`` on prepared
data; :func:`register_trainer` adds one a story can declare.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import torch

from .adversarial import fit_adversarial
from .callbacks import Checkpointer
from .em import fit_em
from .hooks import TrainResult
from .svi import fit_story

__all__ = ["TRAINERS", "train", "register_trainer"]

#: trainer name (``Traits.trainers``) -> ``fn(story, x, *, y, val, val_y, checkpoint, data, **options) -> TrainResult``
TRAINERS: dict[str, Callable[..., TrainResult]] = {"svi": fit_story, "em": fit_em, "adversarial": fit_adversarial}


def register_trainer(name: str, fn: Callable[..., TrainResult]) -> None:
    """Add a trainer a story can declare (``Traits(trainers=(name,))``).

    :param name: the trainer's name.
    :param fn: ``fn(story, x, *, y, val, val_y, checkpoint, data, **options) -> TrainResult`` on prepared
        data; it restores the state it wants kept and writes no final file (:func:`train` does).
    """
    TRAINERS[name] = fn


def train(story, x, *, y=None, val=None, val_y=None, method: str | None = None, checkpoint=None,
          data: dict | None = None, extra: dict | Callable[[Any], dict] | None = None,
          **options: Any) -> TrainResult:
    """Fit ``story`` with the trainer it declares (the steps in the module docstring).

    :param story: a :class:`probgen.story.Story`.
    :param x: training data; ``y``: labels (conditional stories); ``val``, ``val_y``: validation data.
    :param method: a trainer name from ``story.traits.trainers`` (default: the first).
    :param checkpoint: the model file to write (``None``: none).
    :param data: the data spec every file records.
    :param extra: numbers for the final file, or a function of the trained story returning them.
    :param options: the trainer's options (``fit_svi``'s :class:`.svi.SVIConfig` fields, ``fit_em``'s,
        ``fit_adversarial``'s; ``callbacks``, ``distributed``, ...).
    :return: the trainer's :class:`TrainResult`.
    :raises ValueError: ``method`` is not one of the story's trainers, or a bad option.
    """
    traits = story.traits
    method = traits.trainer if method is None else method
    if method not in traits.trainers or method not in TRAINERS:
        raise ValueError(f"{type(story).__name__} is fitted by {' or '.join(traits.trainers)}, not {method!r}")
    x, y = _on_device(story, *story.prepare(x, y))
    if val is not None:
        val, val_y = _on_device(story, *story.prepare(val, val_y))
    story.begin_fit(x, y, method=method, options=options, val=val, val_y=val_y)
    _check_options(method, options, traits.trainers)
    result = TRAINERS[method](story, x, y=y, val=val, val_y=val_y, checkpoint=checkpoint, data=data, **options)
    story.train_result = result
    story.end_fit(x, y, val=val, val_y=val_y)
    dist = options.get("distributed")
    if checkpoint is not None and (dist is None or dist.is_main):  # rank 0 alone writes
        Checkpointer(story, checkpoint, data=data).save_final(result, extra=extra(story) if callable(extra) else extra)
    return result


def _check_options(method: str, options: dict, others=()) -> None:
    """A misspelt or foreign option is one line naming it, not a ``TypeError`` from deep inside
    (a trainer taking ``**options`` checks its own, as ``fit_svi`` does); an option of another trainer
    the story declares (``others``): the line names them, the option may be theirs."""
    params = inspect.signature(TRAINERS[method]).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(options) - set(params))
    if unknown:
        also = [o for o in others if o != method and o in TRAINERS]
        hint = f" (this story also trains with {' or '.join(f'method={o!r}' for o in also)})" if also else ""
        raise ValueError(f"unknown training option(s) for the {method} trainer: {', '.join(unknown)}{hint}")


def _on_device(story, x: torch.Tensor, y) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Data and labels on the story's device, moved once before the trainer's loop."""
    device = story.device
    return x.to(device), None if y is None else torch.as_tensor(y, device=device)
