"""The ``compare`` recipe: one scoring policy (probgen.evaluate.score), the CVAE by its marginal."""
from __future__ import annotations

import json

import numpy as np
import pytest

from probgen.cli import main
from probgen.recipes.compare import CompareConfig, _elpd, compare
from probgen.recipes.config import DataConfig, RunConfig


def test_compare_recipe_rows_name_estimator_and_k(tmp_path):
    res = compare(CompareConfig(models="gmm,vae", num_samples=5, epochs=1, no_diagnostics=True,
                                run=RunConfig(out=str(tmp_path), quiet=True)))
    assert [r["name"] for r in res.rows] == ["gmm", "vae"]
    gmm, vae = res.rows
    assert gmm["estimator"] == "exact" and gmm["num_samples"] is None
    assert vae["estimator"] == "IWAE" and vae["num_samples"] == 5 and 0 <= vae["khat_share"] <= 1
    assert json.loads(res.json_path.read_text())["models"][1]["num_samples"] == 5
    assert "IWAE" in res.table() and (tmp_path / "pointwise.npz").is_file()
    # the time column says what it measured: wall seconds, and where (device, threads)
    assert "fit wall s" in res.table() and all(r["fit_device"].startswith("cpu (") for r in res.rows)
    assert "fit wall s: training wall-clock seconds, on cpu (" in res.table()


