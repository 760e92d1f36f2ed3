"""What every trainer shares: one progress bar, one log line, one early-stopping rule, one
checkpoint/resume path, the random-number state, and the callback hooks.

SVI (:mod:`.svi`), EM (:mod:`.em`) and the adversarial game (:mod:`.adversarial`) all build on
this module, so a progress bar, a resume file or a logging hook behaves the same for every family.

A callback sees each epoch's record (a plain dict: ``epoch``, ``train_loss``, ``val_loss``,
``d_loss``, ``log_likelihood``, ...)::

    class Printer(Callback):
        def on_epoch_end(self, trainer, record):
            print(trainer.algorithm, record)

    vae.fit(x, callbacks=[Printer()])

:class:`Logger` is the logging hook: subclass it and override :meth:`Logger.write` (the
TensorBoard writer plugs in there).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence


from ..io import last_path  # the one place naming run files
from ..runtime import log, progress_bar, rng_state, set_rng_state, set_threads  # noqa: F401 - re-exported

__all__ = [
    "DivergenceError", "TrainResult", "progress_bar", "log", "rng_state", "set_rng_state", "last_path",
    "EarlyStopping", "Checkpointer", "Trainer", "Callback", "Logger", "Callbacks", "TimeLimit",
]


class DivergenceError(RuntimeError):
    """The loss or the parameters became NaN/inf; the last good state was kept."""


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
    :param enabled: ``False`` writes nothing (e.g. a non-zero rank of a distributed job).
    """

    def __init__(self, model: Any, path: str | Path | None, *, enabled: bool = True):
        self.model = model
        self.best = Path(path) if path is not None and enabled else None
        self.last = last_path(self.best) if self.best is not None else None

    def disable(self) -> None:
        """Write nothing from now on (after resuming: a non-zero rank reads the file but never writes)."""
        self.best = self.last = None

    def save_best(self, extra: dict) -> None:
        """Write the model (what ``probgen.load`` reads) with ``extra`` (epoch, history) beside its weights."""
        if self.best is not None:
            self.model.save(self.best, extra=extra)

    def save_final(self, result: Any, *, data: dict | None = None, extra: dict | None = None) -> None:
        """Write the trained model once, at the end of a fit (the best state, restored by the trainer,
        plus what the story's ``end_fit`` added): its training record (epochs, history, seconds),
        ``data`` (the data spec) and ``extra`` (the recipe's numbers) beside the weights."""
        if self.best is None:
            return
        record = {"epoch": len(result.history), "history": result.history, "fit_seconds": result.seconds}
        self.model.save(self.best, data=data, extra={**record, **(extra or {})})

    def save_last(self, trainer: dict, optimizer: dict) -> None:
        """Write the resumable state: the current weights, the ``trainer`` state (epoch, history,
        RNG, ...) and the ``optimizer`` state, in the checkpoint's fields of those names."""
        if self.last is not None:
            self.model.save(self.last, trainer=trainer, optimizer=optimizer)

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


# ---------------------------------------------------------------------------------------------
# Callbacks
# ---------------------------------------------------------------------------------------------
@dataclass
class Trainer:
    """What a callback sees: which algorithm runs, on which model, and the result so far.
    A callback may set ``stop = True`` to end training after this epoch."""

    algorithm: str
    model: Any
    result: TrainResult
    stop: bool = False


class Callback:
    """Hooks every trainer calls; override the ones you need."""

    def on_train_begin(self, trainer: Trainer) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        """After each epoch (EM: iteration), before checkpoints are written; ``record`` may be extended."""

    def on_step_end(self, trainer: Trainer, record: dict) -> None:
        """After each optimizer step (SVI; the GAN's D+G round): ``{"step": n, "loss": ...}`` or the
        game's ``d_loss``, ``g_loss``, ... (EM has no steps below its iterations)."""

    def on_train_end(self, trainer: Trainer) -> None:
        pass


class Logger(Callback):
    """The logging hook: receives every epoch's record. Override :meth:`write` (e.g. TensorBoard
    scalars), or pass ``write=fn(algorithm, record)``; by default one line per epoch via :func:`log`."""

    def __init__(self, write: Callable[[str, dict], None] | None = None):
        self._write = write

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        self.write(trainer.algorithm, record)

    def on_step_end(self, trainer: Trainer, record: dict) -> None:
        self.write_step(trainer.algorithm, record)

    def write_step(self, algorithm: str, record: dict) -> None:
        """Each step's record (default: nothing; a line per step would drown the epoch lines)."""

    def write(self, algorithm: str, record: dict) -> None:
        if self._write is not None:
            self._write(algorithm, record)
            return
        values = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items())
        log(f"{algorithm}: {values}")


class Callbacks:
    """Several callbacks called in order, bound to one :class:`Trainer`; with ``log_dir``, a
    :class:`probgen.infer.tensorboard.TensorBoardLogger` (with ``hparams``) joins them."""

    def __init__(self, callbacks: Sequence[Callback] | None, trainer: Trainer, *,
                 log_dir: str | Path | None = None, hparams: dict | None = None):
        self.callbacks = list(callbacks or ())
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise ValueError(f"callbacks: {cb!r} is not a probgen.infer.Callback")
        if log_dir is not None:
            from .tensorboard import TensorBoardLogger

            self.callbacks.append(TensorBoardLogger(log_dir, hparams))
        self.trainer = trainer

    def begin(self) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(self.trainer)

    def epoch_end(self, record: dict) -> bool:
        """Call every callback; return whether one of them asked to stop."""
        for cb in self.callbacks:
            cb.on_epoch_end(self.trainer, record)
        return self.trainer.stop

    def step_end(self, record: dict) -> None:
        """Call every callback's ``on_step_end`` (callers build ``record`` only ``if hooks.callbacks``)."""
        for cb in self.callbacks:
            cb.on_step_end(self.trainer, record)

    def end(self) -> None:
        for cb in self.callbacks:
            cb.on_train_end(self.trainer)


class TimeLimit(Callback):
    """Stop training at the end of the first epoch that finishes after ``minutes`` of wall time
    (the best state so far is kept as usual)."""

    def __init__(self, minutes: float):
        if not minutes > 0:
            raise ValueError(f"minutes must be > 0, got {minutes}")
        self.seconds = 60.0 * float(minutes)
        self.start: float | None = None

    def on_train_begin(self, trainer: Trainer) -> None:
        import time

        self.start = time.perf_counter()

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        import time

        if self.start is not None and time.perf_counter() - self.start >= self.seconds:
            trainer.stop = True
