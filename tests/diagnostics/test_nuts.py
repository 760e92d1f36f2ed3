"""probgen.diagnostics.nuts: NUTS against the guide, the Bayesian GMM."""
from __future__ import annotations

import json

import numpy as np
import torch

from probgen import diagnostics as D

from ._conjugate import ConjugateGaussian


def test_nuts_recovers_the_conjugate_posterior():
    model = ConjugateGaussian(z_dim=2, noise=0.5)
    x = torch.tensor([1.2, -0.7])
    res = D.nuts_posterior(model, x, num_chains=2, num_samples=300, warmup_steps=200, seed=1,
                           guide_samples=2000)
    loc, sd = model.posterior(x)
    pooled = res.samples.reshape(-1, 2)
    assert res.samples.shape == (2, 300, 2)
    mcse = sd / np.sqrt(res.ess_bulk)
    assert np.all(np.abs(pooled.mean(0) - loc.numpy()) < 4 * mcse + 0.02)
    assert np.allclose(pooled.std(0), sd, rtol=0.15)
    assert res.rhat.max() < 1.05
    assert res.wasserstein.max() < 0.1  # the guide is exact here
    assert set(D._az_groups(res.idata)) >= {"posterior", "sample_stats"}
    assert res.idata.posterior["z"].dims == ("chain", "draw", "obs", "z_dim")
    assert res.idata.posterior.sizes["chain"] == 2
    json.dumps(res.summary())


def test_bayesian_gmm_nuts_runs_and_relabels():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(12, 1, generator=g) * 0.3 + m for m in (-4.0, 0.0, 4.0)])
    res = D.bayesian_gmm_nuts(x, n_components=3, num_chains=2, num_samples=40, warmup_steps=40, seed=0)
    assert res.locs.shape == (2, 40, 3, 1)
    np.testing.assert_allclose(res.weights.sum(-1), 1.0, atol=1e-5)
    sorted_means = np.sort(res.locs[..., 0], axis=-1).reshape(-1, 3).mean(0)
    np.testing.assert_allclose(sorted_means, [-4, 0, 4], atol=0.6)
    assert res.rhat_sorted.max() <= res.rhat_raw.max() + 1e-9
    json.dumps(res.summary())
