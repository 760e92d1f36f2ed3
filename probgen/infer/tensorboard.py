"""TensorBoard logs for every trainer, through the one logging hook (:class:`.callbacks.Logger`).

``fit(..., log_dir="runs/tb")`` (SVI, EM, the adversarial game; ``--log-dir`` on the command
line) writes one event file per run under ``log_dir``: every number of each epoch's record as a
scalar (``train_loss``, ``val_loss``, ``log_likelihood``, ``d_loss``, ...; x axis = epoch or EM
iteration, plus ``steps`` so far), the run's hyperparameters (the model's constructor arguments
and the trainer's options) as text, and the final result. ``tensorboard`` is an optional
extra (``pip install -e ".[tb]"``); without it, asking for a log directory fails with one line.

    tensorboard --logdir runs/tb
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .callbacks import Logger, Trainer

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger(Logger):
    """Write each epoch's record to TensorBoard.

    :param log_dir: folder for the event files (created).
    :param hparams: the run's settings, shown under the TEXT tab (plain values).
    :raises ValueError: ``tensorboard`` is not installed.
    """

    def __init__(self, log_dir: str | Path, hparams: dict | None = None):
        super().__init__()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError("--log-dir needs tensorboard: pip install 'probgen[tb]' "
                             "(or pip install tensorboard)") from None
        path = Path(log_dir)
        if path.exists() and not path.is_dir():
            raise ValueError(f"--log-dir {path}: exists and is not a folder")
        self.writer = SummaryWriter(log_dir=str(path))
        self.hparams = dict(hparams or {})

    def on_train_begin(self, trainer: Trainer) -> None:
        config = getattr(trainer.model, "config", {}) or {}
        settings = {"algorithm": trainer.algorithm, "model": getattr(trainer.model, "kind", type(trainer.model).__name__),
                    **{f"model.{k}": v for k, v in config.items()}, **self.hparams}
        table = "\n".join(f"| {k} | {v} |" for k, v in settings.items())
        self.writer.add_text("hparams", "| setting | value |\n|---|---|\n" + table, 0)

    def write(self, algorithm: str, record: dict) -> None:
        step = int(record.get("epoch", 0))
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(f"{algorithm}/{key}", value, step)
        self.writer.flush()

    def on_train_end(self, trainer: Trainer) -> None:
        res = trainer.result
        final: dict[str, Any] = {"epochs": len(res.history), "steps": res.steps, "seconds": res.seconds}
        if math.isfinite(res.best_val):
            final["best_val"] = res.best_val
        for key, value in final.items():
            self.writer.add_scalar(f"{trainer.algorithm}/final/{key}", value, len(res.history))
        self.writer.close()