def test_cvae_row_is_the_marginal_and_the_conditional_has_its_own_column(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["compare", "--models", "cvae", "--epochs", "1", "--num-samples", "4", "--out", str(out),
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "marginal" in text and "log Σ_y p(y) p(x | y)" in text
    row = json.loads((out / "results.json").read_text())["models"][0]
    assert "marginal" in row["estimator"] and row["num_samples"] == 4
    assert row["conditional_log_likelihood"] is not None
    assert row["test_log_likelihood"] != pytest.approx(row["conditional_log_likelihood"], abs=1e-9)


def test_unknown_model_is_one_line_value_error(tmp_path):
    with pytest.raises(ValueError, match="unknown nope"):
        compare(CompareConfig(models="gmm,nope", data=DataConfig(), run=RunConfig(out=str(tmp_path))))


def test_elpd_table_and_text(tmp_path):
    """The contract `compare` relies on: diagnostics.compare_pointwise gives a table and a printable text."""
    rng = np.random.default_rng(0)
    a = rng.normal(-20, 2, 50)
    table, text = _elpd({"gmm": a - 1.0, "vae": a}, tmp_path)
    assert table["best"] == "vae" and "text" not in table and text
    assert table["differences"]["gmm"]["clear"]
    assert (tmp_path / "elpd_compare.png").is_file()
    json.dumps(table, allow_nan=False)


def test_python_face_compare_and_sample(tmp_path):
    import probgen

    res = probgen.compare("gmm", out=tmp_path, num_samples=2, no_diagnostics=True)
    assert res.rows[0]["estimator"] == "exact" and res.rows[0]["test_log_likelihood"] < 0
    x = probgen.sample(tmp_path / "gmm.pt", 3)
    assert x.shape == (3, 8, 8)
    assert probgen.recipes.compare is compare and callable(probgen.score)


def test_refit_guide_before_scoring_from_cli(tmp_path, capsys):
    first = tmp_path / "first"
    assert main(["compare", "--models", "gmm,vae", "--epochs", "1", "--num-samples", "4", "--out", str(first),
                 "--quiet", "--no-diagnostics"]) == 0
    before = (first / "vae.pt").read_bytes()
    out = tmp_path / "refit"
    assert main(["compare", "--from", str(first), "--models", "gmm,vae", "--num-samples", "4", "--out", str(out),
                 "--no-diagnostics", "--refit-guide", "1", "--refit-k", "2"]) == 0
    assert "vae: guide refit before scoring (IWAE k=2, 1 epochs" in capsys.readouterr().out
    gmm, vae = json.loads((out / "results.json").read_text())["models"]
    assert "guide_refit" not in gmm  # no guide of its own: scored as it is
    assert vae["guide_refit"]["k"] == 2 and vae["guide_refit"]["epochs"] == 1
    assert (first / "vae.pt").read_bytes() == before  # the source checkpoint is never rewritten
    capsys.readouterr()
    assert main(["compare", "--models", "vae", "--refit-guide", "-1", "--out", str(tmp_path / "bad")]) == 2
    assert "--refit-guide must be >= 0" in capsys.readouterr().err


def test_refined_proposal_from_cli_and_api(tmp_path, capsys):
    first = tmp_path / "first"
    assert main(["compare", "--models", "gmm,vae", "--epochs", "1", "--num-samples", "4", "--out", str(first),
                 "--quiet", "--no-diagnostics"]) == 0
    plain = {m["name"]: m for m in json.loads((first / "results.json").read_text())["models"]}
    out = tmp_path / "refined"
    assert main(["compare", "--refine", "5", "--from", str(first), "--models", "gmm,vae", "--num-samples", "4",
                 "--out", str(out), "--quiet", "--no-diagnostics"]) == 0
    refined = {m["name"]: m for m in json.loads((out / "results.json").read_text())["models"]}
    assert refined["vae"]["estimator"] == "IWAE, q refined 5 steps" and plain["vae"]["estimator"] == "IWAE"
    assert refined["gmm"] == {**refined["gmm"], "estimator": "exact",
                              "test_log_likelihood": plain["gmm"]["test_log_likelihood"]}  # exact: untouched
    cfg = CompareConfig(models="vae", from_dir=str(first), num_samples=4, refine=5, no_diagnostics=True,
                        run=RunConfig(out=str(tmp_path / "api"), quiet=True))
    assert compare(cfg).rows[0]["estimator"] == "IWAE, q refined 5 steps"
    capsys.readouterr()
    assert main(["compare", "--models", "vae", "--refine", "-2", "--out", str(tmp_path / "bad")]) == 2
    assert "--refine must be >= 0" in capsys.readouterr().err


def test_refit_for_scoring_skips_models_whose_score_uses_no_guide():
    from probgen.data import load
    from probgen.models import GAN, GMM
    from probgen.recipes.compare import refit_for_scoring

    ds = load("digits", binarize=True)
    for model in (GAN("mlp", x_shape=[8, 8], z_dim=4, hidden=[16, 32]), GMM(3, x_dim=64, likelihood="bernoulli")):
        assert refit_for_scoring(model, ds, epochs=1, k=2) is None


def test_a_killed_compare_leaves_no_old_results_beside_new_checkpoints(tmp_path):
    """Issue 30: a compare replaced with --force and killed for real (SIGKILL) once its first new checkpoint is
    on disk leaves no results.json / pointwise.npz of the run it replaced, and no manifest."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from probgen.runs import manifest_path

    out = tmp_path / "c"
    base = ["compare", "--models", "gmm,vae", "--num-samples", "2", "--no-diagnostics", "--quiet", "--out", str(out)]
    assert main(base + ["--epochs", "1"]) == 0
    assert (out / "results.json").is_file() and (out / "pointwise.npz").is_file()
    old = (out / "gmm.pt").stat()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    # the VAE's epochs keep the new run busy long after its GMM is written
    proc = subprocess.Popen([sys.executable, "-m", "probgen", *base, "--epochs", "100000", "--force"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while (lambda s: (s.st_ino, s.st_mtime_ns))((out / "gmm.pt").stat()) == (old.st_ino, old.st_mtime_ns):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the new compare wrote no checkpoint"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "results.json").exists() and not (out / "pointwise.npz").exists()
    assert not manifest_path(out, "compare").exists()
    # the killed run's folder is still compare's own: the next compare runs there without --force
    assert main(base + ["--epochs", "1", "--models", "gmm"]) == 0 and (out / "results.json").is_file()


def test_refit_guide_and_epochs_are_bounded(tmp_path, capsys):
    for flag in ("--refit-guide", "--epochs"):
        assert main(["compare", "--models", "vae", flag, "1000000000", "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{flag} must be <= 1000000" in err[0], err
    assert not (tmp_path / "bad" / "vae.pt").exists()
