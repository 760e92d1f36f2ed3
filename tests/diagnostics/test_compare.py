"""probgen.diagnostics.compare: elpd from held-out pointwise log-likelihoods."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from probgen import diagnostics as D




def test_compare_pointwise_synthetic(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.normal(-20, 3, 200)
    b = a - 0.5 + rng.normal(0, 0.3, 200)  # worse by 0.5 nats per point, clearly
    c = a + rng.normal(0, 0.3, 200)  # as good as a up to noise
    out = D.compare_pointwise({"b": b, "a": a, "c": c}, figure=tmp_path / "cmp.png")
    assert out["n"] == 200
    assert out["models"]["a"]["elpd"] == pytest.approx(a.sum())
    assert out["models"]["a"]["se"] == pytest.approx(math.sqrt(200) * a.std(ddof=1))
    assert out["models"]["b"]["rank"] == 2
    best = {"a": a, "c": c}[out["best"]]
    d = out["differences"]["b"]
    assert d["elpd_diff"] == pytest.approx((b - best).sum())
    assert d["clear"] and d["dse"] == pytest.approx(math.sqrt(200) * (b - best).std(ddof=1))
    other = "c" if out["best"] == "a" else "a"
    assert not out["differences"][other]["clear"]
    assert sum(m["weight"] for m in out["models"].values()) == pytest.approx(1.0, abs=1e-6)
    assert out["models"]["b"]["weight"] < 0.05
    assert "b" in out["text"] and "elpd" in out["text"]
    assert (tmp_path / "cmp.png").stat().st_size > 1000
    json.dumps({k: v for k, v in out.items() if k != "text"})


def test_compare_pointwise_rejects_bad_input():
    with pytest.raises(ValueError, match="different numbers"):
        D.compare_pointwise({"a": np.zeros(3), "b": np.zeros(4)})
    with pytest.raises(ValueError, match="NaN"):
        D.compare_pointwise({"a": np.array([0.0, np.nan])})
