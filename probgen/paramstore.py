"""A param store of its own for each wrapped Pyro program (:class:`probgen.adapt.PyroProgram`).

Pyro keeps every ``pyro.param`` in one global store, and ``PyroModule`` (hence every autoguide) reads
and writes that store directly, by its own names (``AutoDelta.weights``), besides calling
``pyro.param``. Renaming ``pyro.param`` calls cannot reach those direct accesses, so a wrapped program
runs with the global store's tables swapped for its own (:func:`private_store`): inside, the program
sees the names it chose, exactly as under plain Pyro; outside, nothing of it leaks into another
program. Each entry is also shown in the global store under ``<wrapper>$$$<name>`` (:func:`mirror`), so
a trainer that looks for parameters made lazily finds them there.

An autoguide set up by one wrapper and then run by another (a module-level ``guide = AutoDelta(...)``
wrapped twice, or trained and loaded back in one process) is set up again (:func:`rebind`), so that
each wrapper's parameters are its own.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import pyro
from torch import nn

__all__ = ["new_tables", "private_store", "mirror", "find_autoguides", "rebind"]


def new_tables() -> list:
    """Empty ``[params, param_to_name, constraints]`` tables of a param store."""
    return [{}, {}, {}]


@contextmanager
def private_store(tables: list) -> Iterator[None]:
    """Run with the global param store's tables replaced by ``tables`` (changed in place: what the
    program adds stays there; a ``pyro.clear_param_store()`` inside is kept as an emptied table)."""
    store = pyro.get_param_store()
    saved = store._params, store._param_to_name, store._constraints
    store._params, store._param_to_name, store._constraints = tables
    try:
        yield
    finally:
        tables[:] = [store._params, store._param_to_name, store._constraints]
        store._params, store._param_to_name, store._constraints = saved


def mirror(tables: list, prefix: str) -> None:
    """Show every entry of ``tables`` in the global store as ``prefix + name`` (the same tensors)."""
    store = pyro.get_param_store()
    params, _, constraints = tables
    for name, p in params.items():
        full = prefix + name
        if store._params.get(full) is not p:
            store._params[full], store._constraints[full] = p, constraints.get(name)
            store._param_to_name[p] = full


def find_autoguides(*objects) -> list:
    """The Pyro autoguides set up from a prototype trace (``AutoDelta``, ``AutoNormal``, the ``AutoContinuous``
    family, ``AutoGuideList``, ...) among ``objects``, their submodules, and the globals of the functions
    among them (a module-level ``guide = AutoNormal(model)`` that a guide function calls). Their parameters
    are made by ``pyro.param`` statements on the first call; the ``AutoMessenger`` guides keep theirs as
    plain module parameters and are not listed."""
    from pyro.infer.autoguide import AutoGuide

    seen, found = set(), []

    def add(obj) -> None:
        if isinstance(obj, nn.Module) and id(obj) not in seen:
            seen.add(id(obj))
            found.extend(m for m in obj.modules() if isinstance(m, AutoGuide) and m not in found)

    for obj in objects:
        fn = getattr(obj, "__func__", obj)  # a bound method: its function's globals
        for value in list(getattr(fn, "__globals__", {}).values()):
            add(value)
        for value in list(vars(obj).values()) if hasattr(obj, "__dict__") and not isinstance(obj, nn.Module) else ():
            add(value)
        add(obj)
    return found


def rebind(guides: list, owner: str) -> None:
    """Set up again, on their next call, the autoguides last set up by another wrapper than ``owner``: their
    parameters then come from ``owner``'s own store and state (call it inside ``private_store``)."""
    for guide in guides:
        bound = guide.__dict__.get("_probgen_bound")
        if bound != owner:
            if bound is not None and guide.prototype_trace is not None:
                guide.prototype_trace = None  # the next call runs _setup_prototype: this wrapper's parameters
                if "_probgen_model" in guide.__dict__:  # AutoGaussian lets go of its model once set up
                    guide._original_model = guide.__dict__["_probgen_model"]
            elif "_original_model" in guide.__dict__ and guide._original_model is not None:
                guide.__dict__["_probgen_model"] = guide._original_model
            guide.__dict__["_probgen_bound"] = owner
