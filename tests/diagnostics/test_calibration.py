"""Simulation-based calibration of amortised guides: stories whose answer is known."""
from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from probgen import diagnostics as D
from probgen.story import Story

from ._conjugate import ConjugateGaussian
from ._ppca import exact_ppca, scale_guide, shift_guide


def _sbc(model, x, n=400, draws=49):
    return D.sbc(model, x, simulations=n, draws=draws)


def test_exact_ppca_guide_is_calibrated_and_is_the_posterior():
    m = exact_ppca()
    x = m.sample(50)
    post, (loc, _) = m.posterior(x), m.encode(x)
    torch.testing.assert_close(loc, post.mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(m.scale_tril @ m.scale_tril.T, post.covariance_matrix[0], atol=1e-5, rtol=1e-4)
    cal = _sbc(m, x)
    assert cal.shape() == "calibrated", cal.verdict()
    assert cal.p_values.min() > D.ALPHA / 2 and cal.ranks.shape == (400, 2) and cal.labels == ["z[0]", "z[1]"]
    assert cal.verdict().startswith("calibrated")


@pytest.mark.parametrize("factor, shape", [(3.0, "over-dispersed"), (0.3, "under-dispersed")])
def test_ppca_guide_with_wrong_scale_fails_in_the_expected_shape(factor, shape):
    m = scale_guide(exact_ppca(), factor)
    cal = _sbc(m, m.sample(50))
    assert cal.dim_verdicts() == [shape, shape], cal.verdict()
    assert cal.p_values.max() < 1e-6
    u = cal.ranks / cal.draws
    middle = ((u > 0.25) & (u < 0.75)).mean()
    assert (middle > 0.6) if shape == "over-dispersed" else (middle < 0.4)  # ∩ vs ∪


def test_ppca_guide_with_shifted_mean_is_biased_low_ranks():
    m = shift_guide(exact_ppca(), 1.0)  # q sits one sd above the truth: the true z ranks low
    cal = _sbc(m, m.sample(50))
    assert cal.shape() == "biased", cal.verdict()
    s = cal.summary()
    assert all(d["verdict"] == "biased" and d["direction"] == "q(z|x) above the truth" for d in s["dims"])
    assert all(d["mean_rank"] < 0.4 for d in s["dims"])


def test_conjugate_story_all_three_failures_and_the_summary():
    x = torch.randn(40, 3)
    good = _sbc(ConjugateGaussian(z_dim=3), x, n=300)
    assert good.shape() == "calibrated"
    assert _sbc(ConjugateGaussian(z_dim=3, guide_ratio=2.0), x, n=300).shape() == "over-dispersed"
    assert _sbc(ConjugateGaussian(z_dim=3, guide_ratio=0.5), x, n=300).shape() == "under-dispersed"
    assert _sbc(ConjugateGaussian(z_dim=3, guide_shift=-0.8), x, n=300).shape() == "biased"
    s = good.summary()
    assert s["simulations"] == 300 and s["draws"] == 49 and s["bins"] == 10 and len(s["dims"]) == 3
    assert s["ecdf_outside_band_95"] <= 1 and s["band_99"][0] < 30 < s["band_99"][1]
    edges, diff, lo, hi = good.ecdf()
    assert diff.shape == (9, 3) and (lo < 0).all() and (hi > 0).all()


class Autoregressive(Story):
    """x_t ~ N(z + x_{t-1}, 1): the likelihood reads the observation it scores (teacher forcing)."""

    kind = "test_autoregressive"

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def model(self, x=None, y=None, n=None):
        self.register_params()
        prev = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(len(x), 1), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z + prev, 1.0).to_event(1), obs=x)

    def guide(self, x=None, y=None, n=None):
        self.register_params()
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(x.mean(1, keepdim=True) + self.w, 1.0).to_event(1))


def test_a_likelihood_that_reads_its_data_is_not_simulated():
    with pytest.raises(D.NotSimulable, match="reads the data it scores"):
        D.sbc(Autoregressive(), torch.randn(10, 4), draws=9)


def test_sbc_refuses_bad_arguments():
    m = ConjugateGaussian()
    x = torch.randn(5, 2)
    with pytest.raises(ValueError, match="draws >= 1"):
        D.sbc(m, x, draws=0)
    with pytest.raises(ValueError, match="must divide"):
        D.sbc(m, x, draws=9, bins=3)
    assert np.array_equal(D.sbc(m, x, simulations=12, draws=9, bins=5).counts().sum(0), [12, 12])
