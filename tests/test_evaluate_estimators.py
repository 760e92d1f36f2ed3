"""The estimator reads what a story declares (``traits``): an exact story with a guide is scored
exactly by default and by IWAE on request (``estimator="iwae"``), the chunk plan counts the floats a
story declares per example, and an estimator a story cannot give is refused in one line."""
from __future__ import annotations

import dataclasses
import math

import pyro
import pytest
import torch

import probgen
from probgen import evaluate
from probgen.evaluate import log_likelihood, score, scores_with_guide, story_log_prob
from probgen.story import Traits
from tests.diagnostics._conjugate import ConjugateGaussian, _conj_data


class ExactConjugate(ConjugateGaussian):
    """The conjugate story declared exact: p(x) = N(0, (1 + s²) I) in closed form, and a guide beside it
    (wider than the posterior by ``guide_ratio``), like PPCA."""

    kind = "test_exact_conjugate"
    traits = Traits(estimator="exact", guide=True)

    def log_prob(self, x, y=None, *, num_samples=None):
        x, _ = self.prepare(x)
        scale = math.sqrt(1 + self.noise**2)
        return torch.distributions.Normal(0.0, scale).log_prob(x).sum(-1)


class NoGuideExact(ExactConjugate):
    kind = "test_exact_no_guide"
    traits = Traits(estimator="exact", guide=False)


def test_exact_story_with_a_guide_gives_both_and_iwae_approaches_from_below():
    story = ExactConjugate(guide_ratio=2.0).eval()
    x = _conj_data(300)
    exact = story.log_prob(x)
    assert torch.equal(log_likelihood(story, x, num_samples=5), exact)  # declared exact: its own log_prob
    gaps = []
    for k in (1, 5, 500):
        pyro.set_rng_seed(0)
        est = log_likelihood(story, x, num_samples=k, estimator="iwae")
        gaps.append(float((exact - est).mean()))
    assert gaps[0] > gaps[1] > gaps[2] > -0.01, gaps  # a lower bound that tightens with K
    assert gaps[2] < 0.02 and gaps[0] > 1.0
    # the true posterior as proposal: every weight is p(x), at any K
    sharp = ExactConjugate(guide_ratio=1.0).eval()
    assert torch.allclose(log_likelihood(sharp, x, num_samples=3, estimator="iwae"), sharp.log_prob(x), atol=1e-4)


def test_score_names_which_estimate_it_gives():
    story = ExactConjugate(guide_ratio=1.3).eval()
    x = _conj_data(30)
    s = score(story, x, num_samples=50)
    assert s.estimator == "exact" and s.k is None and torch.equal(s.values, story.log_prob(x))
    pyro.set_rng_seed(1)
    iw = score(story, x, num_samples=50, estimator="iwae")
    assert iw.estimator == "IWAE" and iw.k == 50 and iw.khat is not None and iw.log_weights.shape == (30, 50)
    assert float(iw.mean) < float(s.mean) and float(s.mean) - float(iw.mean) < 0.1
    pyro.set_rng_seed(1)
    api = probgen.score(story, x, num_samples=50, estimator="iwae")  # the Python API: the same number
    assert torch.equal(api.values, iw.values)
    pyro.set_rng_seed(1)
    assert torch.equal(probgen.log_likelihood(story, x, num_samples=50, estimator="iwae"), iw.values)
    assert not scores_with_guide(story) and scores_with_guide(ConjugateGaussian())


def test_an_estimator_the_story_cannot_give_is_refused():
    x = _conj_data(4)
    with pytest.raises(ValueError, match="no guide"):
        score(NoGuideExact(), x, estimator="iwae")
    with pytest.raises(ValueError, match="no guide"):
        log_likelihood(NoGuideExact(), x, estimator="iwae")
    with pytest.raises(ValueError, match="estimator must be"):
        score(ExactConjugate(), x, estimator="parzen")
    with pytest.raises(ValueError, match="estimator must be"):
        story_log_prob(ExactConjugate(), x, estimator="IWAE")


def test_chunk_plan_counts_the_floats_a_story_declares(monkeypatch):
    """``traits.memory_per_example`` (e.g. a sentence's decoder logits) joins the data's floats in the
    budget: every chunk K_c × n_c × (x_dim + declared) stays within ``memory_budget``."""
    calls = []

    def fake_log_weights(story, x, num_samples, y=None, **proposal):
        calls.append((num_samples, len(x)))
        return torch.zeros(num_samples, len(x))

    monkeypatch.setattr(evaluate, "log_weights", fake_log_weights)
    story = ConjugateGaussian()
    heavy = ConjugateGaussian()
    heavy.traits = dataclasses.replace(heavy.traits, memory_per_example=5000)
    x = torch.zeros(300, 2)
    for model, per in ((story, 2), (heavy, 5002)):
        calls.clear()
        log_likelihood(model, x, num_samples=100, memory_budget=2**20)
        assert sum(k * n for k, n in calls) == 300 * 100
        assert max(k * n * per for k, n in calls) <= 2**20
    assert len(calls) > 30  # the heavy story is cut into many more chunks


def test_dequantized_scores_subtract_the_story_s_declared_cell_volume():
    story = ExactConjugate().eval()
    x = _conj_data(5)
    plain = score(story, x).values
    story.dequantization_log_volume = lambda: -3.0  # a discrete story: log of one cell's volume
    assert torch.allclose(score(story, x, dequantized=True).values, plain + 3.0)
