"""The compiled SVI step: ``fit(..., compile=True)`` / ``probgen train MODEL --compile``.

For a story whose structure does not change between steps, Pyro's per-step work (tracing the
model and guide, building the ELBO, running autograd's Python hooks) gives the same aten
operations every step. This module captures them once:

1. the first step is the ordinary eager step (it registers the story's modules with Pyro);
2. ``make_fx`` runs ``(parameters, x) -> (loss, gradients)`` once, with Pyro's
   ``differentiable_loss`` and ``torch.autograd.grad`` inside, and keeps the aten graph: Pyro's
   Python disappears, random draws stay as RNG operations of the graph;
3. on the next batches (``verify``, default 2) the eager step and the graph run from the same
   random state: the loss and every gradient must agree to 1e-5 (relative) and consume the same
   random numbers, else the story is dynamic and training goes on eagerly;
4. the graph runs under ``torch.compile`` (inductor, ``fallback_random``: the draws are eager's,
   so a compiled run follows the eager one and resume stays bit-identical), or as is
   (``compile="trace"``: no compiler needed, no warm-up), or, on CUDA (``compile="cudagraph"``),
   captured whole with the optimizer's update in one CUDA graph: a step is then one copy of the
   batch and one graph launch. Adam runs ``capturable`` (its step count on the device) from the
   first step, so eager and captured steps do the same arithmetic; the graph's draws come from
   the same Philox stream as eager's, so resume stays bit-identical there too.

Before any of this the graph is pruned of operations whose results nothing reads (Pyro's float
reads of the loss become ``aten._local_scalar_dense``: a host sync a CUDA graph cannot hold);
random draws are kept even when unread, so the random stream stays eager's.

A batch of another shape (the partial last batch of an epoch) takes the eager step: same loss,
same optimizer, no second compilation. Whatever stops the compiled path (tracing fails, the
check fails, the story draws Python/NumPy random numbers, ``pyro.param`` sites outside the
modules, buffers, ``--distributed``, inductor unavailable) prints one line and training goes on.
The traced graphs are kept on the story, so a second ``fit`` does not trace again.
"""
from __future__ import annotations

import random
import time
from typing import Any, Callable

import numpy as np
import torch

from ..runtime import log, registered_quietly
from .graphs import capture_blocker, prune
from .objective import Objective, SVIStep, make_elbo

__all__ = ["AUTO_MIN_STEPS", "AUTO_MIN_STEPS_CUDA", "BACKENDS", "DEFAULT_BACKEND", "CompiledStep", "auto_backend", "check_compile",
           "compile_step"]

#: ``compile=`` values: ``True`` means :data:`DEFAULT_BACKEND`.
BACKENDS = ("inductor", "trace", "cudagraph")
DEFAULT_BACKEND = "inductor"
RTOL = 1e-5  # the eager and the captured loss/gradients agree to this (relative to their size)


#: ``compile=None`` (the default, "auto"): a story not declared dynamic (``static_graph`` True: the
#: built-in VAE, CVAE, hierarchical VAE and PPCA; ``None``: a user's story, which the check on the
#: first batches decides, with one line if it falls back) takes the fast step once a fit plans
#: enough steps for the capture to pay: on the CPU the traced graph replayed (``"trace"``; the
#: capture, ~0.3 s, is paid back by the ~1 ms a step that Pyro's tracing costs) after
#: AUTO_MIN_STEPS steps; on CUDA the same traced graph after AUTO_MIN_STEPS_CUDA (measured on an
#: H200: 1.47 s an epoch against 2.2 s eager). The whole step as one CUDA graph (``"cudagraph"``)
#: is opt-in: it has not yet run on a GPU.
AUTO_MIN_STEPS = 500
AUTO_MIN_STEPS_CUDA = 100


def auto_backend(story: Any, planned_steps: int, distributed: bool = False) -> str | None:
    """The backend ``compile=None`` picks for this story, device and fit length (``None``: eager).

    :param story: a :class:`probgen.story.Story` (its ``static_graph`` declaration and device).
    :param planned_steps: the SVI steps the fit will take.
    :param distributed: the fit runs under DDP (never captured).
    """
    if distributed or story.static_graph is False:
        return None
    if story.device.type == "cuda":  # "cudagraph" stays opt-in until it has run on a GPU (see the README)
        return "trace" if planned_steps >= AUTO_MIN_STEPS_CUDA else None
    return "trace" if planned_steps >= AUTO_MIN_STEPS else None


