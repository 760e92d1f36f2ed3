"""The one estimator (probgen/evaluate.py): IWAE for any story, the marginal over labels,
Parzen windows, PSIS k̂ and the scoring policy."""
from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch

from probgen import evaluate
from probgen.evaluate import (log_likelihood, log_weights, marginal_log_likelihood, parzen_log_prob, psis_khat,
                              score)
from probgen.models import CVAE, GMM, VAE
from probgen.story import Story


# -- IWAE on a model with a known likelihood (probabilistic PCA) --------------------------------
def _ppca_vae(sigma=0.5, wrong=1.0):
    """A linear-Gaussian VAE (= probabilistic PCA) whose exact log-likelihood is known.

    Orthogonal decoder columns make the true posterior diagonal, so the encoder can be set
    to it exactly (``wrong=1``) or to a distorted proposal (``wrong != 1``).
    """
    torch.manual_seed(0)
    x_dim, z_dim = 6, 2
    W = torch.linalg.qr(torch.randn(x_dim, z_dim))[0] * torch.tensor([2.0, 1.0])  # orthogonal columns
    b = torch.randn(x_dim)
    vae = VAE(x_dim, z_dim=z_dim, hidden=(), likelihood="normal")
    inv_softplus = lambda v: v + torch.log(-torch.expm1(-v))  # noqa: E731
    with torch.no_grad():
        head = vae.decoder.head.linear
        head.weight.zero_(); head.bias.zero_()
        head.weight[:x_dim] = W
        head.bias[:x_dim] = b
        head.bias[x_dim:] = inv_softplus(torch.tensor(sigma - vae.decoder.head.min_scale))
        M = W.T @ W + sigma**2 * torch.eye(z_dim)  # diagonal
        A = torch.linalg.solve(M, W.T)
        post_sd = sigma / torch.sqrt(torch.diagonal(M))
        enc = vae.encoder.head.linear
        enc.weight.zero_(); enc.bias.zero_()
        enc.weight[:z_dim] = A * wrong
        enc.bias[:z_dim] = -(A @ b) * wrong
        enc.bias[z_dim:] = inv_softplus(post_sd * (1.5 if wrong != 1 else 1.0) - vae.encoder.head.min_scale)
    exact = torch.distributions.MultivariateNormal(b, W @ W.T + sigma**2 * torch.eye(x_dim))
    return vae, exact


def test_iwae_is_exact_with_the_true_posterior_as_proposal():
    vae, exact = _ppca_vae()
    x = exact.sample((20,))
    est = log_likelihood(vae, x, num_samples=10)
    assert torch.allclose(est, exact.log_prob(x), atol=1e-3)


def test_iwae_converges_towards_the_exact_log_likelihood():
    vae, exact = _ppca_vae(wrong=0.8)
    x = exact.sample((50,))
    truth = exact.log_prob(x).mean()
    gaps = [float(truth - log_likelihood(vae, x, num_samples=k).mean()) for k in (1, 50, 2000)]
    assert gaps[0] > gaps[1] > gaps[2] > -0.02  # a bound that tightens with K
    assert gaps[2] < 0.05


def test_iwae_bound_is_above_the_elbo(digits):
    vae = VAE(64, z_dim=4, hidden=(32,))
    vae.fit(digits.train, epochs=2, progress=False)
    x = digits.test[:40]
    elbo = log_likelihood(vae, x, num_samples=1).mean()
    iwae = log_likelihood(vae, x, num_samples=200).mean()
    assert iwae > elbo


def test_chunking_does_not_change_the_estimate():
    vae, exact = _ppca_vae(wrong=0.8)
    x = exact.sample((9,))
    pyro.set_rng_seed(0)
    one = log_likelihood(vae, x, num_samples=40)
    pyro.set_rng_seed(0)
    lw = log_weights(vae.eval(), x, 40)
    assert torch.allclose(one, torch.logsumexp(lw, 0) - math.log(40), atol=1e-5)
    # many chunks (other draws): with the true posterior as proposal every draw gives log p(x)
    vae, exact = _ppca_vae()
    x = exact.sample((9,))
    small = log_likelihood(vae, x, num_samples=40, memory_budget=6 * 64 * 3)
    assert torch.allclose(small, exact.log_prob(x), atol=1e-3)


