"""The one hook system of every trainer: what a callback sees and the callbacks themselves.

A trainer (SVI, EM, the adversarial game) binds a :class:`Trainer` (its name, the story, the
:class:`TrainResult` so far) and calls, in this order: :meth:`Callback.on_train_begin`, after each
optimizer step :meth:`Callback.on_step_end`, after each epoch :meth:`Callback.on_epoch_end` (the
story's own ``epoch_end`` hook has run just before, so the record holds what the story added), and
:meth:`Callback.on_train_end`::

    class Printer(Callback):
        def on_epoch_end(self, trainer, record):
            print(trainer.algorithm, record)

    vae.fit(x, callbacks=[Printer()])

:class:`Logger` is the logging hook (the TensorBoard writer, :mod:`.tensorboard`, is one);
:class:`TimeLimit` stops a fit after some minutes of wall time. This module imports nothing of
probgen but :mod:`probgen.runtime`, so any module of :mod:`probgen.infer` may build on it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..runtime import log

__all__ = ["TrainResult", "Trainer", "Callback", "Logger", "TimeLimit"]


@dataclass
class TrainResult:
    """What happened during training (any trainer).

    ``history`` holds one record (dict) per epoch (SVI, GAN) or iteration (EM); ``best_val`` is the
    best validation loss (SVI; lower is better), ``steps`` the optimizer steps taken (GAN: generator
    steps), ``warnings`` lines logged during training (e.g. possible mode collapse), ``converged``
    whether an iterative method met its tolerance (EM; ``None`` elsewhere).
    """

    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val: float = math.inf
    seconds: float = 0.0
    stopped_early: bool = False
    steps: int = 0
    warnings: list[str] = field(default_factory=list)
    converged: bool | None = None
    #: how the SVI steps ran: ``"eager"``, or the captured step's backend (``"trace"``,
    #: ``"cudagraph"``, ``"inductor"``), and the wall seconds its capture took (paid once per shape)
    step: str = "eager"
    capture_seconds: float = 0.0


@dataclass
class Trainer:
    """What a callback sees: which algorithm runs (``"svi"``, ``"em"``, ``"adversarial"``), on which
    story (``model``: the GAN for the game), and the result so far. A callback may set ``stop = True``
    to end training after this epoch."""

    algorithm: str
    model: Any
    result: TrainResult
    stop: bool = False


class Callback:
    """Hooks every trainer calls; override the ones you need."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Before the first epoch (after resuming)."""

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        """After each epoch (EM: iteration), model in eval mode, before checkpoints are written;
        ``record`` may be extended."""

    def on_step_end(self, trainer: Trainer, record: dict) -> None:
        """After each optimizer step (SVI; the GAN's D+G round): ``{"step": n, "loss": ...}`` or the
        game's ``d_loss``, ``g_loss``, ... (EM has no steps below its iterations)."""

    def on_train_end(self, trainer: Trainer) -> None:
        """After the last epoch, the best state restored."""


class Logger(Callback):
    """The logging hook: receives every epoch's record. Override :meth:`write` (e.g. TensorBoard
    scalars), or pass ``write=fn(algorithm, record)``; by default one line per epoch via :func:`log`.

    :param write: called as ``write(algorithm, record)`` instead of the default line.
    """

    def __init__(self, write: Callable[[str, dict], None] | None = None):
        self._write = write

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        self.write(trainer.algorithm, record)

    def on_step_end(self, trainer: Trainer, record: dict) -> None:
        self.write_step(trainer.algorithm, record)

    def write_step(self, algorithm: str, record: dict) -> None:
        """Each step's record (default: nothing; a line per step would drown the epoch lines)."""

    def write(self, algorithm: str, record: dict) -> None:
        """Each epoch's record: one log line unless ``write=`` was given."""
        if self._write is not None:
            self._write(algorithm, record)
            return
        values = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items())
        log(f"{algorithm}: {values}")


class TimeLimit(Callback):
    """Stop training at the end of the first epoch that finishes after ``minutes`` of wall time
    (the best state so far is kept as usual).

    :param minutes: wall time allowed, > 0.
    """

    def __init__(self, minutes: float):
        if not minutes > 0:
            raise ValueError(f"minutes must be > 0, got {minutes}")
        self.seconds = 60.0 * float(minutes)
        self.start: float | None = None

    def on_train_begin(self, trainer: Trainer) -> None:
        self.start = time.perf_counter()

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        if self.start is not None and time.perf_counter() - self.start >= self.seconds:
            trainer.stop = True