def check_compile(value: Any) -> str | None:
    """``compile=`` option → backend name (``None``: off); one-line error for anything else."""
    if value is False or value is None:
        return None
    if value is True:
        return DEFAULT_BACKEND
    if isinstance(value, str) and value in BACKENDS:
        return value
    raise ValueError(f"compile must be True, False or one of {', '.join(BACKENDS)}, got {value!r}")


def compile_step(step: SVIStep, backend: str | None, *, elbo: str, num_particles: int = 1,
                 distributed: bool = False, quiet: bool = False) -> SVIStep | "CompiledStep":
    """Wrap ``step`` in a :class:`CompiledStep` (``backend`` from :func:`check_compile`), or
    return it unchanged with a one-line notice when compilation cannot apply (``quiet``: the
    automatic choice, no notice)."""
    if backend is None:
        return step
    if distributed:
        log("compile: not used with --distributed (DistributedDataParallel syncs inside backward); "
            "training eagerly")
        return step
    return CompiledStep(step, backend=backend, elbo=elbo, num_particles=num_particles, quiet=quiet)


class _Graphs(dict):
    """Traced graphs kept on a story (``story.__dict__``); copies and pickles start empty."""

    def __deepcopy__(self, memo):
        return _Graphs()

    def __reduce__(self):
        return _Graphs, ()


