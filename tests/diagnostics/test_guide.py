"""probgen.diagnostics.guide: InferenceData from a guide, PSIS k̂, responsibilities."""
from __future__ import annotations

import json
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from probgen import diagnostics as D
from probgen.models import GMM, VAE

from ._conjugate import ConjugateGaussian, _conj_data


def test_inference_data_round_trip(tmp_path, digits):
    model = VAE(64, z_dim=3, hidden=[16], x_shape=[8, 8])
    x = digits.test[:5]
    idata = D.to_inference_data(model, x, num_samples=7, index=[10, 11, 12, 13, 14])
    path = tmp_path / "d.nc"
    idata.to_netcdf(str(path))
    back = D.load_inference_data(path)
    assert set(D._az_groups(back)) == {"posterior", "log_likelihood", "observed_data", "sample_stats"}
    z = back.posterior["z"]
    assert z.dims == ("chain", "draw", "obs", "z_dim") and z.shape == (1, 7, 5, 3)
    assert back.log_likelihood["x"].dims == ("chain", "draw", "obs")
    assert back.sample_stats["log_weight"].dims == ("chain", "draw", "obs")
    assert back.observed_data["x"].shape == (5, 64)
    assert list(back.posterior["obs"].values) == [10, 11, 12, 13, 14]
    # log w = log p(x|z) + log p(z) − log q(z|x), recomputed from the stored draws
    zz = torch.as_tensor(z.values[0])  # draw × obs × z_dim
    loc, scale = model.encode(x)
    log_q = dist.Normal(loc, scale).log_prob(zz.float()).sum(-1)
    log_pz = dist.Normal(0.0, 1.0).log_prob(zz.float()).sum(-1)
    expect = back.log_likelihood["x"].values[0] + (log_pz - log_q).double().numpy()
    np.testing.assert_allclose(back.sample_stats["log_weight"].values[0], expect, rtol=1e-4, atol=1e-3)


def test_inference_data_needs_a_latent_site(digits):
    gmm = GMM(2, likelihood="bernoulli").fit(digits.train[:50], max_iter=2, progress=False)
    with pytest.raises(ValueError, match="no latent sites"):
        D.to_inference_data(gmm, digits.test[:3], num_samples=4)


def test_khat_small_when_proposal_is_the_target():
    model = ConjugateGaussian(guide_ratio=1.0)
    q = D.guide_quality(model, _conj_data(), num_samples=500)
    assert (q.khat < 0.5).all(), q.khat
    assert q.counts()["good"] == 30
    assert np.allclose(q.gap, 0.0, atol=1e-3)  # weights are constant: IWAE = ELBO = log p(x)
    assert np.allclose(q.ess, 500, rtol=1e-3)


def test_an_exact_story_with_a_guide_has_its_guide_judged():
    """A story declared exact that has a guide (PPCA): guide_quality judges the guide by the forced IWAE."""
    import dataclasses

    model = ConjugateGaussian(guide_ratio=1.0)
    model.traits = dataclasses.replace(model.traits, estimator="exact")
    q = D.guide_quality(model, _conj_data(), num_samples=200)
    assert np.allclose(q.gap, 0.0, atol=1e-3) and q.counts()["good"] == 30
    with pytest.raises(ValueError, match="no responsibilities"):  # a declared ability, not a probed one
        D.gmm_responsibilities(model, _conj_data())


def test_khat_large_for_a_far_too_narrow_proposal():
    # proposal sd = 0.1 × target sd: the weights' tail has shape k = 1 − 0.1² = 0.99
    model = ConjugateGaussian(guide_ratio=0.1)
    q = D.guide_quality(model, _conj_data(), num_samples=1000)
    assert np.median(q.khat) > 0.7
    assert q.counts()["bad"] >= 20
    assert (q.gap > 0.5).all() and np.median(q.ess) < 50


def test_guide_quality_is_the_estimators_weights_and_the_scores_khat(digits):
    # one IWAE: guide_quality draws the weights evaluate.log_likelihood draws (same seed, same numbers), and
    # quality_from_weights built from evaluate.score's weights and k̂ gives the same diagnostics again
    from probgen.evaluate import log_likelihood, score

    model = VAE(64, z_dim=3, hidden=[16], x_shape=[8, 8])
    x = digits.test[:12]
    pyro.set_rng_seed(3)
    values, lw = log_likelihood(model, x, num_samples=40, return_weights=True)
    pyro.set_rng_seed(3)
    q = D.guide_quality(model, x, num_samples=40)
    np.testing.assert_array_equal(q.elbo, lw.mean(1).numpy())
    np.testing.assert_allclose(q.iwae, values.double().numpy(), atol=1e-4)
    pyro.set_rng_seed(3)
    s = score(model, x, num_samples=40)
    assert s.log_weights.shape == (12, 40) and s.khat_share == float((s.khat > 0.7).mean())
    again = D.quality_from_weights(s.log_weights, khat=s.khat)
    np.testing.assert_array_equal(again.khat, q.khat)
    np.testing.assert_array_equal(again.ess, q.ess)
    with pytest.raises(ValueError, match="exact log p"):
        D.guide_quality(GMM(2, likelihood="bernoulli").fit(digits.train[:50], max_iter=2, progress=False), x, 10)


def test_pareto_khat_matches_the_gaussian_tail_shape():
    # target N(0,1), proposal N(0, σ²): k = 1 − σ² (σ < 1), k ≤ 0 for σ ≥ 1
    rng = np.random.default_rng(0)
    def lw(sigma):
        z = rng.normal(0, sigma, (40, 2000))
        return -z**2 / 2 + z**2 / (2 * sigma**2) + np.log(sigma)
    assert np.median(D.pareto_khat(lw(0.3))) > 0.7  # theory 0.91
    assert np.median(D.pareto_khat(lw(1.3))) < 0.0
    assert (D.pareto_khat(np.zeros((3, 50))) == -np.inf).all()
    with pytest.raises(ValueError):
        D.pareto_khat(np.full((2, 5), np.nan))


def test_untrained_guide_has_worse_khat_than_trained(digits):
    pyro.set_rng_seed(0)
    trained = VAE(64, z_dim=4, hidden=[64], x_shape=[8, 8])
    trained.fit(digits.train, epochs=10, batch_size=128, lr=5e-3, progress=False, patience=None)
    untrained = VAE(64, z_dim=4, hidden=[64], x_shape=[8, 8])
    untrained.decoder.load_state_dict(trained.decoder.state_dict())  # same model, fresh encoder
    x = digits.test[:40]
    good = D.guide_quality(trained, x, num_samples=300)
    bad = D.guide_quality(untrained, x, num_samples=300)
    assert np.median(bad.khat) > np.median(good.khat) + 0.2
    assert bad.counts()["bad"] > good.counts()["bad"] + 10
    assert bad.gap.mean() > good.gap.mean()
    json.dumps(good.summary())
    assert "k̂ > 0.7" in good.table()


def test_gmm_responsibilities(digits):
    gmm = GMM(3, likelihood="bernoulli").fit(digits.train[:200], max_iter=5, progress=False)
    r = D.gmm_responsibilities(gmm, digits.test[:20])
    assert r["resp"].shape == (20, 3)
    np.testing.assert_allclose(r["resp"].sum(1), 1.0, atol=1e-6)
    assert (r["entropy"] >= 0).all() and (r["entropy"] <= math.log(3) + 1e-9).all()
    assert sum(r["summary"]["points_per_component"]) == 20
    json.dumps(r["summary"])
