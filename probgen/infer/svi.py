"""The one SVI trainer, readable top to bottom.

It knows no particular model: it takes any :class:`probgen.story.Story` (an ``nn.Module`` with
``model(x, y)`` and ``guide(x, y)``) and gives it minibatches, a progress bar with the running
loss, validation each epoch, early stopping, atomic checkpoints of the best model, resume, and a
clean stop when the loss diverges. Its options are one :class:`SVIConfig`; its hooks are the one
hook system of :mod:`.hooks` (the story's ``step_end``/``epoch_end``, then the callbacks).

:func:`fit_svi` reads as the loop it runs::

    run = _SVIRun(...)                 # objective, optimizer, best state so far
    run.start(run.resume())            # resume file, batch order, distributed, compiled step, hooks
    for epoch in run.epochs():
        loss = run.train_epoch(epoch)  # the SVI steps (story.step_end and on_step_end after each)
        record, score = run.validate(epoch, loss, val, val_y)
        if run.end_epoch(epoch, record, score):  # hooks, early stopping, checkpoints
            break
    return run.finish()                # the best state restored

The objective and the step are in :mod:`.objective` (re-exported here for older imports).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..data import batches
from ..runtime import progress_bar, rng_state, set_rng_state
from .callbacks import Callbacks, Checkpointer, DivergenceError, EarlyStopping, batch_order
from .compiled import CompiledStep, auto_backend, check_compile, compile_step
from .hooks import Callback, Trainer, TrainResult
from .objective import ELBOS, IWAE_ELBO, Objective, SVIStep, make_elbo  # noqa: F401 - re-exported

__all__ = ["SVIConfig", "fit_svi", "fit_story", "ELBOS", "make_elbo", "Objective", "SVIStep", "IWAE_ELBO"]


@dataclass(frozen=True)
class SVIConfig:
    """The options of the SVI trainer, each default written here once: ``fit_svi(story, x, epochs=5)``
    is ``fit_svi(story, x, config=SVIConfig(epochs=5))``.

    :param epochs: passes over the training data (``0`` leaves the model untouched).
    :param batch_size: examples per SVI step.
    :param lr: Adam learning rate (a resumed run may change it; each epoch's record keeps its own).
    :param elbo: the objective, one of :data:`ELBOS`, or ``"auto"``: the story's declared ``elbo``.
    :param num_particles: samples per example for the gradient estimate (``iwae``: k of the bound).
    :param patience: stop after this many epochs without validation improvement (``None``: never).
    :param clip_norm: clip the global gradient norm to this value (``None``: no clipping).
    :param compile: capture the step once and run it under ``torch.compile`` (``True``/``"inductor"``)
        or as a traced graph (``"trace"``), or the whole step as one CUDA graph (``"cudagraph"``, CUDA
        only); a dynamic story trains eagerly after one notice (:mod:`.compiled`). ``None``: the traced
        graph for a story not declaring ``static_graph = False`` on a fit of at least
        ``compiled.AUTO_MIN_STEPS`` (CPU) or ``AUTO_MIN_STEPS_CUDA`` steps, else eager; ``False``: always eager.
    :param resume: continue from the resume file beside the checkpoint (``<stem>.last.pt``) if it exists.
    :param progress: show the progress bar.
    :param log_dir: write TensorBoard logs here (:mod:`.tensorboard`; rank 0 only).
    :raises ValueError: a value out of range (one line naming the option).
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    elbo: str = "auto"
    num_particles: int = 1
    patience: int | None = 10
    clip_norm: float | None = None
    compile: bool | str | None = None
    resume: bool = False
    progress: bool = True
    log_dir: str | Path | None = None

    def __post_init__(self):
        if not _is_int(self.epochs) or self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs!r}")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if not _is_int(self.num_particles) or self.num_particles < 1:
            raise ValueError(f"num_particles must be >= 1, got {self.num_particles!r}")
        if not isinstance(self.lr, (int, float)) or not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.patience is not None and (not _is_int(self.patience) or self.patience < 0):
            raise ValueError(f"patience must be >= 0 (or None: never stop early), got {self.patience!r}")
        if self.clip_norm is not None and (not isinstance(self.clip_norm, (int, float))
                                           or not 0 < self.clip_norm < math.inf):
            raise ValueError(f"clip_norm must be > 0, got {self.clip_norm!r}")
        if self.elbo != "auto" and self.elbo not in ELBOS:
            raise ValueError(f"unknown elbo {self.elbo!r}: use one of {', '.join(ELBOS)}")
        check_compile(self.compile)

    @classmethod
    def of(cls, config: "SVIConfig | None", options: dict[str, Any]) -> "SVIConfig":
        """``config`` (default: all defaults) with ``options`` (field names) replaced.

        :raises ValueError: an option that is not a field (a typo must not surface deep inside).
        """
        unknown = set(options) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        return replace(cls() if config is None else config, **options)


