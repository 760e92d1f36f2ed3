"""Bounds off the main path (issue 30, items 8 and 11): K, refine steps, labels and classes are refused with
one ``ValueError`` naming the argument and its bound before any work; a meta tensor is refused, not a
``RuntimeError`` from deep inside."""
from __future__ import annotations

import time

import pyro
import pyro.distributions as dist
import pytest
import torch

import probgen
from probgen.evaluate import MAX_NUM_SAMPLES, MAX_REFINE, check_effort, marginal_log_likelihood, score
from probgen.models import CVAE, GAN, VAE, SentenceVAE


@pytest.fixture
def vae():
    torch.manual_seed(0)
    return VAE(64, hidden=(8,))


@pytest.fixture
def x():
    torch.manual_seed(1)
    return (torch.rand(4, 64) > 0.5).float()


CALLS = {
    "probgen.log_likelihood": lambda m, x, **kw: probgen.log_likelihood(m, x, **kw),
    "Story.log_prob": lambda m, x, **kw: m.log_prob(x, **kw),
    "probgen.score": lambda m, x, **kw: score(m, x, **kw),
}


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("kw, words", [({"num_samples": 10**12}, f"num_samples must be <= {MAX_NUM_SAMPLES}"),
                                       ({"refine": 10**9}, f"refine must be <= {MAX_REFINE}")])
def test_effort_is_bounded_before_any_work(call, kw, words, vae, x):
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=words):
        CALLS[call](vae, x, **kw)
    assert time.perf_counter() - t0 < 2  # refused up front, not after a first chunk


def test_the_bounds_themselves_are_accepted():
    assert check_effort(MAX_NUM_SAMPLES, MAX_REFINE) == (MAX_NUM_SAMPLES, MAX_REFINE)
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        check_effort(0)


def test_cvae_labels_and_classes(x):
    torch.manual_seed(0)
    m = CVAE(64, 10, hidden=(8,))
    y = torch.arange(4)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.9, got 1000000000"):
        probgen.log_likelihood(m, x, y=torch.full((4,), 10**9), num_samples=2)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.9, got 10{30}"):
        m.sample(2, label=10**30)  # an int too large for a long: still the range, not OverflowError
    with pytest.raises(ValueError, match=r"y: labels must lie in 0\.\.9"):
        score(m, x, y=torch.full((4,), 10**9), num_samples=2)
    with pytest.raises(ValueError, match=r"n_classes must be <= 10 \(CVAE knows the labels 0\.\.9\)"):
        score(m, x, y=y, n_classes=10**9, num_samples=2)
    with pytest.raises(ValueError, match="n_classes must be <= 10"):
        marginal_log_likelihood(m, x, 10**9, num_samples=2)  # before a [10**9] prior is allocated
    with pytest.raises(ValueError, match=r"n_classes must lie in 2\.\.65536"):
        CVAE(64, 10**9)


def test_meta_tensors_are_refused(vae):
    meta = torch.empty(4, 64, device="meta")
    with pytest.raises(ValueError, match="meta tensor holds no values"):
        vae.log_prob(meta)
    with pytest.raises(ValueError, match="meta tensor holds no values"):
        vae.fit(meta, epochs=1)
    with pytest.raises(ValueError, match="meta tensor holds no values"):
        SentenceVAE(vocab_size=20, embed_dim=4, hidden=8, z_dim=2).log_prob(torch.empty(2, 5, dtype=torch.long,
                                                                                        device="meta"))


class _NoChecks(probgen.Story):
    """A user's story whose own prepare checks nothing: the estimator still refuses a meta tensor."""

    kind = "test-no-checks"

    def prepare(self, x, y=None):
        return x, y

    def model(self, x, y=None):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(self, x, y=None):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(0.0, 1.0))


def test_meta_tensor_reaching_the_estimator():
    with pytest.raises(ValueError, match="meta tensor holds no values"):
        probgen.log_likelihood(_NoChecks(), torch.empty(3, device="meta"), num_samples=2)
    assert probgen.log_likelihood(_NoChecks(), torch.zeros(3), num_samples=2).shape == (3,)


def test_sparse_data_are_made_dense(vae, x):
    assert torch.allclose(vae.log_prob(x.to_sparse(), num_samples=2), vae.log_prob(x, num_samples=2), atol=20)


def test_gan_parzen_centers_are_bounded():
    torch.manual_seed(0)
    gan = GAN(x_shape=(8, 8), z_dim=2, hidden=(8,))
    with pytest.raises(ValueError, match="num_samples must be <= .*Parzen centers"):
        gan.log_prob(torch.zeros(2, 8, 8), num_samples=10**12, bandwidth=0.1)
