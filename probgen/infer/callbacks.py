"""What every trainer shares: one early-stopping rule, one checkpoint/resume path (the one writer
of a model file during and after training), the stop on divergence, and the dispatcher of the hooks.

SVI (:mod:`.svi`), EM (:mod:`.em`) and the adversarial game (:mod:`.adversarial`) all build on
this module, so a resume file or a logging hook behaves the same for every family. The hooks
themselves (:class:`Callback`, :class:`Logger`, :class:`Trainer`, :class:`TrainResult`,
:class:`TimeLimit`) live in :mod:`.hooks`; the progress bar, the log line and the random-number
state in :mod:`probgen.runtime`. Both are re-exported here for older imports.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import torch

from ..io import last_path  # the one place naming run files
from ..runtime import log, progress_bar, rng_state, set_rng_state, set_threads  # noqa: F401 - re-exported
from .hooks import Callback, Logger, TimeLimit, Trainer, TrainResult  # noqa: F401 - re-exported
from .tensorboard import TensorBoardLogger

__all__ = [
    "DivergenceError", "TrainResult", "progress_bar", "log", "rng_state", "set_rng_state", "last_path",
    "EarlyStopping", "Checkpointer", "Trainer", "Callback", "Logger", "Callbacks", "TimeLimit", "batch_order",
]


class DivergenceError(RuntimeError):
    """The loss or the parameters became NaN/inf; the last good state was kept."""


# ---------------------------------------------------------------------------------------------
# Early stopping and checkpoints
# ---------------------------------------------------------------------------------------------
class EarlyStopping:
    """The one early-stopping rule: stop after ``patience`` epochs without a better (lower) score.

    :param patience: epochs without improvement before stopping (``None``: never stop).
    """

    def __init__(self, patience: int | None = None):
        self.patience = patience
        self.best_val, self.best_epoch, self.bad_epochs = math.inf, -1, 0

    def update(self, epoch: int, score: float) -> bool:
        """Record ``score`` of ``epoch`` (0-based); return whether it is the best so far."""
        if score < self.best_val:
            self.best_val, self.best_epoch, self.bad_epochs = score, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_epochs >= self.patience

    def state(self) -> dict:
        """Plain values for the resume file."""
        return {"best_val": self.best_val, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state(self, state: dict) -> None:
        self.best_val, self.best_epoch, self.bad_epochs = state["best_val"], state["best_epoch"], state["bad_epochs"]


class Checkpointer:
    """The one checkpoint/resume path: the model at ``path`` and the resumable training state
    (optimizer, RNG, history, ...) beside it at :func:`last_path` ``(path)``.

    Both files go through the model's own ``save`` / ``load`` (:class:`probgen.story.Story`, which
    writes and reads with :mod:`probgen.io`: atomic, ``weights_only``), so a checkpoint written
    during training is an ordinary model file.

    :param model: a :class:`probgen.story.Story`.
    :param path: file for the model (``None``: no files at all).
    :param data: the data spec (``Dataset.spec``) every file written here records beside the weights.
    :param enabled: ``False`` writes nothing (e.g. a non-zero rank of a distributed job).
    """

    def __init__(self, model: Any, path: str | Path | None, *, data: dict | None = None, enabled: bool = True):
        self.model, self.data = model, data
        self.best = Path(path) if path is not None and enabled else None
        self.last = last_path(self.best) if self.best is not None else None

    def disable(self) -> None:
        """Write nothing from now on (after resuming: a non-zero rank reads the file but never writes)."""
        self.best = self.last = None

    def save_best(self, extra: dict) -> None:
        """Write the model (what ``probgen.load`` reads) with ``extra`` (epoch, history) beside its weights."""
        if self.best is not None:
            self.model.save(self.best, data=self.data, extra=extra)

    def save_final(self, result: TrainResult, *, data: dict | None = None, extra: dict | None = None) -> None:
        """Write the trained model once, at the end of a fit (the best state, restored by the trainer,
        plus what the story's ``end_fit`` added): its training record (epochs, history, seconds),
        ``data`` (the data spec; default: this checkpointer's) and ``extra`` (the recipe's numbers)
        beside the weights.

        :param result: the trainer's :class:`TrainResult`.
        """
        if self.best is None:
            return
        record = {"epoch": len(result.history), "history": result.history, "fit_seconds": result.seconds}
        self.model.save(self.best, data=self.data if data is None else data, extra={**record, **(extra or {})})

    def save_last(self, trainer: dict, optimizer: dict) -> None:
        """Write the resumable state: the current weights, the ``trainer`` state (epoch, history,
        RNG, ...) and the ``optimizer`` state, in the checkpoint's fields of those names."""
        if self.last is not None:
            self.model.save(self.last, data=self.data, trainer=trainer, optimizer=optimizer)

    def resume(self) -> tuple[dict, dict] | None:
        """Load the resume file into the model and return ``(trainer, optimizer)`` states
        (``None``: no file). Resume files of the old format (training state in ``extra``) are
        upgraded by :func:`probgen.io.load_checkpoint`.

        :raises ValueError: the file is unreadable, holds another kind of model, or does not fit
            this model's settings; the message names the file and says how to start afresh.
        """
        if self.last is None or not self.last.is_file():
            return None
        prefix = f"{self.last}: "
        try:
            saved = type(self.model).load(self.last)  # probgen.io underneath: runs no code from the file
        except ValueError as e:
            msg = str(e)
            while msg.startswith(prefix + prefix):  # Story.load and io both name the file
                msg = msg[len(prefix):]
            if "holds a" in msg and "model, not" in msg:
                msg = f"{prefix}resume file {msg[msg.index('holds a'):]}"
            elif "does not fit" in msg:  # the file's settings do not match its own weights
                raise self.cannot_resume(ValueError(msg.removeprefix(prefix))) from None
            raise ValueError(msg if msg.startswith(prefix) else prefix + msg) from None
        try:
            self.model.load_state_dict(saved.state_dict())
            trainer, optimizer = saved.checkpoint_trainer, saved.checkpoint_optimizer
            if not trainer or "epoch" not in trainer:
                raise KeyError("epoch")
            if optimizer is None:
                raise KeyError("optimizer")
            return trainer, optimizer
        except (KeyError, RuntimeError, ValueError) as e:
            raise self.cannot_resume(e) from None

    def cannot_resume(self, error: Exception) -> ValueError:
        """The one message for a resume file that does not fit this run."""
        text = str(error).strip()
        detail = next((ln.strip() for ln in text.splitlines() if "size mismatch" in ln),
                      text.splitlines()[0] if text else type(error).__name__)
        if isinstance(error, KeyError):
            detail = f"no {error.args[0]!r} in its training state"
        return ValueError(f"{self.last}: cannot resume from it ({detail}); "
                          "use the settings of that run, or delete the file to start afresh")


def batch_order(state: torch.Tensor | None) -> torch.Generator:
    """The CPU generator that shuffles a trainer's minibatches: a resume file's ``state`` (resumed ==
    uninterrupted, bit for bit), else seeded from one draw of torch's global generator (so the
    global seed fixes the order).

    :param state: ``Generator.get_state()`` saved in the resume file, or ``None``.
    """
    generator = torch.Generator()
    if state is not None:
        generator.set_state(state)
    else:
        generator.manual_seed(int(torch.randint(0, 2**31 - 1, (1,))))
    return generator


# ---------------------------------------------------------------------------------------------
# The dispatcher: the story's own hooks first, then the callbacks
# ---------------------------------------------------------------------------------------------
class Callbacks:
    """The one hook system a trainer calls: after each training step the story's ``step_end()`` and
    every callback's ``on_step_end``; after each epoch (model in eval mode) the story's
    ``epoch_end(record)`` (it may add numbers to the record) and every callback's ``on_epoch_end``.
    With ``log_dir``, a :class:`probgen.infer.tensorboard.TensorBoardLogger` (with ``hparams``) joins them.

    :param callbacks: :class:`Callback` objects, called in order.
    :param trainer: what they see (algorithm, story, result so far).
    :param log_dir: a TensorBoard folder (``None``: none).
    :param hparams: the trainer's options, logged as text.
    :raises ValueError: an entry of ``callbacks`` is not a :class:`Callback`.
    """

    def __init__(self, callbacks: Sequence[Callback] | None, trainer: Trainer, *,
                 log_dir: str | Path | None = None, hparams: dict | None = None):
        self.callbacks = list(callbacks or ())
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise ValueError(f"callbacks: {cb!r} is not a probgen.infer.Callback")
        if log_dir is not None:
            self.callbacks.append(TensorBoardLogger(log_dir, hparams))
        self.trainer = trainer

    def begin(self) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(self.trainer)

    def step_end(self, record: dict | None) -> None:
        """One training step done: the story's ``step_end()``, then each ``on_step_end(record)``
        (``record`` ``None``: a step without numbers of its own, EM's M-step: the story's hook only)."""
        self.trainer.model.step_end()
        if record is not None:
            for cb in self.callbacks:
                cb.on_step_end(self.trainer, record)

    def epoch_end(self, record: dict) -> bool:
        """One epoch done (model in eval mode): the story's ``epoch_end(record)``, then each
        ``on_epoch_end``; return whether a callback asked to stop."""
        self.trainer.model.epoch_end(record)
        for cb in self.callbacks:
            cb.on_epoch_end(self.trainer, record)
        return self.trainer.stop

    def end(self) -> None:
        for cb in self.callbacks:
            cb.on_train_end(self.trainer)
