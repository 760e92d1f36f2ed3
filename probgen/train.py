"""One SVI training loop, readable top to bottom.

It knows no particular model: it takes any object with ``model(x, y)`` and
``guide(x, y)`` methods that is also a ``torch.nn.Module`` (a :class:`probgen.story.Story`),
and gives it minibatches, a progress bar with the running loss, validation each
epoch, early stopping, atomic checkpoints of the best model, resume, and a clean
stop when the loss diverges.
"""
from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyro
import pyro.infer
import pyro.optim
import torch

from .data import batches
from .io import load_checkpoint

__all__ = ["ELBOS", "make_elbo", "fit_svi", "progress_bar", "TrainResult", "DivergenceError", "rng_state", "set_rng_state"]

# name -> (Pyro ELBO class name, is_jit)
ELBOS = {
    "trace": ("Trace_ELBO", False),
    "meanfield": ("TraceMeanField_ELBO", False),  # analytic KL where Pyro knows it
    "jit": ("JitTrace_ELBO", True),
    "jit-meanfield": ("JitTraceMeanField_ELBO", True),
    "enum": ("TraceEnum_ELBO", False),  # sums out enumerated discrete sites
    "jit-enum": ("JitTraceEnum_ELBO", True),
}


class DivergenceError(RuntimeError):
    """The loss or the parameters became NaN/inf; the last good state was kept."""


def make_elbo(name: str, *, num_particles: int = 1, max_plate_nesting: int = 1) -> pyro.infer.ELBO:
    """Build a Pyro ELBO by name.

    :param name: one of :data:`ELBOS` (``trace``, ``meanfield``, ``jit``, ``jit-meanfield``,
        ``enum``, ``jit-enum``).
    :param num_particles: samples per data point for the gradient estimate.
    :param max_plate_nesting: plates nested in the model (needed by enumeration).
    """
    if name not in ELBOS:
        raise ValueError(f"unknown elbo {name!r}: use one of {', '.join(ELBOS)}")
    cls_name, is_jit = ELBOS[name]
    kwargs: dict[str, Any] = dict(num_particles=num_particles, max_plate_nesting=max_plate_nesting,
                                  vectorize_particles=num_particles > 1)
    if is_jit:
        kwargs["ignore_jit_warnings"] = True
    return getattr(pyro.infer, cls_name)(**kwargs)


def rng_state() -> dict:
    """All random-number-generator states, in a form ``weights_only`` loading accepts."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.as_tensor(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "python": repr(random.getstate()),
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved."""
    import ast

    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state((npst[0], npst[1].numpy().astype(np.uint32), int(npst[2]), int(npst[3]), float(npst[4])))
    random.setstate(ast.literal_eval(state["python"]))


@dataclass
class TrainResult:
    """What happened during :func:`fit_svi`."""

    history: list[dict] = field(default_factory=list)  # one dict per epoch
    best_epoch: int = -1
    best_val: float = math.inf
    seconds: float = 0.0
    stopped_early: bool = False


def _mean_loss(elbo, story, x, y, batch_size: int) -> float:
    """Loss per example (negative ELBO) over a whole data set, no gradients."""
    total = 0.0
    with torch.no_grad():
        for xb, yb in batches(x, batch_size, y=y):
            args = (xb,) if yb is None else (xb, yb)
            total += float(elbo.loss(story.model, story.guide, *args))
    return total / len(x)