# -- enumerated model sites are summed inside each weight ----------------------------------------
class _Mixture(Story):
    """c ~ Cat(w) (enumerated in the model), z ~ N(μ_c, 1), x ~ N(z, 1): p(x) = Σ_c w_c N(x; μ_c, 2)."""

    kind = "test-enum-mixture"

    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.tensor([0.3, 0.7]))
        self.register_buffer("mu", torch.tensor([-2.0, 1.5]))

    def model(self, x=None, y=None, n=None):
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Categorical(self.w), infer={"enumerate": "parallel"})
            z = pyro.sample("z", dist.Normal(self.mu[c], 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(self, x=None, y=None, n=None):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x / 2, 1.5))


def test_enumerated_model_site_is_summed_in_each_weight():
    m = _Mixture()
    x = torch.tensor([-3.0, -0.5, 0.0, 2.0])
    exact = torch.logsumexp(torch.stack([math.log(w) + dist.Normal(mu, math.sqrt(2)).log_prob(x)
                                         for w, mu in zip(m.w.tolist(), m.mu.tolist())]), 0)
    pyro.set_rng_seed(0)
    est = log_likelihood(m, x, num_samples=20000)
    assert torch.allclose(est, exact, atol=0.03), (est, exact)
    # each weight holds log Σ_c p(x, z, c): with K = 1 it is the ELBO with c summed out, never above log p(x)
    pyro.set_rng_seed(1)
    lw = log_weights(m, x, 2000)
    assert lw.shape == (2000, 4) and (lw.mean(0) < exact).all()


# -- two plates: the sentence VAE ----------------------------------------------------------------
def _old_sentence_iwae(m, x, k):
    """The sentence VAE's own estimator before issue 15 (``SentenceVAE.log_weights``)."""
    with torch.no_grad(), pyro.plate("iwae_particles", k, dim=-3):
        guide_tr = poutine.trace(m.guide).get_trace(x)
        model_tr = poutine.trace(poutine.replay(m.model, trace=guide_tr)).get_trace(x)

    def per_sentence(tr):
        tr.compute_log_prob()
        return sum(s["log_prob"].sum(-1).expand(k, len(x)) for s in tr.nodes.values() if s["type"] == "sample")

    lw = per_sentence(model_tr) - per_sentence(guide_tr)
    return torch.logsumexp(lw, 0) - math.log(k)


def test_sentence_vae_iwae_equals_the_old_per_sentence_estimator():
    from probgen.models import SentenceVAE

    words = ["the", "cat", "dog", "sat", "ran", "mat"]
    tokens = ["<pad>", "<unk>", "<bos>", "<eos>", *words]
    m = SentenceVAE(len(tokens), embed_dim=6, hidden=8, z_dim=2, vocab=tokens, max_len=6).eval()
    x = m.tokens(["the cat sat", "the dog ran", "cat", "the mat sat ran"])
    pyro.set_rng_seed(4)
    old = _old_sentence_iwae(m, x, 30)
    pyro.set_rng_seed(4)
    new = m.log_prob(x, num_samples=30)
    assert torch.allclose(old, new, atol=1e-5)


# -- the marginal over a label ---------------------------------------------------------------------
def test_cvae_marginal_lies_between_the_best_conditional_and_it_minus_log_c(digits):
    torch.manual_seed(0)
    m = CVAE(64, 10, z_dim=2, hidden=(16,)).eval()
    x = digits.test[:12]
    pyro.set_rng_seed(0)
    per = torch.stack([log_likelihood(m, x, y=torch.full((12,), c), num_samples=20) for c in range(10)])
    pyro.set_rng_seed(0)
    marg = marginal_log_likelihood(m, x, 10, num_samples=20)
    best = per.max(0).values
    assert (marg <= best + 1e-5).all() and (marg >= best - math.log(10) - 1e-5).all()
    # a prior on one label gives that label's conditional
    pyro.set_rng_seed(0)
    one = marginal_log_likelihood(m, x, 10, prior=torch.eye(10)[3], num_samples=20)
    assert torch.allclose(one, per[3], atol=1e-4)
    with pytest.raises(ValueError, match="probabilities"):
        marginal_log_likelihood(m, x, 10, prior=torch.ones(10))