def fit_svi(story: torch.nn.Module, x: torch.Tensor, *, y: torch.Tensor | None = None,
            val: torch.Tensor | None = None, val_y: torch.Tensor | None = None, config: SVIConfig | None = None,
            callbacks: Sequence[Callback] = (), checkpoint: str | Path | None = None, data: dict | None = None,
            distributed: Any = None, **options: Any) -> TrainResult:
    """Train ``story.model`` / ``story.guide`` by stochastic variational inference.

    :param story: a :class:`probgen.story.Story`.
    :param x: training data ``[n, ...]`` (prepared, on the story's device); ``y`` optional labels ``[n]``.
    :param val: validation data for early stopping and best-model selection (``val_y``: its labels).
    :param config: the options (:class:`SVIConfig`); ``options`` (its field names) replace single ones.
    :param callbacks: :class:`probgen.infer.Callback` objects (after the story's own hooks).
    :param checkpoint: file for the best model, written atomically whenever validation improves; the
        resumable state goes beside it as ``<stem>.last.pt`` after every epoch.
    :param data: the data spec both files record (``Dataset.spec``).
    :param distributed: a :class:`probgen.infer.distributed.Distributed` inside a ``torchrun`` job:
        each rank computes the gradient of its shard of every batch, gradients are all-reduced, and
        rank 0 alone shows progress and writes files (``None``: one process).
    :return: history (one record per epoch), best epoch and validation loss, steps, seconds.
    :raises ValueError: an unknown option or a bad value (one line).
    :raises DivergenceError: the loss became NaN/inf; the best state so far is restored, the
        checkpoint file left as it was.
    """
    cfg = SVIConfig.of(config, options)
    _check_labels(x, y, val, val_y)
    run = _SVIRun(story, x, y, cfg, Checkpointer(story, checkpoint, data=data), distributed)
    run.start(run.resume() if cfg.resume else None, callbacks)
    for epoch in run.epochs():
        train_loss = run.train_epoch(epoch)
        record, score = run.validate(epoch, train_loss, val, val_y)
        if run.end_epoch(epoch, record, score):
            run.result.stopped_early = True
            break
    return run.finish()


