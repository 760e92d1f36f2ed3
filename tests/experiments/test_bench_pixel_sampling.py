"""Smoke-run experiments/bench_pixel_sampling.py --quick."""
from __future__ import annotations

import json

from ._run import run_script


def test_bench_pixel_sampling_quick(tmp_path):
    out = tmp_path / "r.json"
    assert run_script("bench_pixel_sampling", ["--quick", "--out", str(out)]) == 0
    res = json.loads(out.read_text())["results"]
    assert {r["backbone"] for r in res} == {"gated", "rowlstm"}
    for r in res:
        assert r["same_images_on_timed_rows"] and not r["naive_extrapolated"]
        assert r["cached_images_per_s"] > 0 and r["naive_images_per_s"] > 0
