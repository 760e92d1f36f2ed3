"""probgen.diagnostics: InferenceData round trip, PSIS k̂ with known answers, NUTS on a
conjugate model, trained vs untrained guide, elpd comparison, GMM posterior."""
from __future__ import annotations

import json
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from probgen import diagnostics as D
from probgen.models import GMM, VAE
from probgen.story import Story


class ConjugateGaussian(Story):
    """z ~ N(0, I), x | z ~ N(z, s² I): the posterior is N(x / (1 + s²), s² / (1 + s²) I).
    The guide is that exact posterior with its scale multiplied by ``guide_ratio``."""

    kind = "test_conjugate_gaussian"

    def __init__(self, *, z_dim: int = 2, noise: float = 0.5, guide_ratio: float = 1.0):
        super().__init__()
        self.z_dim, self.noise, self.guide_ratio = z_dim, noise, guide_ratio
        self.unused = nn.Parameter(torch.zeros(1))  # a module with one parameter, like any story

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        s2 = self.noise**2
        return x / (1 + s2), math.sqrt(s2 / (1 + s2))

    def model(self, x=None, y=None, n=None):
        self.register_params()
        n = len(x)
        with pyro.plate("data", n):
            z = pyro.sample("z", dist.Normal(torch.zeros(n, self.z_dim), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, self.noise).to_event(1), obs=x)

    def guide(self, x=None, y=None, n=None):
        self.register_params()
        loc, sd = self.posterior(x)
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(loc, sd * self.guide_ratio).to_event(1))


def _conj_data(n=30, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g)
    return z + 0.5 * torch.randn(n, d, generator=g)


# -- InferenceData ---------------------------------------------------------------------------
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


# -- PSIS k̂ ------------------------------------------------------------------------------------
def test_khat_small_when_proposal_is_the_target():
    model = ConjugateGaussian(guide_ratio=1.0)
    q = D.guide_quality(model, _conj_data(), num_samples=500)
    assert (q.khat < 0.5).all(), q.khat
    assert q.counts()["good"] == 30
    assert np.allclose(q.gap, 0.0, atol=1e-3)  # weights are constant: IWAE = ELBO = log p(x)
    assert np.allclose(q.ess, 500, rtol=1e-3)


def test_khat_large_for_a_far_too_narrow_proposal():
    # proposal sd = 0.1 × target sd: the weights' tail has shape k = 1 − 0.1² = 0.99
    model = ConjugateGaussian(guide_ratio=0.1)
    q = D.guide_quality(model, _conj_data(), num_samples=1000)
    assert np.median(q.khat) > 0.7
    assert q.counts()["bad"] >= 20
    assert (q.gap > 0.5).all() and np.median(q.ess) < 50


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


# -- NUTS -----------------------------------------------------------------------------------------
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


# -- model comparison -------------------------------------------------------------------------------
def test_compare_pointwise_synthetic(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.normal(-20, 3, 200)
    b = a - 0.5 + rng.normal(0, 0.3, 200)  # worse by 0.5 nats per point, clearly
    c = a + rng.normal(0, 0.3, 200)  # as good as a up to noise
    out = D.compare_pointwise({"b": b, "a": a, "c": c}, figure=tmp_path / "cmp.png")
    assert out["n"] == 200
    assert out["models"]["a"]["elpd"] == pytest.approx(a.sum())
    assert out["models"]["a"]["se"] == pytest.approx(math.sqrt(200) * a.std(ddof=1))
    assert out["models"]["b"]["rank"] == 2
    best = {"a": a, "c": c}[out["best"]]
    d = out["differences"]["b"]
    assert d["elpd_diff"] == pytest.approx((b - best).sum())
    assert d["clear"] and d["dse"] == pytest.approx(math.sqrt(200) * (b - best).std(ddof=1))
    other = "c" if out["best"] == "a" else "a"
    assert not out["differences"][other]["clear"]
    assert sum(m["weight"] for m in out["models"].values()) == pytest.approx(1.0, abs=1e-6)
    assert out["models"]["b"]["weight"] < 0.05
    assert "b" in out["text"] and "elpd" in out["text"]
    assert (tmp_path / "cmp.png").stat().st_size > 1000
    json.dumps({k: v for k, v in out.items() if k != "text"})


def test_compare_pointwise_rejects_bad_input():
    with pytest.raises(ValueError, match="different numbers"):
        D.compare_pointwise({"a": np.zeros(3), "b": np.zeros(4)})
    with pytest.raises(ValueError, match="NaN"):
        D.compare_pointwise({"a": np.array([0.0, np.nan])})


# -- GMM ----------------------------------------------------------------------------------------------
def test_gmm_responsibilities(digits):
    gmm = GMM(3, likelihood="bernoulli").fit(digits.train[:200], max_iter=5, progress=False)
    r = D.gmm_responsibilities(gmm, digits.test[:20])
    assert r["resp"].shape == (20, 3)
    np.testing.assert_allclose(r["resp"].sum(1), 1.0, atol=1e-6)
    assert (r["entropy"] >= 0).all() and (r["entropy"] <= math.log(3) + 1e-9).all()
    assert sum(r["summary"]["points_per_component"]) == 20
    json.dumps(r["summary"])


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
