"""`probgen diagnose`: smoke runs on a tiny VAE and a GMM checkpoint, and its errors."""
from __future__ import annotations

import json

import pytest

from probgen.cli import main
from probgen.models import GMM, VAE


@pytest.fixture
def vae_ckpt(tmp_path):
    path = tmp_path / "vae.pt"
    VAE(64, z_dim=2, hidden=[16], x_shape=[8, 8]).save(path)
    return path


def test_diagnose_vae_smoke(tmp_path, vae_ckpt, capsys):
    out = tmp_path / "diag"
    code = main(["diagnose", str(vae_ckpt), "--out", str(out), "--points", "12", "--num-samples", "50",
                 "--draws", "5", "--nuts", "1", "--chains", "2", "--nuts-samples", "30",
                 "--nuts-warmup", "20", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Pareto k̂" in printed and "r-hat" in printed
    for name in ("diagnostics.nc", "summary.json", "khat.png", "nuts_1.nc", "guide_vs_nuts_1.png",
                 "trace_1.png", "pointwise.npz"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    counts = summary["guide_quality"]["khat_counts"]
    assert sum(counts.values()) == 12 and summary["points"] == 12
    assert summary["nuts"][0]["index"] == 1 and len(summary["nuts"][0]["wasserstein"]) == 2
    assert "nuts_rhat_max" in summary
    from probgen.diagnostics import _az_groups, load_inference_data

    idata = load_inference_data(out / "diagnostics.nc")
    assert set(_az_groups(idata)) == {"posterior", "log_likelihood", "observed_data", "sample_stats"}
    assert idata.posterior["z"].shape == (1, 5, 12, 2)


def test_diagnose_gmm_reports_responsibilities(tmp_path, digits, capsys):
    path = tmp_path / "gmm.pt"
    GMM(3, likelihood="bernoulli").fit(digits.train[:200], max_iter=3, progress=False).save(path)
    out = tmp_path / "g"
    assert main(["diagnose", str(path), "--out", str(out), "--points", "30", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["responsibilities"]["n"] == 30
    assert (out / "responsibilities.png").is_file()
    assert "p(m|x)" in capsys.readouterr().out


def test_diagnose_errors(tmp_path, vae_ckpt, capsys):
    assert main(["diagnose", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o")]) == 2
    assert "error" in capsys.readouterr().err
    assert main(["diagnose", str(vae_ckpt), "--out", str(tmp_path / "o"), "--points", "5",
                 "--nuts", "7", "--num-samples", "10"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["diagnose", str(vae_ckpt), "--out", str(tmp_path / "o"), "--num-samples", "1"]) == 2
