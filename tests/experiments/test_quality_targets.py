"""Smoke-run experiments/quality_targets.py --quick (GAN, CVAE and sentence VAE, tiny)."""
from __future__ import annotations

import json

from ._run import run_script


def test_quality_targets_quick(tmp_path, monkeypatch):
    monkeypatch.delenv("PROBGEN_DATA_DIR", raising=False)  # the text part uses the shipped sonnets
    out = tmp_path / "r.json"
    assert run_script("quality_targets", ["--quick", "--out", str(out), "--set", "loss=hinge"]) == 0
    res = json.loads(out.read_text())
    assert res["gan"]["config"]["loss"] == "hinge"  # --set reaches the family's config
    assert 0 < res["gan"]["mean_confidence"] <= 1 and 1 <= res["gan"]["classes_found"] <= 10
    assert len(res["cvae"]["confidence_per_class_means"]) == 10
    assert all(0 <= c <= 1 for c in res["cvae"]["confidence_per_class_draws"])
    assert res["text"]["test"]["kl"] >= 0 and res["text"]["test"]["ppl"] > 1
    assert len(res["text"]["distinct_lines_per_path"]) == 2 and all(1 <= d <= 9 for d in
                                                                   res["text"]["distinct_lines_per_path"])