class _SVIRun:
    """One fit's state; :func:`fit_svi` calls its methods in the order they are written."""

    def __init__(self, story: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None, cfg: SVIConfig,
                 ckpt: Checkpointer, distributed: Any):
        self.story, self.x, self.y, self.cfg, self.ckpt, self.dist = story, x, y, cfg, ckpt, distributed
        self.result = TrainResult()
        self.elbo = _objective_name(story, cfg.elbo)
        plates = story.max_plate_nesting
        # the objective (Pyro's ELBO as a module) and one torch optimizer over its parameters
        svi_elbo = make_elbo(self.elbo, num_particles=cfg.num_particles, max_plate_nesting=plates)
        # validation uses the non-JIT twin: same objective, any batch shape (IWAE: the same k-sample bound)
        self.val_elbo = make_elbo(self.elbo.replace("jit-", "").replace("jit", "trace"),
                                  num_particles=cfg.num_particles if self.elbo == "iwae" else 1,
                                  max_plate_nesting=plates)
        self.step: Any = SVIStep(story, svi_elbo, lr=cfg.lr, clip_norm=cfg.clip_norm)
        self.stopper = EarlyStopping(cfg.patience)
        self.best_state = copy.deepcopy(story.state_dict())
        self.start_epoch = 0
        self.main = distributed is None or distributed.is_main  # rank 0 alone prints and writes
        self.progress = cfg.progress and self.main

    def resume(self) -> torch.Tensor | None:
        """Continue from the resume file, if there is one: weights, best state, early-stopping counters,
        history, optimizer and every random-number state; returns the batch order's generator state."""
        saved = self.ckpt.resume()
        if saved is None:
            return None
        trainer, optimizer = saved
        try:  # a resume file from other settings (z_dim, hidden, ...) or without training state
            self.best_state = trainer["best_state_dict"]
            self.start_epoch = trainer["epoch"] + 1
            self.stopper.load_state(trainer)
            self.result.history, self.result.steps = trainer["history"], trainer.get("steps", 0)
            self.step.load_state(optimizer, self.cfg.lr)  # the lr of this call wins over the saved one
            set_rng_state(trainer["rng"])
        except (KeyError, TypeError, RuntimeError, ValueError) as e:
            raise self.ckpt.cannot_resume(e) from None
        return trainer.get("shuffle_rng")

    def start(self, shuffle_state: torch.Tensor | None, callbacks: Sequence[Callback]) -> None:
        """The batch order, the distributed set-up, the compiled step, then the hooks begin."""
        cfg, n = self.cfg, len(self.x)
        self.shuffle = batch_order(shuffle_state)
        self.mean_loss = _mean_loss
        if self.dist is not None:  # same batches on every rank, each steps on its shard (infer.distributed)
            self.dist.prepare(self.step, self.shuffle)
            self.mean_loss = self.dist.mean_loss
            if not self.main:  # it has read the resume file; it writes nothing
                self.ckpt.disable()
        self.drop_last = ELBOS[self.elbo][1] and n > cfg.batch_size  # JIT traces one batch shape
        self.n_batches = n // cfg.batch_size if self.drop_last else math.ceil(n / cfg.batch_size)
        backend, auto = check_compile(cfg.compile), cfg.compile is None and self.elbo in ("trace", "meanfield")
        if auto:
            backend = auto_backend(self.story, self.n_batches * max(cfg.epochs - self.start_epoch, 0),
                                   self.dist is not None)
        self.step = compile_step(self.step, backend, elbo=self.elbo, num_particles=cfg.num_particles,
                                 distributed=self.dist is not None,
                                 quiet=auto and self.story.static_graph is True)
        hparams = {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr, "elbo": self.elbo,
                   "num_particles": cfg.num_particles, "patience": cfg.patience, "clip_norm": cfg.clip_norm,
                   "n_train": n}
        self.hooks = Callbacks(callbacks, Trainer("svi", self.story, self.result),
                               log_dir=cfg.log_dir if self.main else None, hparams=hparams)
        self.hooks.begin()
        self.t0 = time.perf_counter()

    def epochs(self) -> Iterable[int]:
        """The epochs still to run (0-based), behind the progress bar."""
        self.bar = progress_bar(range(self.start_epoch, self.cfg.epochs), enabled=self.progress,
                                desc=f"train {self.story.kind}")
        return self.bar

    def train_epoch(self, epoch: int) -> float:
        """One pass over shuffled minibatches; the hooks after each step; the loss per example."""
        self.story.train()
        total, seen, bs = 0.0, 0, self.cfg.batch_size
        for i, (xb, yb) in enumerate(batches(self.x, bs, y=self.y, shuffle=True, generator=self.shuffle)):
            if self.drop_last and len(xb) < bs:
                continue
            loss = self._step(xb, yb, epoch, i)
            total, seen, self.result.steps = total + loss, seen + len(xb), self.result.steps + 1
            # the story's hook every step; a record only for callbacks that read it (TensorBoard)
            self.hooks.step_end({"step": self.result.steps, "loss": loss / max(len(xb), 1)}
                                if self.hooks.callbacks else None)
            if self.progress and i % 10 == 0:
                self.bar.set_postfix(loss=f"{total / seen:.3f}", step=f"{i + 1}/{self.n_batches}")
        return total / max(seen, 1)

    def _step(self, xb: torch.Tensor, yb: torch.Tensor | None, epoch: int, i: int) -> float:
        # unlabelled stories get no y argument at all: Pyro's JIT cannot trace a None
        try:
            loss = self.step(xb) if yb is None else self.step(xb, yb)
        except ValueError as e:  # NaN parameters fail distribution validation before the loss does
            if not _diverged(self.story, e):
                raise
            loss = math.nan
        if not math.isfinite(loss):
            kept = f", checkpoint {self.ckpt.best} untouched)" if self.ckpt.best else ")"
            self._diverge(f"loss became {loss} at epoch {epoch + 1}, step {i + 1}; training stopped "
                          f"(best state from epoch {self.stopper.best_epoch + 1} kept{kept}; "
                          "try a smaller --lr or gradient clipping")
        return loss

    def validate(self, epoch: int, train_loss: float, val: torch.Tensor | None,
                 val_y: torch.Tensor | None) -> tuple[dict, float]:
        """The epoch's record (eval mode) and the score early stopping reads (validation loss, else training)."""
        self.story.eval()
        record = {"epoch": epoch + 1, "train_loss": train_loss, "seconds": time.perf_counter() - self.t0,
                  "lr": self.cfg.lr}  # lr: a resumed run may change it
        if val is not None and len(val):
            record["val_loss"] = self.mean_loss(self.val_elbo, self.story, val, val_y, max(self.cfg.batch_size, 256))
        score = record.get("val_loss", record["train_loss"])
        if math.isfinite(score) and not _finite(self.story):
            score = math.nan  # a finite loss computed before the last update can hide NaN parameters
        if not math.isfinite(score):
            self._diverge(f"validation loss or parameters became {score} at epoch {epoch + 1}, "
                          f"step {self.n_batches}; best state kept; try a smaller --lr")
        return record, score

    def end_epoch(self, epoch: int, record: dict, score: float) -> bool:
        """The hooks (the story's, then the callbacks), early stopping, the best and resume files;
        returns whether to stop."""
        stop = self.hooks.epoch_end(record)
        if self.dist is not None:  # a time limit read on each rank's clock: rank 0's decision for all
            stop = self.dist.agree(stop)
        result = self.result
        result.history.append(record)
        improved = self.stopper.update(epoch, score)
        result.best_epoch, result.best_val = self.stopper.best_epoch, self.stopper.best_val
        if improved:
            self.best_state = copy.deepcopy(self.story.state_dict())
            self.ckpt.save_best({"epoch": epoch + 1, "history": result.history})
        if self.progress:
            self.bar.set_postfix(loss=f"{record['train_loss']:.3f}", val=f"{record.get('val_loss', math.nan):.3f}")
        if self.ckpt.last is not None:
            self.ckpt.save_last({
                "epoch": epoch, **self.stopper.state(), "history": result.history, "steps": result.steps,
                "best_state_dict": self.best_state, "rng": rng_state(), "shuffle_rng": self.shuffle.get_state(),
            }, self.step.state())
        return stop or self.stopper.should_stop

    def finish(self) -> TrainResult:
        """The best state restored, in eval mode; the hooks end."""
        self.story.load_state_dict(self.best_state)
        self.story.eval()
        result = self.result
        result.best_epoch, result.best_val = self.stopper.best_epoch, self.stopper.best_val  # also when no epoch ran
        result.seconds = time.perf_counter() - self.t0
        if isinstance(self.step, CompiledStep):
            result.capture_seconds = self.step.capture_seconds
            result.step = self.step.backend if self.step.active and self.step.compiled_steps else "eager"
        self.hooks.end()
        return result

    def _diverge(self, msg: str) -> None:
        self.story.load_state_dict(self.best_state)
        raise DivergenceError(msg)


