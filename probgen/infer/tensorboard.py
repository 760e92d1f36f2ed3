"""TensorBoard logs for every trainer, through the one logging hook (:class:`.callbacks.Logger`).

``fit(..., log_dir="runs/tb")`` (SVI, EM, the adversarial game; ``--log-dir`` on the command
line) writes one event file per run under ``log_dir``:

- every number of each epoch's record as a scalar (``svi/train_loss``, ``svi/val_loss``,
  ``em/log_likelihood``, ``adversarial/d_loss``, ...; x axis = epoch, EM iteration, or step of a
  streamed game);
- every step's numbers under ``<algorithm>/step/`` (``svi/step/loss`` = the batch's loss per
  example, ``adversarial/step/d_loss``, ``g_loss``, ...; x axis = optimizer step);
- for image models (a ``sample`` method and an ``x_shape`` of ``[H, W]`` or ``[C, H, W]``) a grid
  of ``images`` samples per epoch (``samples``), drawn under ``torch.no_grad`` with a fixed seed
  and every random-number state saved and restored around it: training draws exactly the
  numbers it would draw without the logger (bit-identical resume holds);
- the run's hyperparameters (the model's constructor arguments and the trainer's options) as
  text, and ``*/final/*`` (epochs, steps, seconds, best validation loss).

:func:`log_score` adds a recipe's final test log-likelihood (``probgen compare --log-dir``).
``tensorboard`` is an optional extra (``pip install -e ".[tb]"``); without it, asking for a log
directory fails with one line.

    tensorboard --logdir runs/tb
"""
from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import torch

from .callbacks import Logger, Trainer, log, rng_state, set_rng_state

__all__ = ["TensorBoardLogger", "sample_images", "log_score", "SAMPLE_SEED"]

#: the seed of the per-epoch sample grid (the same codes every epoch: watch the model learn)
SAMPLE_SEED = 1234


def _writer(log_dir: str | Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError("--log-dir needs tensorboard: pip install 'probgen[tb]' "
                         "(or pip install tensorboard)") from None
    path = Path(log_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--log-dir {path}: exists and is not a folder")
    return SummaryWriter(log_dir=str(path))


def _numbers(record: dict, skip: str):
    for key, value in record.items():
        if key != skip and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            yield key, value


class TensorBoardLogger(Logger):
    """Write each epoch's and each step's record, and a sample grid per epoch, to TensorBoard.

    :param log_dir: folder for the event files (created).
    :param hparams: the run's settings, shown under the TEXT tab (plain values).
    :param images: samples in the per-epoch grid of an image model (0: none).
    :raises ValueError: ``tensorboard`` is not installed.
    """

    def __init__(self, log_dir: str | Path, hparams: dict | None = None, *, images: int = 16):
        super().__init__()
        self.writer = _writer(log_dir)
        self.hparams = dict(hparams or {})
        self.images = int(images)
        self.model: Any = None

    def on_train_begin(self, trainer: Trainer) -> None:
        self.model = trainer.model
        config = getattr(trainer.model, "config", {}) or {}
        settings = {"algorithm": trainer.algorithm, "model": getattr(trainer.model, "kind", type(trainer.model).__name__),
                    **{f"model.{k}": v for k, v in config.items()}, **self.hparams}
        table = "\n".join(f"| {k} | {v} |" for k, v in settings.items())
        self.writer.add_text("hparams", "| setting | value |\n|---|---|\n" + table, 0)

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        self.model = trainer.model
        super().on_epoch_end(trainer, record)

    def write(self, algorithm: str, record: dict) -> None:
        step = int(record.get("epoch", record.get("step", 0)))  # a streamed game's records are per step
        for key, value in _numbers(record, "epoch"):
            self.writer.add_scalar(f"{algorithm}/{key}", value, step)
        if "epoch" in record and self.images > 0:
            self.write_images(step)
        self.writer.flush()

    def write_step(self, algorithm: str, record: dict) -> None:
        step = int(record["step"])
        for key, value in _numbers(record, "step"):
            self.writer.add_scalar(f"{algorithm}/step/{key}", value, step)

    def write_images(self, step: int) -> None:
        """A grid of ``images`` samples of an image model (others: nothing), RNG untouched."""
        grid = sample_images(self.model, self.images)
        if grid is None:
            return
        if isinstance(grid, str):  # the model could not sample: say so once, keep training
            log(f"tensorboard: no sample grid ({grid})")
            self.images = 0
            return
        self.writer.add_images("samples", grid, step, dataformats="NCHW")

    def on_train_end(self, trainer: Trainer) -> None:
        res = trainer.result
        final: dict[str, Any] = {"epochs": len(res.history), "steps": res.steps, "seconds": res.seconds}
        if math.isfinite(res.best_val):
            final["best_val"] = res.best_val
        for key, value in final.items():
            self.writer.add_scalar(f"{trainer.algorithm}/final/{key}", value, len(res.history))
        self.writer.close()


def sample_images(model: Any, n: int, *, seed: int = SAMPLE_SEED) -> torch.Tensor | str | None:
    """``n`` samples of an image model as ``[n, C, H, W]`` in [0, 1] (``None``: not an image model;
    a string: why sampling failed). Draws under ``no_grad``, in eval mode, seeded with ``seed``,
    and restores every random-number state and the train/eval mode afterwards."""
    shape = tuple(getattr(model, "x_shape", None) or ())
    if not callable(getattr(model, "sample", None)) or not (
            len(shape) == 2 or (len(shape) == 3 and shape[0] in (1, 3))):
        return None
    params = inspect.signature(model.sample).parameters
    kwargs = {k: v for k, v in (("mean", True), ("progress", False)) if k in params}  # pictures, no bar
    state = rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    training = getattr(model, "training", False)
    try:
        model.eval()
        torch.manual_seed(seed)
        with torch.no_grad():
            x = model.sample(n, **kwargs)
    except Exception as e:  # noqa: BLE001 - a logger must not end training; the reason is logged once
        return f"{type(model).__name__}.sample failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    finally:
        set_rng_state(state)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        model.train(training)
    x = x.detach().float().cpu().reshape(len(x), *shape)
    return (x.unsqueeze(1) if len(shape) == 2 else x).clamp(0, 1)


def log_score(log_dir: str | Path, score: dict, *, step: int = 0) -> None:
    """Add a recipe's final test numbers to ``log_dir`` as ``test/<key>`` scalars (e.g.
    ``{"log_likelihood": -88.1, "stderr": 0.3, "num_samples": 5000}``) and their estimator as text.

    :raises ValueError: ``tensorboard`` is not installed.
    """
    writer = _writer(log_dir)
    for key, value in _numbers(score, ""):
        writer.add_scalar(f"test/{key}", value, step)
    if isinstance(score.get("estimator"), str):
        writer.add_text("test/estimator", score["estimator"], step)
    writer.close()
