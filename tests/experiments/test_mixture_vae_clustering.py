"""Smoke-run experiments/mixture_vae_clustering.py --quick (made smaller still)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_mixture_vae_clustering_quick(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("mixture_vae_clustering",
                                                  ROOT / "experiments" / "mixture_vae_clustering.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    threads = torch.get_num_threads()
    try:
        assert mod.main(["--quick", "--out", str(tmp_path), "--epochs", "2", "--warmup-epochs", "1",
                         "--hidden", "32", "--num-samples", "4"]) == 0
    finally:
        torch.set_num_threads(threads)
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["settings"]["data"] == "digits"
    names = [r["model"] for r in res["rows"]]
    assert names == ["GMM on pixels (EM)", "VAE", "k-means on VAE codes", "GMM on VAE codes (EM)", "MixtureVAE"]
    for r in res["rows"]:
        assert "cluster_accuracy" not in r or 0 < r["cluster_accuracy"] <= 1
        assert "test_log_lik" not in r or -64 < r["test_log_lik"] < 0
    assert (tmp_path / "clusters_0.png").stat().st_size > 0 and (tmp_path / "gmm_components_0.png").is_file()
    assert "MixtureVAE" in capsys.readouterr().out
