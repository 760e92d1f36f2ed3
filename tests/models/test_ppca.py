"""Probabilistic PCA: the closed forms against brute force, the IWAE estimate against the exact
log-likelihood (from below as K grows; a refined proposal closes the gap), and the family from the
Python API and the command line (train, compare) like any other."""
from __future__ import annotations

import copy
import json
import math

import pyro
import pytest
import torch

import probgen
from probgen.cli import main
from probgen.data import load
from probgen.evaluate import log_likelihood, score
from probgen.models import PPCA


@pytest.fixture(scope="module")
def digits():
    return load("digits")


@pytest.fixture(scope="module")
def trained(digits):
    torch.manual_seed(0)
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    return PPCA(digits.x_dim, z_dim=10, x_shape=digits.shape).fit(
        digits.train, val=digits.val, epochs=150, lr=1e-2, patience=None, progress=False)


def test_exact_log_prob_is_the_gaussian_marginal():
    torch.manual_seed(1)
    m = PPCA(5, z_dim=2)
    with torch.no_grad():
        m.log_sigma.fill_(math.log(0.3))
        m.mu.copy_(torch.randn(5))
    x = torch.randn(7, 5)
    cov = m.W @ m.W.T + 0.09 * torch.eye(5)
    expected = torch.distributions.MultivariateNormal(m.mu, covariance_matrix=cov).log_prob(x)
    assert torch.allclose(m.log_prob(x), expected.detach(), atol=1e-4)


def test_the_exact_posterior_is_bayes_rule():
    """p(z | x) from the closed form agrees with p(x, z) / p(x) at a few points."""
    torch.manual_seed(2)
    m = PPCA(4, z_dim=2)
    x = torch.randn(3, 4)
    z = torch.randn(3, 2)
    with torch.no_grad():
        joint = (torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
                 + torch.distributions.Normal(z @ m.W.T + m.mu, m.sigma).log_prob(x).sum(-1))
        assert torch.allclose(m.posterior(x).log_prob(z), joint - m.log_prob(x), atol=1e-4)


def test_iwae_approaches_the_exact_value_from_below(trained, digits):
    x = digits.test
    exact = float(trained.log_prob(x).mean())
    torch.manual_seed(3)
    estimates = [float(log_likelihood(trained, x, num_samples=k, estimator="iwae").mean()) for k in (1, 10, 1000)]
    assert estimates[0] < estimates[1] < estimates[2] + 1e-3  # tighter with K
    assert estimates[0] < exact  # a lower bound at K = 1 (the ELBO)
    assert abs(estimates[2] - exact) < 0.05  # the done-when: within 0.05 nats at K = 1000


def test_a_refined_proposal_closes_the_gap(trained, digits):
    """A proposal fitted to each example (a full-covariance Gaussian, as the guide's) closes the gap the
    amortised guide leaves: the trained guide's at K = 1, and most of a poor guide's (an encoder that says
    z = 0 for every image: the prior) at K = 10."""
    x = digits.test[:40]
    exact = trained.log_prob(x)
    torch.manual_seed(4)
    gap = lambda model, k, refine: float((exact - log_likelihood(  # noqa: E731
        model, x, num_samples=k, estimator="iwae", refine=refine)).mean())
    plain, refined = gap(trained, 1, 0), gap(trained, 1, 100)
    assert plain > 0.1 and abs(refined) < 0.1 * plain
    poor = copy.deepcopy(trained)
    with torch.no_grad():
        poor.encoder.weight.zero_()
        poor.encoder.bias.zero_()
    plain, refined = gap(poor, 10, 0), gap(poor, 10, 300)
    assert plain > 10
    assert 0 <= refined < 0.1 * plain


def test_score_gives_both_numbers(trained, digits):
    exact = score(trained, digits.test)
    iwae = score(trained, digits.test, num_samples=200, estimator="iwae")
    assert exact.estimator == "exact" and exact.k is None
    assert iwae.estimator.startswith("IWAE") and iwae.k == 200
    assert abs(exact.mean - iwae.mean) < 0.2
    assert probgen.score(trained, digits.test).mean == pytest.approx(exact.mean)


def test_samples_and_codes(trained):
    assert trained.sample(5).shape == (5, 8, 8)
    loc, scale = trained.encode(torch.zeros(2, 8, 8))
    assert loc.shape == scale.shape == (2, 10) and bool((scale > 0).all())
    assert trained.decode(loc).shape == (2, 8, 8)


def test_train_and_compare_from_the_command_line(tmp_path, capsys):
    assert main(["train", "ppca", "--epochs", "3", "--quiet", "--out", str(tmp_path / "t")]) == 0
    model = probgen.load(tmp_path / "t" / "ppca.pt")
    assert isinstance(model, PPCA) and model.traits.exact
    out = tmp_path / "c"
    assert main(["compare", "--models", "gmm,ppca,vae", "--epochs", "2", "--out", str(out), "--quiet"]) == 0
    result = json.loads((out / "results.json").read_text())
    rows = {r["name"]: r for r in result["models"]}
    assert set(rows) >= {"gmm", "ppca", "vae"}
    assert rows["ppca"]["estimator"] == "exact" and rows["vae"]["estimator"] == "IWAE"
    # a Gaussian story moves a default comparison onto dequantized grey levels: every row a density
    assert result["data"]["dequantized"] and not result["data"]["binarized"]
    assert "unit: log density" in capsys.readouterr().out


def test_the_tour_shows_it_in_the_gmm_to_vae_section(tmp_path, monkeypatch):
    """Registered for the GMM -> VAE step: the tour gives it a subsection (samples, exact log density and the
    IWAE estimate beside it) on dequantized grey levels, and keeps it out of the table of masses."""
    from probgen.recipes.config import RunConfig
    from probgen.report import sections
    from probgen.report.families import family_subsection, tour_families
    from probgen.report.tour import SECTIONS, TourConfig, tour

    assert "ppca" in tour_families("gmm-to-vae")
    monkeypatch.setattr(sections, "gmm_to_vae", lambda sec, t: family_subsection(sec, t, "ppca", epochs=20))
    for key in SECTIONS:
        if key != "gmm-to-vae":
            monkeypatch.setattr(sections, key.replace("-", "_"), lambda sec, t: None)
    tour(TourConfig(quick=True, run=RunConfig(out=str(tmp_path), quiet=True)))
    numbers = json.loads((tmp_path / "report.json").read_text())["sections"]["gmm-to-vae"]["families"]["ppca"]
    assert numbers["estimator"] == "exact" and numbers["iwae"]["estimator"].startswith("IWAE")
    assert numbers["data"] == "dequantized grey levels" and abs(numbers["iwae_gap"]) < 1.0
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    section = page.split('<section id="gmm-to-vae">')[1].split("</section>")[0]
    assert "<img" in section and "exact minus IWAE" in section and 'class="error"' not in section
