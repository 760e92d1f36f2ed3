"""EM for a mixture whose assignment is an enumerated Pyro site.

The E-step *is* the enumerated posterior of the Pyro model (``story.joint_log_prob``: no second
implementation of the mixture); the M-step is the model's closed-form weighted maximum
likelihood (``story.m_step``); the start is ``story.initial_responsibilities``. Any story offering
these three pieces (``Traits(trainers=("em", ...))``) trains here. Each iteration's mean log-likelihood per example goes into the
history; EM never lowers it, so the history is non-decreasing (up to rounding).
"""
from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from ..runtime import progress_bar, registered_quietly
from .callbacks import Callbacks
from .hooks import Callback, Trainer, TrainResult

__all__ = ["fit_em"]


def fit_em(story: Any, x: torch.Tensor, *, y: torch.Tensor | None = None, val: torch.Tensor | None = None,
           val_y: torch.Tensor | None = None, max_iter: int = 100, tol: float = 1e-3, seed: int = 0,
           init: str = "kmeans", progress: bool = True, callbacks: Sequence[Callback] = (),
           log_dir: str | Path | None = None, checkpoint: str | Path | None = None,
           data: dict | None = None) -> TrainResult:
    """Fit a mixture by expectation-maximisation.

    :param story: a built mixture offering ``joint_log_prob(x) -> [K × n]`` (log p(x_i, m = k)),
        ``initial_responsibilities(x, init=, seed=) -> [K × n]`` and ``m_step(x, resp)`` (e.g.
        :class:`probgen.models.GMM`).
    :param x: prepared data ``[n, D]``; ``y``, ``val``, ``val_y``: accepted for the trainers' common
        signature, not used (EM has no validation-based selection).
    :param max_iter: iterations at most.
    :param tol: stop when the mean log-likelihood per example improves by less than this.
    :param seed: seed of the initialisation.
    :param init: ``"kmeans"`` or ``"random"`` responsibilities to start from.
    :param progress: show the progress bar.
    :param callbacks: :class:`probgen.infer.Callback` objects; each iteration's record is
        ``{"epoch", "log_likelihood", "seconds"}``.
    :param log_dir: write TensorBoard logs here (:mod:`probgen.infer.tensorboard`).
    :param checkpoint: accepted for the common signature: EM writes no file while it runs (it has
        nothing to resume); :func:`probgen.infer.train` writes the final one (with ``data``).
    :return: history (one record per iteration), ``converged``, ``best_val`` = the final mean
        negative log-likelihood per example, ``seconds`` (initialisation included).
    :raises ValueError: the log-likelihood became NaN/inf (raise ``reg_covar``).
    """
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    result = TrainResult()
    hooks = Callbacks(callbacks, Trainer("em", story, result), log_dir=log_dir,
                      hparams={"max_iter": max_iter, "tol": tol, "seed": seed, "init": init, "n_train": len(x)})
    hooks.begin()
    t0 = time.perf_counter()
    with torch.no_grad():
        story.m_step(x, story.initial_responsibilities(x, init=init, seed=seed))
    bar = progress_bar(range(max_iter), enabled=progress, desc=f"EM {story.kind}", unit="iter")
    prev = -math.inf
    quiet = contextlib.ExitStack()
    try:
        with torch.no_grad():
            for it in bar:
                if it == 1:  # the first E-step registered the parameters and validated the story
                    quiet.enter_context(registered_quietly(story))
                joint = story.joint_log_prob(x)  # E-step: K × n, from the enumerated model
                ll, resp = _normalise(joint)  # n, K × n
                mean_ll = float(ll.mean())
                if not math.isfinite(mean_ll):
                    raise ValueError(f"EM diverged at iteration {it + 1} (log-likelihood {mean_ll}); "
                                     "raise reg_covar")
                record = {"epoch": it + 1, "log_likelihood": mean_ll, "seconds": time.perf_counter() - t0}
                result.history.append(record)
                result.steps, result.best_epoch, result.best_val = it + 1, it, -mean_ll
                bar.set_postfix(loglik=f"{mean_ll:.3f}")
                stop = hooks.epoch_end(record)  # the story's epoch_end, then the callbacks
                if mean_ll - prev < tol:
                    break
                prev = mean_ll
                story.m_step(x, resp)  # M-step from the responsibilities K × n
                hooks.step_end(None)  # one EM step taken: the story's hook (callbacks see iterations)
                if stop:
                    result.stopped_early = True
                    break
    finally:
        quiet.close()
    lls = [r["log_likelihood"] for r in result.history]
    met_tol = len(lls) < max_iter or (len(lls) > 1 and lls[-1] - lls[-2] < tol)
    result.converged = met_tol and not result.stopped_early
    result.seconds = time.perf_counter() - t0
    hooks.end()
    return result


def _normalise(joint: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(x_i) = logsumexp_k joint and the responsibilities p(m = k | x_i) from one ``exp``
    (``logsumexp`` then ``exp(joint - ll)`` would exponentiate the K × n table twice)."""
    top = joint.max(0).values  # n
    resp = (joint - top).exp_()  # K × n
    total = resp.sum(0)  # n
    return top + total.log(), resp.div_(total)
