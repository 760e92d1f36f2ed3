"""The one SVI trainer, readable top to bottom.

It knows no particular model: it takes any object with ``model(x, y)`` and ``guide(x, y)``
methods that is also a ``torch.nn.Module`` (a :class:`probgen.story.Story`), and gives it
minibatches, a progress bar with the running loss, validation each epoch, early stopping,
atomic checkpoints of the best model, resume, and a clean stop when the loss diverges
(all but the minibatches and the SVI step come from :mod:`probgen.infer.callbacks`).
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyro
import pyro.infer
import pyro.poutine as poutine
import torch
from pyro.infer.elbo import ELBOModule
from pyro.infer.util import torch_item

from ..check import ELBOS  # name -> (Pyro ELBO class name, is_jit)
from ..data import batches
from ..runtime import registered_quietly
from .callbacks import (Callback, Callbacks, Checkpointer, DivergenceError, EarlyStopping, Trainer, TrainResult,
                        progress_bar, rng_state, set_rng_state)

__all__ = ["ELBOS", "make_elbo", "fit_svi", "Objective", "SVIStep", "IWAE_ELBO"]


class IWAE_ELBO(pyro.infer.RenyiELBO):
    """The importance-weighted bound of Burda et al. (2016), ``RenyiELBO(alpha=0)`` with the
    ``differentiable_loss`` the trainer needs: −Σ_n log (1/k) Σ_k p(x_n, z_k) / q(z_k | x_n),
    k = ``num_particles``, whose gradient is the IWAE gradient (self-normalised weights times
    the reparameterised gradients). k = 1 is the ordinary ELBO. Guide sites must be reparameterised."""

    def __init__(self, *, num_particles: int = 1, max_plate_nesting: int = 1, vectorize_particles: bool = True):
        super().__init__(alpha=0, num_particles=num_particles, max_plate_nesting=max_plate_nesting,
                         vectorize_particles=vectorize_particles)

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        from pyro.infer.util import get_dependent_plate_dims, torch_sum

        weights = []  # one [batch] (or, vectorized, [k, batch]) log-weight tensor per trace
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            sum_dims = get_dependent_plate_dims(model_trace.nodes.values())
            lw = 0.0
            for tr, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
                for name, site in tr.nodes.items():
                    if site["type"] != "sample":
                        continue
                    if sign < 0 and not getattr(site["fn"], "has_rsample", False):
                        raise ValueError(f"elbo='iwae': guide site {name!r} is not reparameterised "
                                         "(IWAE needs rsample); use elbo='trace'")
                    lw = lw + sign * torch_sum(site["log_prob"], sum_dims)
            weights.append(lw)
        lw = weights[0] if self.vectorize_particles and self.num_particles > 1 else torch.stack(weights)
        return -(torch.logsumexp(lw, dim=0) - math.log(self.num_particles)).sum()


def make_elbo(name: str, *, num_particles: int = 1, max_plate_nesting: int = 1) -> pyro.infer.ELBO:
    """Build a Pyro ELBO by name.

    :param name: one of :data:`ELBOS` (``trace``, ``meanfield``, ``jit``, ``jit-meanfield``,
        ``enum``, ``jit-enum``, ``iwae``).
    :param num_particles: samples per data point for the gradient estimate (``iwae``: k of the bound).
    :param max_plate_nesting: plates nested in the model (needed by enumeration).
    """
    if name not in ELBOS:
        raise ValueError(f"unknown elbo {name!r}: use one of {', '.join(ELBOS)}")
    cls_name, is_jit = ELBOS[name]
    kwargs: dict[str, Any] = dict(num_particles=num_particles, max_plate_nesting=max_plate_nesting,
                                  vectorize_particles=num_particles > 1)
    if is_jit:
        kwargs["ignore_jit_warnings"] = True
    return (IWAE_ELBO if name == "iwae" else getattr(pyro.infer, cls_name))(**kwargs)


class Objective(ELBOModule):
    """Pyro's ELBO as a module (``elbo(model, guide)``): ``forward(x[, y])`` is the ELBO's
    ``differentiable_loss`` (value = the loss, gradient = the ELBO's gradient estimate), and the
    story is a submodule, so ``parameters()``, a plain optimizer and ``DistributedDataParallel``
    see exactly the story's parameters.

    An empty batch (a rank's shard of the last global batch) gives a zero loss connected to every
    parameter, so that all ranks take part in the gradient all-reduce.
    """

    def __init__(self, story: torch.nn.Module, elbo: pyro.infer.ELBO):
        super().__init__(story.model, story.guide, elbo)
        self.story = story  # a submodule: its parameters are this module's

    def forward(self, x: torch.Tensor, *rest: Any) -> torch.Tensor:
        if len(x) == 0:
            return sum((p.sum() * 0.0 for p in self.parameters() if p.requires_grad), x.new_zeros(()))
        return self.elbo.differentiable_loss(self.model, self.guide, x, *rest)


class SVIStep:
    """One SVI step as plain PyTorch: :class:`Objective` forward, ``backward``, one
    ``torch.optim.Adam`` over the story's parameters (same loss and gradients as ``SVI.step``).

    Why not ``pyro.infer.SVI``: its per-step tracing of every parameter and the per-step
    ``pyro.module`` registration cost more than the maths of a small network. Here the story's
    modules are registered with Pyro once (the first step, traced to find ``pyro.param`` sites
    outside the modules); later steps skip ``register_params`` and Pyro's argument/support
    validation (the loss is the same; a NaN still stops training, as a non-finite loss), and a
    parameter made lazily later is picked up from the param store.

    :param story: the model (``nn.Module`` with ``model``/``guide``).
    :param elbo: a Pyro ELBO (:func:`make_elbo`).
    :param lr: Adam learning rate.
    :param clip_norm: clip the global gradient norm to this value (``None``: no clipping).
    """

    def __init__(self, story: torch.nn.Module, elbo: pyro.infer.ELBO, *, lr: float, clip_norm: float | None = None):
        self.story, self.clip_norm = story, clip_norm
        self.objective = Objective(story, elbo)
        self.module: torch.nn.Module = self.objective  # what runs forward (DDP wraps it: infer.distributed)
        self.grad_scale = 1.0  # DDP averages gradients over ranks; Pyro's losses are sums
        # one group of the module parameters (possibly empty: a story of pyro.param sites only)
        self.optim = torch.optim.Adam([{"params": [p for p in story.parameters() if p.requires_grad]}], lr=lr)
        self._known = {id(p) for g in self.optim.param_groups for p in g["params"]}
        self._store_names: set[str] | None = None  # param-store names seen so far (None: first step to come)

    @property
    def params(self) -> list[torch.Tensor]:
        """Every tensor the optimizer updates, in a fixed order."""
        return [p for g in self.optim.param_groups for p in g["params"]]

    def backward(self, *args: Any) -> torch.Tensor:
        """Forward and backward of one batch; leaves the gradients in ``.grad``; returns the loss."""
        self.optim.zero_grad(set_to_none=True)
        store = pyro.get_param_store()
        if self._store_names is None:
            with poutine.trace(param_only=True) as capture:
                loss = self.module(*args)
            self._adopt(site["value"].unconstrained() for site in capture.trace.nodes.values())
            self._store_names = set(store.keys())
        else:
            with registered_quietly(self.story):  # registered and validated by the first step
                loss = self.module(*args)
            if len(store) != len(self._store_names):  # a pyro.param made lazily in this step
                new = set(store.keys()) - self._store_names
                self._adopt(store[name].unconstrained() for name in sorted(new))
                self._store_names |= new
        (loss * self.grad_scale if self.grad_scale != 1.0 else loss).backward()
        return loss

    def __call__(self, *args: Any) -> float:
        """One step on a batch: ``step(x)`` or ``step(x, y)``; returns the loss as a float."""
        return self.update(self.backward(*args))

    def update(self, loss: torch.Tensor) -> float:
        """Clip (``clip_norm``) and apply the gradients in ``.grad``; the loss as a float
        (also used by :class:`probgen.infer.compiled.CompiledStep`)."""
        if self.clip_norm is not None:  # the global norm over all parameters together
            torch.nn.utils.clip_grad_norm_([p for p in self.params if p.grad is not None], self.clip_norm)
        self.optim.step()
        return self.loss_value(loss)

    def loss_value(self, loss: torch.Tensor) -> float:
        """The step's loss as a float (``infer.distributed`` sums it over ranks). One host sync per
        step, as ``SVI.step`` has (Pyro's ``differentiable_loss`` syncs anyway)."""
        return torch_item(loss.detach())

    def _adopt(self, tensors) -> None:
        extra = [t for t in tensors if t.requires_grad and id(t) not in self._known]
        if extra and self.module is not self.objective:  # DDP syncs module parameters only
            raise ValueError(f"{type(self.story).__name__}: distributed training needs every parameter to be a "
                             "module parameter (nn.Parameter), but the story makes pyro.param sites of its own")
        if extra:  # pyro.param sites that are not module parameters (user stories)
            self.optim.add_param_group({"params": extra})
            self._known |= {id(t) for t in extra}

    # -- resume --------------------------------------------------------------------------
    def state(self) -> dict:
        """The optimizer state of the story's parameters (what the resume file keeps)."""
        state = self.optim.state_dict()
        return {"state": {i: s for i, s in state["state"].items() if i < len(state["param_groups"][0]["params"])},
                "param_groups": state["param_groups"][:1]}

    def load_state(self, saved: dict, lr: float) -> None:
        """Restore :meth:`state` (or the per-parameter Pyro optimizer state of older resume
        files); the learning rate of this run wins over the saved one."""
        if "param_groups" not in saved:  # older files: {parameter name: torch Adam state of that tensor}
            names = [n for n, p in self.story.named_parameters() if p.requires_grad]
            template = self.optim.state_dict()
            saved = {"state": {i: saved[n]["state"][0] for i, n in enumerate(names)
                               if n in saved and saved[n].get("state")},
                     "param_groups": template["param_groups"][:1]}
            if set(saved["state"]) and len(names) != len(template["param_groups"][0]["params"]):
                raise ValueError("parameters do not match")
        self.optim.load_state_dict({"state": saved["state"], "param_groups": saved["param_groups"]})
        for group in self.optim.param_groups:
            group["lr"] = lr


def _mean_loss(elbo, story, x, y, batch_size: int) -> float:
    """Loss per example (negative ELBO) over a whole data set, no gradients."""
    total = 0.0
    with torch.no_grad():
        for xb, yb in batches(x, batch_size, y=y):
            args = (xb,) if yb is None else (xb, yb)
            total += float(elbo.loss(story.model, story.guide, *args))
    return total / len(x)


def _check_options(x, y, val, val_y, epochs, batch_size, num_particles, lr, patience, clip_norm, unknown) -> None:
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
    callbacks: Sequence[Callback] = (),
    log_dir: str | Path | None = None,
    compile: bool | str | None = None,
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
    :param distributed: a :class:`probgen.infer.distributed.Distributed` inside a ``torchrun`` job:
        each rank computes the gradient of its shard of every batch, gradients are all-reduced,
        and rank 0 alone shows progress and writes checkpoints (``None``: one process).
    :param callbacks: :class:`probgen.infer.callbacks.Callback` objects (logging hooks).
    :param log_dir: write TensorBoard logs here (:mod:`probgen.infer.tensorboard`; rank 0 only).
    :param compile: capture the step once and run it under ``torch.compile`` (``True``/``"inductor"``)
        or as a traced graph (``"trace"``); a dynamic story trains eagerly after one notice
        (:mod:`probgen.infer.compiled`). ``None`` (default): the traced graph for a story declaring
        ``static_graph = True`` on a fit of at least ``compiled.AUTO_MIN_STEPS`` steps, silently
        eager otherwise; ``False``: always eager.
    :raises DivergenceError: the loss became NaN/inf; the best state so far is restored.
    """
    _check_options(x, y, val, val_y, epochs, batch_size, num_particles, lr, patience, clip_norm, unknown)
    from .compiled import auto_backend, check_compile, compile_step  # same layer; compiled.py builds on this

    backend = check_compile(compile)
    result = TrainResult()
    ckpt = Checkpointer(story, checkpoint)

    # -- the objective (Pyro's ELBO as a module) and one torch optimizer over its parameters
    svi_elbo = make_elbo(elbo, num_particles=num_particles, max_plate_nesting=story.max_plate_nesting)
    # validation uses the non-JIT twin: same objective, any batch shape (IWAE: the same k-sample bound)
    val_elbo = make_elbo(elbo.replace("jit-", "").replace("jit", "trace"),
                         num_particles=num_particles if elbo == "iwae" else 1,
                         max_plate_nesting=story.max_plate_nesting)
    step_fn = SVIStep(story, svi_elbo, lr=lr, clip_norm=clip_norm)

    start_epoch, shuffle_state, stopper = 0, None, EarlyStopping(patience)
    best_state = copy.deepcopy(story.state_dict())
    saved = ckpt.resume() if resume else None
    if saved is not None:
        ex, optim_state = saved
        try:  # a resume file from other settings (z_dim, hidden, ...) or without training state
            best_state = ex["best_state_dict"]
            start_epoch = ex["epoch"] + 1
            stopper.load_state(ex)
            result.history, result.steps = ex["history"], ex.get("steps", 0)
            step_fn.load_state(optim_state, lr)  # the --lr of this call wins over the saved one
            set_rng_state(ex["rng"])
        except (KeyError, TypeError, RuntimeError, ValueError) as e:
            raise ckpt.cannot_resume(e) from None
        shuffle_state = ex.get("shuffle_rng")

    shuffle_gen = torch.Generator()
    if shuffle_state is not None:  # resume the batch order too: resumed == uninterrupted, bit for bit
        shuffle_gen.set_state(shuffle_state)
    else:
        shuffle_gen.manual_seed(int(torch.randint(0, 2**31 - 1, (1,))))
    mean_loss = _mean_loss
    if distributed is not None:  # same batches on every rank, each steps on its shard (infer.distributed)
        distributed.prepare(step_fn, shuffle_gen)
        mean_loss = distributed.mean_loss
        if not distributed.is_main:  # rank 0 alone shows progress and writes checkpoints
            progress = False
            ckpt.disable()
    drop_last = ELBOS[elbo][1] and len(x) > batch_size  # JIT traces one batch shape
    n_batches = len(x) // batch_size if drop_last else math.ceil(len(x) / batch_size)
    auto = compile is None and elbo in ("trace", "meanfield")
    if auto:
        backend = auto_backend(story, n_batches * max(epochs - start_epoch, 0), distributed is not None)
    step_fn = compile_step(step_fn, backend, elbo=elbo, num_particles=num_particles,
                           distributed=distributed is not None, quiet=auto)
    hparams = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "elbo": elbo, "num_particles": num_particles,
               "patience": patience, "clip_norm": clip_norm, "n_train": len(x)}
    if distributed is not None and not distributed.is_main:
        log_dir = None
    hooks = Callbacks(callbacks, Trainer("svi", story, result), log_dir=log_dir, hparams=hparams)
    hooks.begin()
    t0 = time.perf_counter()
    bar = progress_bar(range(start_epoch, epochs), enabled=progress, desc=f"train {story.kind}")
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
                    f"(best state from epoch {stopper.best_epoch + 1} kept"
                    + (f", checkpoint {ckpt.best} untouched)" if ckpt.best else ")")
                    + "; try a smaller --lr or gradient clipping")
            total, seen, result.steps = total + loss, seen + len(xb), result.steps + 1
            if hooks.callbacks:  # per-step scalars (TensorBoard): loss per example of this batch
                hooks.step_end({"step": result.steps, "loss": loss / max(len(xb), 1)})
            if progress and step % 10 == 0:
                bar.set_postfix(loss=f"{total / seen:.3f}", step=f"{step + 1}/{n_batches}")
        story.eval()
        record = {"epoch": epoch + 1, "train_loss": total / max(seen, 1),
                  "seconds": time.perf_counter() - t0, "lr": lr}  # lr: a resumed run may change it
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
        stop = hooks.epoch_end(record)
        if distributed is not None:  # a time limit read on each rank's clock: rank 0's decision for all
            stop = distributed.agree(stop)
        result.history.append(record)
        improved = stopper.update(epoch, score)
        result.best_epoch, result.best_val = stopper.best_epoch, stopper.best_val
        if improved:
            best_state = copy.deepcopy(story.state_dict())
            ckpt.save_best({"epoch": epoch + 1, "history": result.history})
        if progress:
            bar.set_postfix(loss=f"{record['train_loss']:.3f}",
                            val=f"{record.get('val_loss', float('nan')):.3f}")
        if ckpt.last is not None:
            ckpt.save_last({
                "epoch": epoch, **stopper.state(), "history": result.history, "steps": result.steps,
                "best_state_dict": best_state, "rng": rng_state(), "shuffle_rng": shuffle_gen.get_state(),
            }, step_fn.state())
        if stop or stopper.should_stop:
            result.stopped_early = True
            break
    story.load_state_dict(best_state)
    story.eval()
    result.best_epoch, result.best_val = stopper.best_epoch, stopper.best_val  # also when no epoch ran
    result.seconds = time.perf_counter() - t0
    hooks.end()
    return result


def fit_story(story, x, *, y=None, val=None, val_y=None, elbo: str | None = None, check: bool = True,
              **options: Any) -> TrainResult:
    """The SVI trainer as :func:`probgen.infer.train` calls it, on prepared data: build an automatic
    guide, run the story check (clear errors naming the site; ``TraceEnum_ELBO`` when a site is
    enumerated), then :func:`fit_svi`.

    :param elbo: objective name (:data:`ELBOS`); ``None``/``"auto"``: the story's declared ``elbo``.
    :param check: run the story once on a few examples first.
    """
    if story.autoguide is not None and story._modules.get("_autoguide") is None:
        story._setup_autoguide(x, y)  # before fit_svi copies the state
    if check:
        story.checked = story.check(x, y, elbo=elbo)
        elbo = story.checked.elbo
    elif elbo in (None, "auto"):
        elbo = "trace" if story.elbo == "auto" else story.elbo
    return fit_svi(story, x, y=y, val=val, val_y=val_y, elbo=elbo, **options)


def _diverged(story: torch.nn.Module, error: Exception) -> bool:
    """Was this ValueError raised because parameters or values became NaN/inf?"""
    if not all(bool(torch.isfinite(p).all()) for p in story.parameters()):
        return True
    first = str(error).split("Trace Shapes")[0].lower()
    return "found invalid values" in first and ("nan" in first or "inf" in first)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)