def fit_story(story, x: torch.Tensor, *, y: torch.Tensor | None = None, val: torch.Tensor | None = None,
              val_y: torch.Tensor | None = None, check: bool = True, config: SVIConfig | None = None,
              **options: Any) -> TrainResult:
    """The SVI trainer as :func:`probgen.infer.train` calls it, on prepared data (after ``story.begin_fit``,
    which builds an automatic guide): run the story check (clear errors naming the site;
    ``TraceEnum_ELBO`` when a site is enumerated), then :func:`fit_svi`.

    :param check: run the story once on a few examples first (it also picks the objective when
        ``elbo`` is ``"auto"``).
    :param config: :class:`SVIConfig`; ``options``: :func:`fit_svi`'s keywords and single fields.
    """
    elbo = options.pop("elbo", "auto" if config is None else config.elbo)
    if check:
        story.checked = story.check(x, y, elbo=elbo)
        elbo = story.checked.elbo
    return fit_svi(story, x, y=y, val=val, val_y=val_y, config=config, elbo=elbo, **options)


# -- helpers ----------------------------------------------------------------------------------
def _objective_name(story, elbo: str) -> str:
    """``"auto"``: the story's declared objective (``"auto"`` there too: ``"trace"``)."""
    if elbo != "auto":
        return elbo
    return "trace" if story.elbo == "auto" else story.elbo


def _mean_loss(elbo, story, x, y, batch_size: int) -> float:
    """Loss per example (negative ELBO) over a whole data set, no gradients."""
    total = 0.0
    with torch.no_grad():
        for xb, yb in batches(x, batch_size, y=y):
            args = (xb,) if yb is None else (xb, yb)
            total += float(elbo.loss(story.model, story.guide, *args))
    return total / len(x)


def _check_labels(x, y, val, val_y) -> None:
    for name, labels, data in (("y", y, x), ("val_y", val_y, val)):
        if labels is not None and data is not None and len(labels) != len(data):
            raise ValueError(f"{name}: {len(labels)} labels for {len(data)} examples")


def _finite(story: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in story.parameters())


def _diverged(story: torch.nn.Module, error: Exception) -> bool:
    """Was this ValueError raised because parameters or values became NaN/inf?"""
    if not _finite(story):
        return True
    first = str(error).split("Trace Shapes")[0].lower()
    return "found invalid values" in first and ("nan" in first or "inf" in first)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)