class CompiledStep:
    """An :class:`~probgen.infer.objective.SVIStep` whose loss and gradients come from a captured graph.

    Same interface as the step it wraps (``step(x[, y]) -> float``, ``state``, ``load_state``);
    the optimizer, clipping and the resume state are the wrapped step's.

    :param step: the eager step (its optimizer is used).
    :param backend: ``"inductor"`` (``torch.compile`` of the graph) or ``"trace"`` (the graph as is).
    :param elbo: the objective's name; a ``jit`` ELBO is captured through its non-JIT twin.
    :param verify: batches on which the graph is checked against the eager step.
    :param quiet: fall back to the eager step without the one-line notice (the automatic choice).
    """

    def __init__(self, step: SVIStep, *, backend: str, elbo: str, num_particles: int = 1, verify: int = 2,
                 quiet: bool = False):
        self.step, self.story, self.backend = step, step.story, backend
        twin = elbo.replace("jit-", "").replace("jit", "trace")
        self.elbo_name = twin
        self.objective = Objective(self.story, make_elbo(twin, num_particles=num_particles,
                                                         max_plate_nesting=self.story.max_plate_nesting))
        self.num_particles, self.verify, self.quiet = num_particles, verify, quiet
        self.active = True  # False once fallen back to the eager step
        self.compiled_steps = 0  # steps taken through the graph (tests and the bench read it)
        self.capture_seconds = 0.0  # tracing, compiling and capturing, paid once per batch shape
        self._cuda: tuple | None = None  # (CUDA graph, static inputs, static loss) once captured
        if backend == "cudagraph":
            if self.story.device.type != "cuda":
                log(f"compile: cudagraph needs the story on CUDA (it is on {self.story.device}); "
                    "replaying the traced graph instead")
                self.backend = "trace"
            else:
                _capturable(step.optim)
        self._graph: Callable | None = None
        self._params_key: tuple | None = None
        self._key: tuple | None = None
        self._checks_left = verify
        self._started = False

    # -- the wrapped step's interface ----------------------------------------------------
    @property
    def params(self) -> list[torch.Tensor]:
        return self.step.params

    def state(self) -> dict:
        return self.step.state()

    def load_state(self, saved: dict, lr: float) -> None:
        self.step.load_state(saved, lr)
        if self.backend == "cudagraph":
            _capturable(self.step.optim)

    def __call__(self, *args: Any) -> float:
        if not self.active:
            return self.step(*args)
        if not self._started:  # the eager first step registers the modules and finds pyro.param sites
            self._started = True
            loss = self.step(*args)
            self._static_checks()
            return loss
        key = self._key_of(args)
        if self._graph is None:
            self._build(key, args)
        if not self.active or key != self._key:  # another batch shape (the last, partial one): eager
            return self.step(*args)
        if self._checks_left:
            return self._checked_step(args)
        if self.backend == "cudagraph":
            if self._cuda is None:
                self._capture(args)
            if self._cuda is not None:
                self.compiled_steps += 1
                return self.step.loss_value(self._replay(args))
        loss = self._run(args)
        self.compiled_steps += 1
        return self.step.update(loss)

    # -- capture -----------------------------------------------------------------------------
    def _fallback(self, why: str) -> None:
        self.active = False
        if not self.quiet:
            log(f"compile: {why}; training {type(self.story).__name__} eagerly (same loss)")

    def _static_checks(self) -> None:
        own = [p for p in self.story.parameters() if p.requires_grad]
        if len(self.step.optim.param_groups) > 1:
            self._fallback("the story has pyro.param sites outside its modules")
        elif not own:
            self._fallback("the story has no module parameters to train")
        elif any(True for _ in self.story.buffers()):
            self._fallback("the story has buffers (e.g. batch-norm statistics) that a step may change")
        elif [id(p) for p in own] != [id(p) for p in self.params]:
            self._fallback("the optimizer's parameters are not the story's")

    def _key_of(self, args: tuple) -> tuple:
        if self._params_key is None:  # the parameters' shapes do not change within a fit: read them once
            self._params_key = tuple((n, tuple(p.shape), p.dtype, p.device)
                                     for n, p in self.story.named_parameters() if p.requires_grad)
        return (self.elbo_name, self.num_particles, self.backend, self.story.training, self._params_key,
                tuple((tuple(a.shape), a.dtype, a.device) if torch.is_tensor(a) else repr(a) for a in args))

    def _build(self, key: tuple, args: tuple) -> None:
        graphs = self.story.__dict__.setdefault("_compiled_graphs", _Graphs())
        self._key = key
        if key in graphs:  # traced and checked by an earlier fit of this story
            self._graph, self._checks_left = graphs[key], 0
            return
        names = [n for n, p in self.story.named_parameters() if p.requires_grad]
        fn = _loss_and_grads(self.objective, self.story, names)
        saved = _torch_rng(self.story)
        t0 = time.perf_counter()
        try:
            graph = prune(_make_fx(fn, [p.detach() for p in self.params], args))
        except Exception as e:  # noqa: BLE001 - any failure to capture means: not static
            _set_torch_rng(self.story, saved)
            self._fallback(f"the story could not be traced ({type(e).__name__}: {_first_line(e)})")
            return
        _set_torch_rng(self.story, saved)
        if self.backend == "inductor":
            graph = self._inductor(graph, args)
            _set_torch_rng(self.story, saved)
        self.capture_seconds += time.perf_counter() - t0
        self._graph = graphs[key] = graph

    def _capture(self, args: tuple) -> None:
        """The whole step (the checked graph, clipping, Adam's update) captured in one CUDA graph;
        on failure, one line and the traced graph replayed instead."""
        params, optim, t0 = self.params, self.step.optim, time.perf_counter()
        blocker = capture_blocker(self._graph)
        if blocker is not None:  # found before capturing: a failed capture can leave CUDA's RNG unusable
            self.backend = "trace"
            log(f"compile: the step cannot be captured in a CUDA graph ({blocker}); replaying the traced graph")
            return
        static = tuple(a.detach().clone() if torch.is_tensor(a) else a for a in args)
        flat = [p.detach() for p in params]
        saved = _torch_rng(self.story)
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up off the capturing stream (cuBLAS workspaces, lazy inits)
                self._graph(flat, *static)
            torch.cuda.current_stream().wait_stream(side)
            _set_torch_rng(self.story, saved)  # the warm-up's draws are not the run's
            graph = torch.cuda.CUDAGraph()
            optim.zero_grad(set_to_none=True)
            with torch.cuda.graph(graph):
                loss, grads = self._graph(flat, *static)
                for p, g in zip(params, grads):
                    p.grad = g
                if self.step.clip_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, self.step.clip_norm)
                optim.step()
        except Exception as e:  # noqa: BLE001 - a host sync or a CPU tensor inside: replay without capture
            _set_torch_rng(self.story, saved)
            self.backend = "trace"
            log(f"compile: the step could not be captured in a CUDA graph ({type(e).__name__}: "
                f"{_first_line(e)}); replaying the traced graph instead")
            return
        self.capture_seconds += time.perf_counter() - t0
        self._cuda = (graph, static, loss)

    def _replay(self, args: tuple) -> torch.Tensor:
        graph, static, loss = self._cuda
        for s, a in zip(static, args):
            if torch.is_tensor(s):
                s.copy_(a)  # into the graph's own input buffer
        graph.replay()  # forward, backward and Adam's update: one launch
        return loss

    def _inductor(self, graph: torch.fx.GraphModule, args: tuple) -> Callable:
        try:
            compiled = torch.compile(graph, dynamic=False, options={"fallback_random": True})
            with torch.no_grad():
                compiled([p.detach() for p in self.params], *args)  # compiles now (warm-up), not mid-check
            return compiled
        except Exception as e:  # noqa: BLE001 - no C++ compiler, an unsupported op, ...
            log(f"compile: torch.compile failed ({type(e).__name__}: {_first_line(e)}); "
                "running the traced graph without it")
            return graph

    def _run(self, args: tuple) -> torch.Tensor:
        params = self.params
        with torch.no_grad():
            loss, grads = self._graph([p.detach() for p in params], *args)
        for p, g in zip(params, grads):
            p.grad = g
        return loss

    def _checked_step(self, args: tuple) -> float:
        """One step whose update is the eager one; the graph's loss and gradients, from the same
        random state, must match it."""
        before, outside = _torch_rng(self.story), _outside_rng()
        loss = self.step.backward(*args)
        eager = [None if p.grad is None else p.grad.clone() for p in self.params]
        after = _torch_rng(self.story)
        if _outside_rng() != outside:
            self._fallback("the story draws Python or NumPy random numbers, which a graph would freeze")
            return self.step.update(loss)
        _set_torch_rng(self.story, before)
        try:
            traced = self._run(args)
            why = _mismatch(loss, eager, traced, [p.grad for p in self.params])
            if why is None and not _same_rng(after, _torch_rng(self.story)):
                why = "it draws a different number of random values"
        except Exception as e:  # noqa: BLE001 - a graph that fails on a new batch is not static
            why = f"{type(e).__name__}: {_first_line(e)}"
        _set_torch_rng(self.story, after)
        for p, g in zip(self.params, eager):
            p.grad = g
        if why is not None:
            self.story.__dict__.get("_compiled_graphs", {}).pop(self._key, None)
            self._fallback(f"the captured step differs from the eager one ({why}): the story is dynamic")
        else:
            self._checks_left -= 1
        return self.step.update(loss)


