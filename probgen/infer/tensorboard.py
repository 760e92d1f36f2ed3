"""TensorBoard logs for every trainer, through the one logging hook (:class:`.callbacks.Logger`).

``fit(..., log_dir="runs/tb")`` (SVI, EM, the adversarial game; ``--log-dir`` on the command
line) writes one event file per run under ``log_dir``:

- every number of each epoch's record as a scalar (``svi/train_loss``, ``svi/val_loss``,
  ``em/log_likelihood``, ``adversarial/d_loss``, ...; x axis = epoch, EM iteration, or step of a
  streamed game);
- every step's numbers under ``<algorithm>/step/`` (``svi/step/loss`` = the batch's loss per
  example, ``adversarial/step/d_loss``, ``g_loss``, ...; x axis = optimizer step);
- for image models (a story whose ``sample(n)`` gives ``[n, H, W]`` or ``[n, C, H, W]``; the mean image
  when it offers ``"sample_mean"``) a grid of ``images`` samples per epoch (``samples``), drawn under
  ``torch.no_grad`` with a fixed seed
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

import math
from pathlib import Path
from typing import Any

import torch

from ..runtime import bars_off, log, rng_state, set_rng_state
from .hooks import Logger, Trainer

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
        settings = {"algorithm": trainer.algorithm, "model": trainer.model.kind,
                    **{f"model.{k}": v for k, v in trainer.model.config.items()}, **self.hparams}
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
        if grid is None:  # not an image model: no grid, and no sampling, from now on
            self.images = 0
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
    """``n`` samples of an image story as ``[n, C, H, W]`` in [0, 1] (``None``: its samples are not
    images, or it cannot sample; a string: why sampling failed). Draws the mean image when the story
    offers ``"sample_mean"``, under ``no_grad``, in eval mode, with progress bars off, seeded with
    ``seed``, and restores every random-number state and the train/eval mode afterwards.

    :param model: a :class:`probgen.story.Story`.
    :param n: number of samples.
    :param seed: the seed of the draw (the same codes every epoch).
    """
    offers = model.traits.offers
    if "text" in offers:  # sentences: nothing to show as a picture
        return None
    kwargs = {"mean": True} if "sample_mean" in offers else {}
    state = rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    training = model.training
    try:
        model.eval()
        torch.manual_seed(seed)
        with torch.no_grad(), bars_off():
            x = model.sample(n, **kwargs)
    except NotImplementedError:  # a story without sample(n)
        return None
    except Exception as e:  # noqa: BLE001 - a logger must not end training; the reason is logged once
        return f"{type(model).__name__}.sample failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    finally:
        set_rng_state(state)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        model.train(training)
    shape = tuple(x.shape[1:]) if isinstance(x, torch.Tensor) else ()
    if not (len(shape) == 2 or (len(shape) == 3 and shape[0] in (1, 3))):
        return None
    x = x.detach().float().cpu()
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
