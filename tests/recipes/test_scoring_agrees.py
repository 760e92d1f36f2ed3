"""One scoring policy: ``compare``, the tour's comparison, ``experiments/binarized_mnist.py``'s scoring
and the Python API (``probgen.score`` / ``probgen.log_likelihood``) give the same number for the same
checkpoint and seed. For the CVAE that number is the marginal log Σ_y p(y) p(x | y); the conditional
log p(x | y) is the Python API's ``log_likelihood(model, x, y=y)`` and appears only in its own column."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import torch

K = 8  # importance samples: small, the numbers need only agree


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from probgen.recipes.config import DataConfig, RunConfig, load_data, replace_given, seed_everything
    from probgen.recipes.models import model_spec
    from probgen.recipes.train import train_model

    out = tmp_path_factory.mktemp("scoring")
    ds = load_data(DataConfig())
    run = RunConfig(out=str(out), quiet=True)
    for name in ("vae", "cvae"):
        seed_everything(0)
        params = replace_given(model_spec(name).config(), epochs=1, hidden="32", batch_size=256)
        train_model(name, params, None, run, ds, path=out / f"{name}.pt")
    return out, ds


def _experiment():
    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("experiments_binarized_mnist", root / "experiments" / "binarized_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _by_compare(src: Path, out: Path, name: str) -> float:
    from probgen.recipes.compare import CompareConfig, compare
    from probgen.recipes.config import RunConfig

    res = compare(CompareConfig(models=name, from_dir=str(src), num_samples=K, no_diagnostics=True,
                                run=RunConfig(out=str(out), quiet=True)))
    (row,) = res.rows
    return row["test_log_likelihood"], row


def _by_tour(src: Path, out: Path, ds, name: str) -> float:
    from probgen.recipes.config import RunConfig
    from probgen.report import Report
    from probgen.report.sections import score_rows
    from probgen.report.tour import Tour, TourConfig

    t = Tour(TourConfig(run=RunConfig(out=str(out), quiet=True)), ds, out)
    t.profile["iwae_k"] = K
    shutil.copy(src / f"{name}.pt", t.checkpoint(name))
    sec = Report("t").section("compare", "compare")
    quality = {}
    rows, _, _ = score_rows(sec, t, names=(name,), quality=quality)
    assert not sec.errors, sec.errors
    (row,) = rows
    if row["khat_share"] is not None:  # the tour's k̂ figure reuses the score's k̂: computed once
        assert float((quality[name].khat > 0.7).mean()) == row["khat_share"]
        assert quality[name].num_samples == K
    else:
        assert name not in quality
    return row["test_log_likelihood"], row


@pytest.mark.parametrize("name", ["vae", "cvae"])
def test_compare_tour_experiment_and_api_agree(trained, tmp_path, name):
    import probgen
    from probgen.recipes.config import seed_everything

    src, ds = trained
    compare_ll, compare_row = _by_compare(src, tmp_path / "compare", name)
    tour_ll, tour_row = _by_tour(src, tmp_path / "tour", ds, name)
    model = probgen.load(src / f"{name}.pt")
    row = _experiment().score_row(name, model, ds, ds.test, ds.test_labels, k=K, seed=0)
    experiment_ll = -row["nll"]
    model = probgen.load(src / f"{name}.pt").eval()  # (building the networks draws random numbers)
    seed_everything(0)
    api = probgen.score(model, ds.test, y=ds.test_labels, num_samples=K)
    assert compare_ll == pytest.approx(tour_ll, abs=1e-9)
    assert compare_ll == pytest.approx(experiment_ll, abs=1e-6)
    assert compare_ll == pytest.approx(api.mean, abs=1e-6)
    assert compare_row["estimator"] == tour_row["estimator"] == row["estimator"] == api.estimator
    assert compare_row["num_samples"] == tour_row["num_samples"] == K
    if name == "cvae":  # the marginal is the column; log p(x | y) only in its own one
        assert "marginal" in api.estimator and api.conditional is not None
        assert compare_row["conditional_log_likelihood"] == pytest.approx(float(api.conditional.double().mean()),
                                                                          abs=1e-6)
    else:  # probgen.log_likelihood is the same estimate for an unconditional story
        seed_everything(0)
        with torch.no_grad():
            direct = probgen.log_likelihood(model, ds.test, num_samples=K)
        assert float(direct.double().mean()) == pytest.approx(compare_ll, abs=1e-6)
        assert compare_row["khat_share"] == tour_row["khat_share"] == api.khat_share
