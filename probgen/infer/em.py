"""EM for a mixture whose assignment is an enumerated Pyro site.

The E-step *is* the enumerated posterior of the Pyro model (``story.joint_log_prob``: no second
implementation of the mixture); the M-step is the model's closed-form weighted maximum
likelihood (``story.m_step``); the start is ``story.initial_responsibilities``. Any story offering
these three pieces (``Traits(trainers=("em", ...))``) trains here. Each iteration's mean log-likelihood per example goes into the
history; EM never lowers it, so the history is non-decreasing (up to rounding).

``n_init=B`` runs B starts at once, as one batch (the pieces then take and give a start dimension:
``initial_responsibilities(..., n_init=B) -> [K × B × n]``, ``joint_log_prob -> [K × B × n]``,
``m_step`` of ``[K × B × n]``): each start stops at its own tolerance (its responsibilities are then
held, so its parameters stay where scikit-learn's would stop), and the start with the highest final
log-likelihood is kept (``m_step`` of its ``[K × n]``), as scikit-learn's ``n_init``. The batch takes the
kernel launches of one start, which is what a GPU needs (not yet measured on one).
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
           init: str = "kmeans", n_init: int = 1, progress: bool = True, callbacks: Sequence[Callback] = (),
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
    :param n_init: starts run at once as a batch (drawn one after another from ``seed``); the best is kept.
    :param progress: show the progress bar.
    :param callbacks: :class:`probgen.infer.Callback` objects; each iteration's record is
        ``{"epoch", "log_likelihood", "seconds"}`` (with ``n_init > 1``: the best start's, and
        ``"starts_running"``).
    :param log_dir: write TensorBoard logs here (:mod:`probgen.infer.tensorboard`).
    :param checkpoint: accepted for the common signature: EM writes no file while it runs (it has
        nothing to resume); :func:`probgen.infer.train` writes the final one (with ``data``).
    :return: history (one record per iteration), ``converged``, ``best_val`` = the final mean
        negative log-likelihood per example, ``seconds`` (initialisation included).
    :raises ValueError: the log-likelihood became NaN/inf (raise ``reg_covar``).
    """
    for name, value in (("max_iter", max_iter), ("n_init", n_init)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be >= 1, got {value!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    result = TrainResult()
    hooks = Callbacks(callbacks, Trainer("em", story, result), log_dir=log_dir,
                      hparams={"max_iter": max_iter, "tol": tol, "seed": seed, "init": init, "n_init": n_init,
                               "n_train": len(x)})
    hooks.begin()
    t0 = time.perf_counter()
    with torch.no_grad():
        starts = {"n_init": n_init} if n_init > 1 else {}  # a story without batched starts still trains
        resp = story.initial_responsibilities(x, init=init, seed=seed, **starts)  # K × n (K × B × n)
        story.m_step(x, resp)
    bar = progress_bar(range(max_iter), enabled=progress, desc=f"EM {story.kind}", unit="iter")
    prev, last = [-math.inf] * n_init, [-math.inf] * n_init  # each start's previous and latest mean log-lik
    running, converged = [True] * n_init, [False] * n_init
    quiet = contextlib.ExitStack()
    try:
        with torch.no_grad():
            for it in bar:
                if it == 1:  # the first E-step registered the parameters and validated the story
                    quiet.enter_context(registered_quietly(story))
                joint = story.joint_log_prob(x)  # E-step: K × n (K × B × n), from the enumerated model
                ll, new = _normalise(joint)  # n (B × n), K × n (K × B × n)
                means = ll.mean(-1).reshape(-1).tolist()  # one number per start
                if not all(map(math.isfinite, means)):
                    raise ValueError(f"EM diverged at iteration {it + 1} (log-likelihood {min(means)}); "
                                     "raise reg_covar")
                for b in range(n_init):
                    if running[b]:
                        last[b] = means[b]
                        running[b] = not means[b] - prev[b] < tol  # improved by less than tol: stop
                        converged[b], prev[b] = not running[b], means[b]
                best = max(last)
                record = {"epoch": it + 1, "log_likelihood": best, "seconds": time.perf_counter() - t0}
                if n_init > 1:
                    record["starts_running"] = sum(running)
                result.history.append(record)
                result.steps, result.best_epoch, result.best_val = it + 1, it, -best
                bar.set_postfix(loglik=f"{best:.3f}")
                stop = hooks.epoch_end(record)  # the story's epoch_end, then the callbacks
                if not any(running):
                    break
                if n_init == 1:
                    resp = new
                else:  # a start that met its tolerance keeps the responsibilities its parameters came from
                    keep = torch.tensor(running, device=new.device)
                    resp = torch.where(keep[:, None], new, resp)
                story.m_step(x, resp)  # M-step from the responsibilities K × n (K × B × n)
                hooks.step_end(None)  # one EM step taken: the story's hook (callbacks see iterations)
                if stop:
                    result.stopped_early = True
                    break
            if n_init > 1:  # keep the best start (the first of equals, as scikit-learn)
                b = last.index(max(last))
                story.m_step(x, resp[:, b])
                converged = [converged[b]]
    finally:
        quiet.close()
    result.converged = converged[0] and not result.stopped_early
    result.seconds = time.perf_counter() - t0
    hooks.end()
    return result


def _normalise(joint: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(x_i) = logsumexp_k joint and the responsibilities p(m = k | x_i) from one ``exp``
    (``logsumexp`` then ``exp(joint - ll)`` would exponentiate the K × n table twice)."""
    top = joint.amax(0)  # n (B × n); amax: max(0) also finds the indices, 8× slower
    # torch's exp takes a slow path (~20×) where it underflows, and digits with reg_covar 1e-6 put most of
    # the table 1e6 nats below the top: floor at F = ½ log(smallest normal), then subtract e^F, so that those
    # responsibilities are exactly 0 (left at e^F = 1e-154, the M-step's products with them ran 10× slower);
    # any other moves by e^F, below an ulp of all but the negligible ones (float32: F = −43.7)
    floor = 0.5 * math.log(torch.finfo(joint.dtype).tiny)
    resp = (joint - top).clamp_min_(floor).exp_().sub_(math.exp(floor))  # K × n (K × B × n)
    total = resp.sum(0)  # n
    return top + total.log(), resp.div_(total)
