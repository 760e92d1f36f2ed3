"""Smoke-run experiments/bench_pixel_sampling.py --quick."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_bench_pixel_sampling_quick(tmp_path):
    path = ROOT / "experiments" / "bench_pixel_sampling.py"
    spec = importlib.util.spec_from_file_location("bench_pixel_sampling", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    threads = torch.get_num_threads()
    try:
        out = tmp_path / "r.json"
        assert mod.main(["--quick", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    res = json.loads(out.read_text())["results"]
    assert {r["backbone"] for r in res} == {"gated", "rowlstm"}
    for r in res:
        assert r["same_images_on_timed_rows"] and not r["naive_extrapolated"]
        assert r["cached_images_per_s"] > 0 and r["naive_images_per_s"] > 0
