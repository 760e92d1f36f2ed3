"""`probgen diagnose`: the encoder sections (SBC, collapse), one set of k̂ thresholds, the NUTS warning."""
from __future__ import annotations

import json

from probgen import diagnostics as D
from probgen.cli import main
from probgen.models import VAE
from probgen.recipes.diagnose import _nuts_failed


def test_diagnose_vae_writes_calibration_and_collapse(tmp_path, capsys):
    path = tmp_path / "vae.pt"
    VAE(64, z_dim=2, hidden=[16], x_shape=[8, 8]).save(path)
    out = tmp_path / "d"
    assert main(["diagnose", str(path), "--out", str(out), "--points", "40", "--num-samples", "20", "--draws", "5",
                 "--nuts", "--sbc", "120", "--sbc-draws", "19", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "calibration (SBC, 120 simulations × 19 draws): " in printed and "collapse: " in printed
    for name in ("sbc.png", "collapse.png", "summary.json", "diagnostics.nc"):
        assert (out / name).is_file(), name
    s = json.loads((out / "summary.json").read_text())
    cal, col = s["calibration"], s["collapse"]
    assert cal["simulations"] == 120 and cal["draws"] == 19 and len(cal["dims"]) == 2
    assert cal["shape"] in D.calibration.SHAPES and cal["verdict"] in printed
    assert col["dims"] == 2 and col["active_threshold"] == D.ACTIVE and col["n"] == 40
    assert "Hoffman & Johnson" in col["mutual_information"]["method"] and col["verdict"] in printed
    assert s["inference_data"]["per_draw"]["sample_stats.lp_approx"] == "log q(z | x)"
    # one set of k̂ thresholds: summary.json and the printout say the same numbers
    bins = s["guide_quality"]["khat_bins"]
    assert bins == {"good": [None, 0.5], "ok": [0.5, 0.7], "bad": [0.7, None]}
    assert "khat_good_threshold" not in s["guide_quality"]
    assert "k̂ < 0.5" in printed and "0.5–0.7" in printed and "k̂ > 0.7" in printed
    idata = D.load_inference_data(out / "diagnostics.nc")
    assert D.psis_posterior_mean(idata).means["z"].shape == (40, 2)


def test_diagnose_sbc_zero_skips_it(tmp_path, capsys):
    path = tmp_path / "vae.pt"
    VAE(64, z_dim=2, hidden=[16], x_shape=[8, 8]).save(path)
    out = tmp_path / "d"
    assert main(["diagnose", str(path), "--out", str(out), "--points", "20", "--num-samples", "10", "--draws", "3",
                 "--nuts", "--sbc", "0", "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert "calibration" not in s and "collapse" in s and not (out / "sbc.png").exists()
    assert main(["diagnose", str(path), "--out", str(tmp_path / "e"), "--sbc", "1"]) == 2
    assert "--sbc must be 0" in capsys.readouterr().err


def test_nuts_warning_names_the_criterion_that_failed():
    assert _nuts_failed({"divergences": 0, "rhat_max": 1.011}) == ["r-hat 1.011 > 1.01 (the chains disagree)"]
    assert _nuts_failed({"divergences": 1, "rhat_max": 1.0}) == ["1 divergent transition"]
    assert _nuts_failed({"divergences": 3, "rhat_max": None}) == ["3 divergent transitions"]
    assert _nuts_failed({"divergences": 0, "rhat_max": 1.004}) == []
