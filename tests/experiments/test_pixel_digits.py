"""Smoke-run experiments/pixel_digits.py --quick."""
from __future__ import annotations

import json

from ._run import run_script


def test_pixel_digits_quick(tmp_path):
    out = tmp_path / "r.json"
    assert run_script("pixel_digits", ["--quick", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [r["model"] for r in res["unconditional"]] == ["vae", "gated-tiny"]
    assert all(r["test_log_lik"] < 0 for r in res["unconditional"])
    assert 0 <= res["conditional"]["recognised_T1.0"] <= 1
