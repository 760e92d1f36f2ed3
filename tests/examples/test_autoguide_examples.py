"""examples/gmm_autodelta.py (Pyro's GMM tutorial, AutoDelta on poutine.block) and examples/vae_autonormal.py
(an AutoNormal over a global site beside an encoder): train, compare and diagnose from the CLI, unchanged."""
from __future__ import annotations

import json
from pathlib import Path

from probgen.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = ["--epochs", "2", "--quiet", "--num-samples", "4"]


def test_the_gmm_tutorial_with_autodelta(tmp_path, capsys):
    spec = str(EXAMPLES / "gmm_autodelta.py")
    assert main(["train", "--story", spec, "--data", "digits", "--continuous", *FAST, "--train-size", "256",
                 "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert "(exact, enumerated)" in out and "K=" not in out.split("test log-likelihood")[1].splitlines()[0]
    assert "global latent sites 'weights', 'scale', 'locs': log p(x_i | θ̂) at the guide's point estimate" in out
    assert "hint: 'assignment' is summed out exactly" in out  # 2 epochs at lr=1e-3: still falling
    assert main(["diagnose", str(tmp_path / "t" / "gmm_autodelta.pt"), "--story", spec, "--points", "8",
                 "--out", str(tmp_path / "d"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "no guide to check: the per-example latents 'assignment' are summed out exactly" in out
    assert main(["compare", "--models", "gmm", "--story", spec, "--continuous", "--epochs", "1", "--quiet",
                 "--num-samples", "4", "--no-diagnostics",
                 "--out", str(tmp_path / "c")]) == 0
    rows = json.loads((tmp_path / "c" / "results.json").read_text())["models"]
    assert [r["name"] for r in rows] == ["gmm", "gmm_autodelta.py"]
    assert rows[1]["estimator"] == "exact, enumerated" and rows[1]["num_samples"] is None


def test_a_vae_with_an_autonormal_global(tmp_path, capsys):
    spec = str(EXAMPLES / "vae_autonormal.py") + ":AutoNormalVAE"
    assert main(["train", "--story", spec, "--data", "digits", *FAST, "--train-size", "256",
                 "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert "(IWAE, K=4)" in out and "global latent sites 'prior_scale': log E_q(θ) p(x_i | θ)" in out
    assert main(["diagnose", str(tmp_path / "t" / "vae_autonormal.AutoNormalVAE.pt"), "--story", spec,
                 "--points", "4", "--num-samples", "10", "--draws", "5", "--out", str(tmp_path / "d"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Pareto k̂" in out and "NUTS per point skipped: the global sites are shared" in out
