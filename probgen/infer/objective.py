"""The SVI objective and one SVI step, as plain PyTorch: what :mod:`.svi` (the trainer),
:mod:`.compiled` (the captured step) and :mod:`.refit` (the guide refitted alone) build on.

- :func:`make_elbo`: a Pyro ELBO by name (:data:`ELBOS`), including :class:`IWAE_ELBO`, the
  importance-weighted bound with the ``differentiable_loss`` a trainer needs;
- :class:`Objective`: the ELBO as a ``torch.nn.Module`` with the story inside (what
  ``DistributedDataParallel`` wraps, :mod:`.distributed`);
- :class:`SVIStep`: forward, backward, clipping and one ``torch.optim.Adam`` step, with the
  optimizer state a resume file keeps.
"""
from __future__ import annotations

import math
from typing import Any

import pyro
import pyro.infer
import pyro.poutine as poutine
import torch
from pyro.infer.elbo import ELBOModule
from pyro.infer.util import torch_item

from ..check import ELBOS  # name -> (Pyro ELBO class name, is_jit)
from ..runtime import registered_quietly

__all__ = ["ELBOS", "IWAE_ELBO", "make_elbo", "Objective", "SVIStep"]


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
        self.optim = _adam([{"params": [p for p in story.parameters() if p.requires_grad]}], lr=lr)
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


def _adam(groups: list[dict], lr: float) -> torch.optim.Adam:
    """Adam with its fused kernel where this torch has one for these tensors (the update of every
    parameter in one pass, same arithmetic: ~3× less optimizer time for a small network on the
    CPU), else the default implementation."""
    try:
        return torch.optim.Adam(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # an older torch, or a device without the fused kernel
        return torch.optim.Adam(groups, lr=lr)

