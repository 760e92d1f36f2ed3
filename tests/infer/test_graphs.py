"""Passes over a traced step: fewer operations, the same results; what a CUDA graph cannot hold."""
import torch
from torch.fx.experimental.proxy_tensor import make_fx

from probgen.infer.graphs import capture_blocker, prune


def _ops(gm):
    return [str(n.target) for n in gm.graph.nodes if n.op == "call_function"]


def test_prune_drops_identities_duplicates_and_unread_results_but_keeps_draws():
    def fn(w, x):
        a = (x @ w.t().t().t()) / 1 + 0  # t(t(.)), / 1 and + 0 change nothing
        b = w.t()  # the same transpose twice: computed once
        c = w.t()
        torch.randn(3)  # a draw nobody reads: kept (the random stream stays eager's)
        float(a.sum())  # a host read nobody uses: erased
        return a * 2, b + c

    w, x = torch.randn(4, 5), torch.randn(3, 5)
    gm = make_fx(fn, _error_on_data_dependent_ops=False)(w, x)
    before = _ops(gm)
    torch.manual_seed(0)
    want = gm(w, x)
    prune(gm)
    after = _ops(gm)
    assert len(after) < len(before)
    assert not any("_local_scalar_dense" in t for t in after)
    assert any("randn" in t or "normal" in t for t in after)
    assert after.count("aten.t.default") < before.count("aten.t.default")
    torch.manual_seed(0)
    got = gm(w, x)
    for a, b in zip(want, got):
        assert torch.equal(a, b)


def test_capture_blocker_names_a_host_read():
    gm = make_fx(lambda x: x * float(x.sum()), _error_on_data_dependent_ops=False)(torch.randn(3))
    assert "host" in capture_blocker(gm)
    assert capture_blocker(lambda x: x) is None  # not a traced graph: nothing to say
