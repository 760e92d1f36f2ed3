"""examples/conditional_vae.py: a plain Pyro program with a label argument, through the command line
(train --labels, compare's marginal row, diagnose with NUTS) and the Python API."""
from __future__ import annotations

import json
from pathlib import Path

import torch

import probgen
from probgen.cli import main

SPEC = str(Path(__file__).resolve().parents[2] / "examples" / "conditional_vae.py") + ":ConditionalVAE"
FAST = ["--epochs", "1", "--quiet", "--batch-size", "256", "--train-size", "512"]


def test_train_with_labels_scores_the_marginal_and_diagnose_runs_nuts(tmp_path, capsys):
    assert main(["train", "--story", SPEC, "--data", "digits", "--labels", *FAST, "--num-samples", "3",
                 "--story-args", "label_prior=True", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "(IWAE, marginal over labels, K=3)" in out and "p(y): the model's site 'label'" in out
    assert "conditional log p(x | true y)" in out
    ckpt = tmp_path / "conditional_vae.ConditionalVAE.pt"
    assert main(["diagnose", str(ckpt), "--story", SPEC, "--points", "4", "--num-samples", "20", "--draws", "5",
                 "--nuts", "0", "--chains", "2", "--nuts-samples", "20", "--nuts-warmup", "20",
                 "--out", str(tmp_path / "d"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "conditional on the test labels" in out and "point 0: r-hat max" in out
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["nuts"][0]["chains"] == 2 and summary["nuts_rhat_max"] is not None


def test_compare_names_the_marginal_row(tmp_path, capsys):
    assert main(["compare", "--models", "gmm", "--story", SPEC, "--epochs", "1", "--num-samples", "3",
                 "--no-diagnostics", "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("conditional_vae.py:ConditionalVAE"))
    assert "IWAE, marginal over labels" in row
    assert "p(y) uniform over 10" in out and "conditional log p(x | true y)" in out
    rows = {r["name"]: r for r in json.loads((tmp_path / "results.json").read_text())["models"]}
    row = rows["conditional_vae.py:ConditionalVAE"]  # named after the story
    assert row["label_prior"] == "uniform over 10" and row["conditional_log_likelihood"] is not None


def test_the_api_fits_with_the_datasets_labels(tmp_path):
    from probgen.recipes.story import load_story_program

    cls, _ = load_story_program(SPEC)
    ds = probgen.load_data("digits", binarize=True)
    story = probgen.fit(cls(z_dim=2), ds, epochs=1, progress=False)
    assert story.needs_labels and story.n_classes == 10
    s = probgen.score(story, ds.test[:20], y=ds.test_labels[:20], num_samples=3)
    assert s.estimator == "IWAE, marginal over labels" and s.conditional.shape == (20,)
    assert torch.isfinite(s.values).all()
    assert story.sample(4, label=3).shape == (4, 8, 8)
    story.save(tmp_path / "c.pt")
    again = probgen.load(tmp_path / "c.pt", story=cls)
    assert again.n_classes == 10 and again.sample(2).shape == (2, 8, 8)
