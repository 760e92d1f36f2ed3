"""A generative story: a Pyro ``model`` and ``guide`` with probgen's API around them.

Subclass :class:`Story`, write ``model(x, y=None)`` and ``guide(x, y=None)`` with the
same sample-site names, and you get ``fit`` (the SVI loop of :mod:`probgen.train`),
``log_prob`` (exact or importance-weighted, :mod:`probgen.evaluate`), ``save`` and
``load`` (safe checkpoints that rebuild the model from its constructor arguments).

Constructor arguments are recorded automatically, so they must be plain values
(numbers, strings, lists, dicts) and should be keyword-only.
"""
from __future__ import annotations

import functools
import inspect
import itertools
from pathlib import Path
from typing import Any, ClassVar

import pyro
import torch
from torch import nn

from . import evaluate, train
from .io import load_checkpoint, save_checkpoint

__all__ = ["Story", "REGISTRY", "register", "check_data"]

#: kind name -> Story subclass, filled as subclasses are defined
REGISTRY: dict[str, type["Story"]] = {}
_instance_ids = itertools.count()


def register(cls: type["Story"]) -> type["Story"]:
    """Make a Story subclass loadable by its ``kind`` name."""
    REGISTRY[cls.kind] = cls
    return cls


def check_data(x, *, x_dim: int | None = None, binary: bool = False, name: str = "x") -> torch.Tensor:
    """Validate a data tensor for a model: numeric, finite, non-empty, right size, range.

    :param x: data ``[n, ...]`` (tensor or array).
    :param x_dim: number of values per example the model expects (``None``: any).
    :param binary: values must lie in [0, 1] (Bernoulli likelihood).
    :raises ValueError: naming the problem.
    """
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x)
        except Exception:  # noqa: BLE001
            raise ValueError(f"{name}: expected a tensor or array, got {type(x).__name__}") from None
    if x.dtype == torch.bool or not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int32, torch.int64)):
        if x.dtype != torch.bool:
            raise ValueError(f"{name}: expected numbers, got dtype {x.dtype}")
    x = x.float() if not x.is_floating_point() else x
    if x.dim() == 0:
        raise ValueError(f"{name}: expected a batch [n, ...], got a scalar")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: empty data (shape {tuple(x.shape)})")
    if x_dim is not None and x[0].numel() != x_dim:
        raise ValueError(f"{name}: each example must have {x_dim} values, got shape {tuple(x.shape[1:])} "
                         f"({x[0].numel()} values)")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: data contains NaN or inf")
    if binary and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name}: a Bernoulli likelihood needs values in [0, 1], "
                         f"got {float(x.min()):.3g}..{float(x.max()):.3g}")
    return x


