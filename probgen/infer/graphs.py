"""Passes over a traced step (:mod:`probgen.infer.compiled`): the same results from fewer
operations, and what in it a CUDA graph cannot hold.

A step traced by ``make_fx`` runs every aten operation Pyro's Python made, one Python call each;
on a small network that call, not the arithmetic, is the cost. :func:`prune` removes operations
that change nothing; :func:`capture_blocker` says why a graph cannot be captured before a failed
capture can leave CUDA's random-number state unusable.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

__all__ = ["capture_blocker", "prune"]


def prune(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Fewer operations, the same results: operations that pass their input on unchanged
    (:func:`_identity`) read their input instead, an operation computed twice from the same inputs
    is computed once, and operations whose results nothing reads are erased, newest first (Pyro's
    float reads of the loss among them). Random draws and operations that write into a tensor are left
    alone, so the stream of random numbers and every in-place effect stay eager's."""
    seen: dict = {}
    for node in list(graph.graph.nodes):
        if node.op != "call_function" or not _pure(node.target):
            continue
        same = _identity(node)
        if same is not None:
            node.replace_all_uses_with(same)
            continue
        try:
            key = (node.target, node.args, tuple(sorted(node.kwargs.items())))
            hash(key)
        except TypeError:  # an unhashable argument (a list of sizes is a list): leave it
            continue
        if key in seen:
            node.replace_all_uses_with(seen[key])
        else:
            seen[key] = node
    for node in reversed(list(graph.graph.nodes)):
        if node.op == "call_function" and not node.users and _pure(node.target):
            graph.graph.erase_node(node)
    graph.recompile()
    return graph


def _identity(node: torch.fx.Node) -> torch.fx.Node | None:
    """The input a node merely passes on, bit for bit (``alias``, ``t(t(w))``, ``neg(neg(x))``, an
    ``expand``/``view`` to the shape it has, ``x / 1``, ``x * 1``, ``x ** 1``, ``x + 0``), else ``None``.
    A result the graph returns is kept as its own tensor (a gradient must not be an input)."""
    aten, args = torch.ops.aten, node.args
    src = args[0] if args and isinstance(args[0], torch.fx.Node) else None
    if src is None or any(u.op == "output" for u in node.users) or node.kwargs:
        return None
    if node.target is aten.alias.default:
        return src
    if node.target in (aten.t.default, aten.neg.default) and src.target is node.target:
        return src.args[0] if isinstance(src.args[0], torch.fx.Node) else None
    if not (_same_meta(node, src)):
        return None
    if node.target in (aten.expand.default, aten.view.default):
        return src
    one = {aten.div.Tensor: 1, aten.mul.Tensor: 1, aten.mul.Scalar: 1, aten.pow.Tensor_Scalar: 1, aten.add.Tensor: 0}
    if node.target in one and len(args) == 2 and type(args[1]) in (int, float) and args[1] == one[node.target]:
        return src
    return None


def _same_meta(a: torch.fx.Node, b: torch.fx.Node) -> bool:
    """Same shape, strides and dtype, as traced (``False`` when either is unknown)."""
    ma, mb = a.meta.get("tensor_meta"), b.meta.get("tensor_meta")
    return (ma is not None and mb is not None and ma.shape == mb.shape and ma.stride == mb.stride
            and ma.dtype == mb.dtype)


def capture_blocker(graph: Callable) -> str | None:
    """What in the traced graph a CUDA graph cannot hold: a host sync, an output whose size depends
    on the data, or a tensor made on the CPU (``None``: nothing)."""
    if not isinstance(graph, torch.fx.GraphModule):
        return None
    for node in graph.graph.nodes:
        name = getattr(node.target, "__name__", str(node.target))
        if node.op == "call_function" and any(k in name for k in ("_local_scalar_dense", "nonzero", "masked_select",
                                                                   "unique", "item")):
            return f"it reads a value on the host ({name})"
        val = node.meta.get("val")
        if node.op == "call_function" and torch.is_tensor(val) and val.device.type == "cpu" and val.dim() > 0:
            return f"it makes a tensor on the CPU ({name})"
    return None


def _pure(target: Any) -> bool:
    """An operation that neither draws random numbers nor writes into a tensor."""
    if isinstance(target, torch._ops.OpOverload):
        return not (torch.Tag.nondeterministic_seeded in target.tags or target._schema.is_mutable)
    return True