# -- helpers ----------------------------------------------------------------------------------
def _loss_and_grads(objective: Objective, story: torch.nn.Module, names: list[str]) -> Callable:
    """``(parameters, *args) -> (loss, gradients)``: one Pyro loss and its gradients, the story's
    parameters replaced by the arguments (what ``make_fx`` captures)."""
    prefixed = [f"story.{n}" for n in names]

    def fn(params: list[torch.Tensor], *args: torch.Tensor):
        params = [p.requires_grad_() for p in params]
        with registered_quietly(story):  # registered and validated by the first (eager) step
            loss = torch.func.functional_call(objective, dict(zip(prefixed, params)), args)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return loss.detach(), [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]

    return fn


def _make_fx(fn: Callable, params: list[torch.Tensor], args: tuple) -> torch.fx.GraphModule:
    from torch.fx.experimental.proxy_tensor import make_fx

    # Pyro reads a few values as Python numbers (the float loss beside the differentiable one):
    # in real tracing mode they become constants, which the check on the next batches covers
    return make_fx(fn, _error_on_data_dependent_ops=False)(params, *args)


def _capturable(optim: torch.optim.Optimizer) -> None:
    """Adam with its step count on the device: the form a CUDA graph can hold, used for eager
    steps too so that both do the same arithmetic."""
    for group in optim.param_groups:
        group["capturable"] = True
        for p in group["params"]:
            state = optim.state.get(p, {})
            if torch.is_tensor(state.get("step")) and state["step"].device != p.device:
                state["step"] = state["step"].to(p.device, torch.float32)


def _torch_rng(story: torch.nn.Module) -> tuple:
    device = next(story.parameters()).device
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_torch_rng(story: torch.nn.Module, state: tuple) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], next(story.parameters()).device)


def _same_rng(a: tuple, b: tuple) -> bool:
    return all((x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))
               for x, y in zip(a, b))


def _outside_rng() -> tuple:
    return random.getstate(), repr(np.random.get_state())


def _mismatch(loss, eager: list, traced_loss, traced: list) -> str | None:
    """Why the captured loss/gradients differ from the eager ones (``None``: they agree)."""
    pairs = [("loss", loss.detach(), traced_loss)]
    pairs += [(f"gradient {i}", torch.zeros_like(t) if e is None else e, t) for i, (e, t) in enumerate(zip(eager, traced))]
    for name, e, t in pairs:
        if e.shape != t.shape:
            return f"{name} shape {tuple(t.shape)} vs {tuple(e.shape)}"
        scale = max(1.0, float(e.abs().max())) if e.numel() else 1.0
        err = float((e - t).abs().max()) if e.numel() else 0.0
        if not err <= RTOL * scale:  # also catches NaN
            return f"{name} off by {err:.3g}"
    return None


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else ""