# -- Parzen windows --------------------------------------------------------------------------------
def test_parzen_gaussian_matches_sklearn_where_sklearn_is_accurate():
    from sklearn.neighbors import KernelDensity

    torch.manual_seed(0)
    x, centers, sigma = torch.randn(7, 5), torch.randn(300, 5), 0.7
    ref = KernelDensity(bandwidth=sigma).fit(centers.double().numpy()).score_samples(x.double().numpy())
    assert np.allclose(parzen_log_prob(x, centers, sigma).double().numpy(), ref, atol=1e-4)


def test_parzen_gaussian_stays_exact_where_sklearn_underflows():
    """64 dimensions, σ = 0.2: every kernel value underflows; scikit-learn's tree sums are then
    tens of nats off, the logsumexp over squared distances is not."""
    from sklearn.neighbors import KernelDensity

    torch.manual_seed(0)
    d, m, sigma = 64, 500, 0.2
    x, centers = torch.rand(10, d).double(), torch.rand(m, d).double()
    sq = torch.cdist(x, centers) ** 2
    exact = torch.logsumexp(-sq / (2 * sigma**2), 1) - 0.5 * d * math.log(2 * math.pi * sigma**2) - math.log(m)
    assert torch.allclose(parzen_log_prob(x, centers, sigma).double(), exact, atol=1e-3)
    skl = KernelDensity(bandwidth=sigma).fit(centers.numpy()).score_samples(x.numpy())
    assert np.abs(skl - exact.numpy()).max() > 1.0  # why probgen does not use it


def test_parzen_bernoulli_kernel_is_a_mass():
    grid = torch.tensor([[a, b, c] for a in (0.0, 1.0) for b in (0.0, 1.0) for c in (0.0, 1.0)])
    assert float(parzen_log_prob(grid, torch.rand(7, 3), 0.3, kernel="bernoulli").exp().sum()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="kernel"):
        parzen_log_prob(grid, grid, 0.3, kernel="box")


# -- PSIS k̂ ------------------------------------------------------------------------------------------
def test_psis_khat_is_arvizs():
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(0)
    lw = np.concatenate([rng.normal(size=(3, 400)), rng.standard_t(1.5, size=(3, 400))])  # light and heavy tails
    ours = psis_khat(lw)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, theirs = az.psislw(lw.copy())
    assert np.allclose(ours, theirs, atol=1e-8)
    assert (ours[:3] < 0.7).all() and psis_khat(np.zeros((2, 10)))[0] == -np.inf


# -- the one scoring policy ------------------------------------------------------------------------------
def test_score_names_its_estimator_and_matches_log_likelihood(digits):
    torch.manual_seed(0)
    vae = VAE(64, z_dim=2, hidden=(16,)).eval()
    x = digits.test[:20]
    pyro.set_rng_seed(5)
    s = score(vae, x, num_samples=30)
    pyro.set_rng_seed(5)
    ref = log_likelihood(vae, x, num_samples=30)
    assert torch.allclose(s.values, ref) and s.estimator == "IWAE" and s.k == 30 and s.n == 20
    assert 0 <= s.khat_share <= 1 and s.mean == pytest.approx(float(ref.double().mean()))
    assert "IWAE" in str(s)

    gmm = GMM(3, likelihood="bernoulli")
    gmm.fit(digits.train[:200], max_iter=3, progress=False)
    g = score(gmm, x)
    assert g.estimator == "exact" and g.k is None and g.khat_share is None
    assert torch.allclose(g.values, gmm.log_prob(x))


def test_score_of_a_cvae_is_the_marginal_with_the_conditional_beside_it(digits):
    torch.manual_seed(0)
    m = CVAE(64, 10, z_dim=2, hidden=(16,)).eval()
    x, y = digits.test[:10], digits.test_labels[:10]
    pyro.set_rng_seed(2)
    s = score(m, x, y=y, num_samples=10)
    pyro.set_rng_seed(2)
    marg = marginal_log_likelihood(m, x, 10, num_samples=10)
    assert s.estimator == "IWAE, marginal over labels" and torch.allclose(s.values, marg)
    assert s.conditional is not None and s.conditional.shape == (10,)
    assert s.khat_share is None


def test_score_flags_a_bad_proposal():
    vae, exact = _ppca_vae(wrong=-1.0)  # the encoder points the wrong way: heavy-tailed weights
    s = score(vae, exact.sample((30,)), num_samples=200, khat_warn=0.0)
    assert s.khat_share > 0 and s.warning and "k̂" in s.warning
    assert evaluate.KHAT_BAD == 0.7
