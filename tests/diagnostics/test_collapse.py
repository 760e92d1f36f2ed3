"""Collapse numbers: active units, KL per dimension, I(x; z); on stories whose answer is known."""
from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from probgen import diagnostics as D
from probgen.models import HVAE, VAE

from ._conjugate import ConjugateGaussian
from ._ppca import exact_ppca


def test_conjugate_kl_and_mutual_information_match_the_closed_form():
    s = 0.5
    m = ConjugateGaussian(z_dim=2, noise=s)
    z = torch.randn(800, 2)
    x = z + s * torch.randn(800, 2)  # data from the model: the aggregate posterior is the prior
    c = D.collapse(m, x)
    post_var = s**2 / (1 + s**2)
    mi_per_dim = 0.5 * math.log(1 / post_var)  # I(x; z) = H(z) − H(z | x)
    assert c.active.all() and c.kl is not None
    # E_x KL(q(z|x) ‖ p(z)) = I + KL(q(z) ‖ p(z)), and q(z) = p(z) here
    np.testing.assert_allclose(c.kl, mi_per_dim, rtol=0.1)
    assert abs(c.kl_total - 2 * mi_per_dim) < 0.15
    assert abs(c.mi - 2 * mi_per_dim) < 0.2 and c.mi < math.log(800)
    s_ = c.summary()
    assert s_["active_units"] == 2 and s_["mutual_information"]["sites"] == ["z"]
    assert "Hoffman & Johnson" in s_["mutual_information"]["method"] and abs(s_["aggregate_kl"]) < 0.3
    assert c.verdict().startswith("no collapse: all 2 units active")


def test_a_forced_collapsed_vae_dimension_is_inactive_with_no_kl(digits):
    m = VAE(64, z_dim=3, hidden=[32], x_shape=[8, 8])
    head = m.encoder.head.linear  # rows: loc of z[0..2], then the raw scales
    with torch.no_grad():
        for row in (1, 3 + 1):
            head.weight[row].zero_()
        head.bias[1] = 0.0
        head.bias[3 + 1] = math.log(math.expm1(1.0 - 1e-4))  # softplus⁻¹: q(z[1] | x) = N(0, 1) = p(z[1])
        head.weight[[0, 2]] *= 20  # the other two move with x
    c = D.collapse(m, digits.test[:200])
    assert c.labels == ["z[0]", "z[1]", "z[2]"]
    assert list(c.active) == [True, False, True] and c.mean_variance[1] < 1e-12
    assert c.kl[1] < 1e-6 and c.kl[0] > 0.01 and c.kl[2] > 0.01
    assert c.verdict().startswith("partly collapsed: 2 of 3 units active")


class WeightedKL(VAE):
    """The VAE with its KL term weighted by ``beta`` (the latent site scaled in the model and the guide)."""

    kind = "test_weighted_kl_vae"

    def __init__(self, x_dim: int, *, z_dim: int, beta: float = 1.0):
        super().__init__(x_dim, z_dim=z_dim, hidden=[32], x_shape=[8, 8])
        self.beta = beta

    def model(self, x=None, y=None, n=None):
        self.register_params()
        x = x.reshape(len(x), -1)
        with pyro.plate("data", len(x)):
            with pyro.poutine.scale(scale=self.beta):
                z = pyro.sample("z", dist.Normal(torch.zeros(len(x), self.z_dim), 1.0).to_event(1))
            pyro.sample("x", self._likelihood(z), obs=x)

    def guide(self, x, y=None, n=None):
        self.register_params()
        x = x.reshape(len(x), -1)
        with pyro.plate("data", len(x)), pyro.poutine.scale(scale=self.beta):
            pyro.sample("z", dist.Normal(*self.encoder(x)).to_event(1))


def _trained(digits, beta: float):
    pyro.set_rng_seed(0)
    m = WeightedKL(64, z_dim=4, beta=beta)
    return m.fit(digits.train[:400], epochs=10, batch_size=100, lr=1e-2, progress=False, compile=False)


def test_a_vae_trained_with_a_heavy_kl_weight_collapses(digits):
    heavy = D.collapse(_trained(digits, 20.0), digits.test[:200])  # β = 20: the optimum is q(z | x) = p(z)
    assert int(heavy.active.sum()) == 0, heavy.verdict()
    assert heavy.kl_total < 0.05 and heavy.mi < 0.05 and heavy.mean_variance.max() < 0.01
    assert heavy.verdict().startswith("collapsed: 0 of 4 units active")
    plain = D.collapse(_trained(digits, 1.0), digits.test[:200])  # the same steps with β = 1: a code in use
    assert int(plain.active.sum()) >= 3 and plain.kl_total > 5 * heavy.kl_total and plain.mi > 0.1


def test_hierarchical_guide_and_multivariate_normal():
    h = HVAE(64, z1_dim=3, z2_dim=2, hidden1=[16], hidden2=[8])
    c = D.collapse(h, (torch.rand(60, 64) > 0.5).float())
    assert c.labels == ["z1[0]", "z1[1]", "z1[2]", "z2[0]", "z2[1]"] and len(c.kl) == 5
    assert c.mi_sites == ("z1",) and "z2" in c.notes[0] and c.summary()["aggregate_kl"] is None
    p = exact_ppca()
    c = D.collapse(p, p.sample(300))  # q(z | x) a full-covariance Gaussian: per-dim KL of its marginals
    assert c.active.all() and c.kl.shape == (2,) and c.mi > 0.5