class Story(nn.Module):
    """Base class of every probgen model (and of the user's own stories).

    Class attributes a subclass may set:

    - ``kind``: registry name, used in checkpoints (``"vae"``); defaults to the class name.
    - ``elbo``: default objective name for :func:`probgen.train.make_elbo`
      (``"trace"``, ``"meanfield"``, ``"enum"`` when the story enumerates a discrete site, ...).
    - ``has_exact_log_prob``: ``log_prob`` is exact, so no importance sampling is needed.
    - ``max_plate_nesting``: plates nested in ``model``.
    """

    kind: ClassVar[str] = "story"
    elbo: ClassVar[str] = "trace"
    has_exact_log_prob: ClassVar[bool] = False
    max_plate_nesting: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "kind" not in cls.__dict__:
            cls.kind = cls.__name__.lower()
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = _recording_init(init)
        register(cls)

    # -- identity ---------------------------------------------------------------
    @property
    def config(self) -> dict:
        """The constructor arguments this model was built with."""
        return dict(getattr(self, "_probgen_config", {}))

    @property
    def pyro_name(self) -> str:
        """Name of this instance's parameters in Pyro's param store (unique per instance,
        so two models never share parameters by accident)."""
        name = self.__dict__.get("_pyro_name")
        if name is None:
            name = f"{self.kind}_{next(_instance_ids)}"
            object.__setattr__(self, "_pyro_name", name)
        return name

    def register_params(self) -> None:
        """Register this module's parameters with Pyro (``pyro.module``); call it in
        ``model`` and ``guide``."""
        pyro.module(self.pyro_name, self)

    def n_params(self) -> int:
        """Number of trainable numbers."""
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        for t in itertools.chain(self.parameters(), self.buffers()):
            return t.device
        return torch.device("cpu")

    # -- the probabilistic program -------------------------------------------------
    def model(self, x: torch.Tensor | None, y: torch.Tensor | None = None):
        raise NotImplementedError(f"{type(self).__name__} must define model(x, y=None)")

    def guide(self, x: torch.Tensor | None, y: torch.Tensor | None = None):
        """Default guide: no latent sites (the model is fitted by maximum likelihood)."""
        self.register_params()

    def prepare(self, x, y=None):
        """Validate and reshape user data before fitting or scoring; override per model."""
        return check_data(x), y

    # -- the probgen API ---------------------------------------------------------
    def fit(self, x, *, y=None, val=None, val_y=None, epochs: int = 20, batch_size: int = 128,
            lr: float = 1e-3, elbo: str | None = None, progress: bool = True,
            checkpoint: str | Path | None = None, resume: bool = False, patience: int | None = 10,
            **options: Any) -> "Story":
        """Train by SVI (see :func:`probgen.train.fit_svi` for every option).

        :param x: training data ``[n, ...]``; ``y``: labels for conditional models.
        :param val: validation data (early stopping, best-model selection).
        :return: ``self``, trained; ``self.train_result`` holds the history.
        """
        x, y = self.prepare(x, y)
        if val is not None:
            val, val_y = self.prepare(val, val_y)
        x = x.to(self.device)
        self.train_result = train.fit_svi(
            self, x, y=y, val=None if val is None else val.to(self.device), val_y=val_y,
            epochs=epochs, batch_size=batch_size, lr=lr, elbo=elbo or self.elbo, progress=progress,
            checkpoint=checkpoint, resume=resume, patience=patience, **options)
        return self

    def log_prob(self, x, y=None, *, num_samples: int = 1000) -> torch.Tensor:
        """Per-example log p(x) in nats: exact if the model has it, else IWAE with K samples."""
        x, y = self.prepare(x, y)
        return evaluate.log_likelihood(self, x.to(self.device), y=y, num_samples=num_samples)

    def sample(self, n: int, **kwargs) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not define sample(n)")

    def save(self, path: str | Path, *, extra: dict | None = None) -> Path:
        """Write a checkpoint (constructor arguments + state) atomically."""
        return save_checkpoint(path, kind=self.kind, config=self.config,
                               state_dict=self.state_dict(), extra=extra)

    @classmethod
    def from_checkpoint(cls, payload: dict, *, device: str | torch.device = "cpu") -> "Story":
        """Rebuild a model from a loaded checkpoint dict."""
        if cls is not Story and payload["kind"] != cls.kind:
            raise ValueError(f"checkpoint holds a {payload['kind']!r} model, not {cls.kind!r}")
        target = REGISTRY.get(payload["kind"]) if cls is Story else cls
        if target is None:
            raise ValueError(f"checkpoint holds an unknown model kind {payload['kind']!r}")
        try:
            model = target(**payload["config"])
            model.load_state_dict(payload["state_dict"])
        except (TypeError, RuntimeError) as e:
            raise ValueError(f"checkpoint does not fit {target.__name__}: {str(e).splitlines()[0]}") from None
        model.checkpoint_extra = payload.get("extra", {})
        return model.to(device).eval()

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "cpu") -> "Story":
        """Load a checkpoint written by :meth:`save` (``weights_only``: runs no code)."""
        payload = load_checkpoint(path)
        try:
            return cls.from_checkpoint(payload, device=device)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


def _recording_init(init):
    sig = inspect.signature(init)

    @functools.wraps(init)
    def wrapped(self, *args, **kwargs):
        if "_probgen_config" not in self.__dict__:  # the outermost class records
            try:
                bound = sig.bind(self, *args, **kwargs)
            except TypeError as e:
                raise ValueError(f"{type(self).__name__}: {e}") from None
            bound.apply_defaults()
            cfg = {}
            for name, value in list(bound.arguments.items())[1:]:
                kind = sig.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    cfg.update(value)
                elif kind is inspect.Parameter.VAR_POSITIONAL:
                    if value:
                        raise ValueError(f"{type(self).__name__}: *args cannot be recorded in a checkpoint")
                else:
                    cfg[name] = value
            object.__setattr__(self, "_probgen_config", cfg)
        init(self, *args, **kwargs)

    return wrapped