def fit_svi(
    story: torch.nn.Module,
    x: torch.Tensor,
    *,
    y: torch.Tensor | None = None,
    val: torch.Tensor | None = None,
    val_y: torch.Tensor | None = None,
    epochs: int = 20,
    batch_size: int = 128,
    lr: float = 1e-3,
    elbo: str = "trace",
    num_particles: int = 1,
    patience: int | None = 10,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    clip_norm: float | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    distributed: Any = None,
    **unknown: Any,
) -> TrainResult:
    """Train ``story.model`` / ``story.guide`` with ``pyro.infer.SVI``.

    :param story: a :class:`probgen.story.Story` (an ``nn.Module`` with ``model``/``guide``).
    :param x: training data ``[n, ...]``; ``y`` optional labels ``[n]``.
    :param val: validation data for early stopping and best-model selection.
    :param epochs: passes over the training data (``0`` leaves the model untouched).
    :param batch_size: examples per SVI step.
    :param lr: Adam learning rate.
    :param elbo: name of the objective, see :data:`ELBOS`.
    :param patience: stop after this many epochs without validation improvement
        (``None``: never stop early).
    :param checkpoint: file for the best model; the resumable state goes beside it as
        ``<stem>.last.pt``. Both are written atomically.
    :param resume: continue from ``<stem>.last.pt`` if it exists.
    :param clip_norm: clip gradients to this global norm (``None``: no clipping).
    :param on_epoch: called as ``on_epoch(epoch, record)`` after each epoch (annealing, logging).
    :param distributed: a :class:`probgen.distributed.Distributed` inside a ``torchrun`` job: each rank
        computes the gradient of its shard of every batch, gradients are all-reduced, and rank 0
        alone shows progress and writes checkpoints (``None``: one process).
    :raises DivergenceError: the loss became NaN/inf; the best state so far is restored.
    """
    if unknown:  # a typo in an option must not surface as a TypeError deep inside
        raise ValueError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    if not _is_int(epochs) or epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs!r}")
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if not _is_int(num_particles) or num_particles < 1:
        raise ValueError(f"num_particles must be >= 1, got {num_particles!r}")
    if not isinstance(lr, (int, float)) or not 0 < lr < math.inf:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if patience is not None and (not _is_int(patience) or patience < 0):
        raise ValueError(f"patience must be >= 0 (or None: never stop early), got {patience!r}")
    if clip_norm is not None and (not isinstance(clip_norm, (int, float)) or not 0 < clip_norm < math.inf):
        raise ValueError(f"clip_norm must be > 0, got {clip_norm!r}")
    for name, labels, data in (("y", y, x), ("val_y", val_y, val)):
        if labels is not None and data is not None and len(labels) != len(data):
            raise ValueError(f"{name}: {len(labels)} labels for {len(data)} examples")
    result = TrainResult()
    ckpt = Path(checkpoint) if checkpoint is not None else None
    last = ckpt.with_name(ckpt.stem + ".last.pt") if ckpt is not None else None

    # -- the objective and the optimizer: Pyro's SVI over the story's param-store names
    svi_elbo = make_elbo(elbo, num_particles=num_particles, max_plate_nesting=story.max_plate_nesting)
    # validation uses the non-JIT twin: same objective, any batch shape
    val_elbo = make_elbo(elbo.replace("jit-", "").replace("jit", "trace"),
                         max_plate_nesting=story.max_plate_nesting)
    optim_args = {"lr": lr}
    # clip_norm: the global norm over all parameters (pyro's ClippedAdam would clamp each element)
    optim = _GlobalNormAdam(optim_args, clip_norm) if clip_norm is not None else pyro.optim.Adam(optim_args)
    svi = pyro.infer.SVI(story.model, story.guide, optim, loss=svi_elbo)
    prefix = story.pyro_name + "$$$"

    start_epoch, bad_epochs, shuffle_state = 0, 0, None
    best_state = copy.deepcopy(story.state_dict())
    if resume and last is not None and last.is_file():
        payload = load_checkpoint(last)
        if payload["kind"] != story.kind:
            raise ValueError(f"{last}: resume file holds a {payload['kind']!r} model, not {story.kind!r}")
        try:  # a resume file from other settings (z_dim, hidden, ...) or without training state
            story.load_state_dict(payload["state_dict"])
            ex = payload["extra"]
            best_state = ex["best_state_dict"]
            start_epoch, bad_epochs = ex["epoch"] + 1, ex["bad_epochs"]
            result.history, result.best_epoch, result.best_val = ex["history"], ex["best_epoch"], ex["best_val"]
            # the optimizer state is keyed by param-store names: re-attach this instance's prefix
            story.register_params()
            for state in ex["optim"].values():  # the --lr of this call wins over the saved one
                for group in state.get("param_groups", []):
                    group["lr"] = lr
            optim.set_state({prefix + k: v for k, v in ex["optim"].items()})
            set_rng_state(ex["rng"])
        except (KeyError, TypeError, RuntimeError, ValueError) as e:
            detail = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln),
                          str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
            if isinstance(e, KeyError):
                detail = f"no {e.args[0]!r} in its training state"
            raise ValueError(f"{last}: cannot resume from it ({detail}); "
                             "use the settings of that run, or delete the file to start afresh") from None
        shuffle_state = ex.get("shuffle_rng")

    shuffle_gen = torch.Generator()
    if shuffle_state is not None:  # resume the batch order too: resumed == uninterrupted, bit for bit
        shuffle_gen.set_state(shuffle_state)
    else:
        shuffle_gen.manual_seed(int(torch.randint(0, 2**31 - 1, (1,))))
    step_fn, mean_loss = svi.step, _mean_loss
    if distributed is not None:  # same batches on every rank, each steps on its shard (probgen.distributed)
        step_fn, mean_loss = distributed.prepare(story, svi, shuffle_gen), distributed.mean_loss
        if not distributed.is_main:  # rank 0 alone shows progress and writes checkpoints
            progress, ckpt, last = False, None, None
    drop_last = ELBOS[elbo][1] and len(x) > batch_size  # JIT traces one batch shape
    n_batches = len(x) // batch_size if drop_last else math.ceil(len(x) / batch_size)
    t0 = time.perf_counter()
    bar = progress_bar(range(start_epoch, epochs), progress, story.kind)
    for epoch in bar:
        story.train()
        total, seen = 0.0, 0
        for step, (xb, yb) in enumerate(batches(x, batch_size, y=y, shuffle=True, generator=shuffle_gen)):
            if drop_last and len(xb) < batch_size:
                continue
            # unlabelled stories get no y argument at all: Pyro's JIT cannot trace a None
            try:
                loss = step_fn(xb) if yb is None else step_fn(xb, yb)
            except ValueError as e:  # NaN parameters fail distribution validation before the loss does
                if not _diverged(story, e):
                    raise
                loss = math.nan
            if not math.isfinite(loss):
                story.load_state_dict(best_state)
                raise DivergenceError(
                    f"loss became {loss} at epoch {epoch + 1}, step {step + 1}; training stopped "
                    f"(best state from epoch {result.best_epoch + 1} kept"
                    + (f", checkpoint {ckpt} untouched)" if ckpt else ")")
                    + "; try a smaller --lr or gradient clipping")
            total, seen = total + loss, seen + len(xb)
            if progress and step % 10 == 0:
                bar.set_postfix(loss=f"{total / seen:.3f}", step=f"{step + 1}/{n_batches}")
        story.eval()
        record = {"epoch": epoch + 1, "train_loss": total / max(seen, 1),
                  "seconds": time.perf_counter() - t0}
        if val is not None and len(val):
            record["val_loss"] = mean_loss(val_elbo, story, val, val_y, max(batch_size, 256))
        score = record.get("val_loss", record["train_loss"])
        if math.isfinite(score) and not all(bool(torch.isfinite(p).all()) for p in story.parameters()):
            score = math.nan  # a finite loss computed before the last update can hide NaN parameters
        if not math.isfinite(score):
            story.load_state_dict(best_state)
            raise DivergenceError(f"validation loss or parameters became {score} at epoch {epoch + 1}, "
                                  f"step {n_batches}; best state kept; try a smaller --lr")
        if on_epoch is not None:
            on_epoch(epoch, record)
        result.history.append(record)
        if score < result.best_val:
            result.best_val, result.best_epoch, bad_epochs = score, epoch, 0
            best_state = copy.deepcopy(story.state_dict())
            if ckpt is not None:
                story.save(ckpt, extra={"epoch": epoch + 1, "history": result.history})
        else:
            bad_epochs += 1
        if progress:
            bar.set_postfix(loss=f"{record['train_loss']:.3f}",
                            val=f"{record.get('val_loss', float('nan')):.3f}")
        if last is not None:
            state = optim.get_state()
            story.save(last, extra={
                "epoch": epoch, "bad_epochs": bad_epochs, "history": result.history,
                "best_epoch": result.best_epoch, "best_val": result.best_val,
                "best_state_dict": best_state, "rng": rng_state(), "shuffle_rng": shuffle_gen.get_state(),
                "optim": {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
            })
        if patience is not None and bad_epochs >= patience:
            result.stopped_early = True
            break
    story.load_state_dict(best_state)
    story.eval()
    result.seconds = time.perf_counter() - t0
    return result


class _GlobalNormAdam(pyro.optim.PyroOptim):
    """Adam after scaling all gradients together so that their global L2 norm is <= ``max_norm``."""

    def __init__(self, optim_args: dict, max_norm: float):
        super().__init__(torch.optim.Adam, optim_args)
        self.max_norm = float(max_norm)

    def __call__(self, params, *args, **kwargs) -> None:
        params = list(params)  # SVI passes every parameter of the step at once
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], self.max_norm)
        super().__call__(params, *args, **kwargs)


def _diverged(story: torch.nn.Module, error: Exception) -> bool:
    """Was this ValueError raised because parameters or values became NaN/inf?"""
    if not all(bool(torch.isfinite(p).all()) for p in story.parameters()):
        return True
    first = str(error).split("Trace Shapes")[0].lower()
    return "found invalid values" in first and ("nan" in first or "inf" in first)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def progress_bar(it, enabled: bool, desc: str):
    """A tqdm epoch bar (off when ``enabled`` is false or output is not a terminal)."""
    if not enabled:
        return _Quiet(it)
    from tqdm.auto import tqdm

    return tqdm(it, desc=f"train {desc}", unit="epoch", leave=False, dynamic_ncols=True, disable=None)


class _Quiet:
    def __init__(self, it):
        self._it = it

    def __iter__(self):
        return iter(self._it)

    def set_postfix(self, **kwargs):
        pass
