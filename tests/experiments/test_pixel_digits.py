"""Smoke-run experiments/pixel_digits.py --quick."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_pixel_digits_quick(tmp_path):
    spec = importlib.util.spec_from_file_location("pixel_digits", ROOT / "experiments" / "pixel_digits.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    threads = torch.get_num_threads()
    try:
        out = tmp_path / "r.json"
        assert mod.main(["--quick", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    res = json.loads(out.read_text())
    assert [r["model"] for r in res["unconditional"]] == ["vae", "gated-tiny"]
    assert all(r["test_log_lik"] < 0 for r in res["unconditional"])
    assert 0 <= res["conditional"]["recognised_T1.0"] <= 1
