"""refine_proposal: a Gaussian per example fitted by the IWAE bound; the estimate tightens, the model stays."""
from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

import probgen
from probgen.evaluate import log_likelihood, score
from probgen.infer import refine_proposal
from probgen.infer.refit import LocalProposal
from probgen.models import CVAE, VAE
from probgen.story import Story

SIGMA = 0.5


class Conjugate(Story):
    """z ~ N(0, I_2), x ~ N(z, σ² I_2), scored with a poor guide: the exact log p(x) is
    N(x; 0, (1 + σ²) I), and the exact posterior is a Gaussian a refined proposal can match."""

    kind = "test_conjugate"
    max_plate_nesting = 1

    def model(self, x, y=None):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, SIGMA).to_event(1), obs=x)

    def guide(self, x, y=None):  # the posterior is N(x / (1 + σ²), σ² / (1 + σ²)): half-way there, too wide
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(0.5 * x, 1.0).to_event(1))

    def exact(self, x):
        return dist.Normal(0.0, math.sqrt(1 + SIGMA ** 2)).log_prob(x).sum(-1)

    training = False

    def eval(self):
        return self

    def train(self, mode=True):
        return self


def test_refined_proposal_closes_the_gap_to_the_exact_likelihood():
    story, x = Conjugate(), math.sqrt(1 + SIGMA ** 2) * torch.randn(40, 2)  # data from the model
    exact = story.exact(x)
    plain = log_likelihood(story, x, num_samples=1)  # k=1: the ELBO, whose gap is KL(q ‖ posterior)
    refined = log_likelihood(story, x, num_samples=1, refine=300)
    assert (exact - plain).mean() > 2, (exact - plain).mean()
    assert (exact - refined).mean().abs() < 0.05, (exact - refined).mean()
    torch.manual_seed(1)  # with k samples the estimate stays a lower bound in expectation: no optimism
    many = log_likelihood(story, x, num_samples=200, refine=300)
    assert (many - exact).mean() < 0.02


def test_proposal_is_fitted_to_the_posterior():
    story, x = Conjugate(), torch.tensor([[2.0, -4.0]])
    q = refine_proposal(story, x, steps=600, num_particles=20, lr=0.02)
    assert isinstance(q, LocalProposal) and set(q.sites) == {"z"}
    loc, log_scale, event_dim, plates = q.sites["z"]
    post_var = 1 / (1 + 1 / SIGMA ** 2)
    assert torch.allclose(loc, x * post_var / SIGMA ** 2, atol=0.1), loc
    assert torch.allclose(log_scale.exp(), torch.full((1, 2), math.sqrt(post_var)), atol=0.1)
    assert event_dim == 1 and plates == [("data", 1, -1)]
    assert not loc.requires_grad


def test_vae_model_is_unchanged_and_the_estimate_tightens():
    ds = probgen.load_data("digits")
    torch.manual_seed(0)
    vae = VAE(64, z_dim=4, hidden=(32,)).fit(ds.train, epochs=3, batch_size=64, progress=False)
    for layer in vae.encoder.modules():  # a poor guide for the same model, as after a short training
        if isinstance(layer, torch.nn.Linear):
            layer.reset_parameters()
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    x = ds.test[:60]
    torch.manual_seed(0)
    plain = probgen.log_likelihood(vae, x, num_samples=20)
    torch.manual_seed(0)
    refined = probgen.log_likelihood(vae, x, num_samples=20, refine=60)
    assert all(torch.equal(v, before[k]) for k, v in vae.state_dict().items())
    assert refined.mean() > plain.mean() + 1, (plain.mean(), refined.mean())
    s = score(vae, x, num_samples=20, refine=10)
    assert s.estimator == "IWAE, q refined 10 steps" and s.values.shape == (60,)


def test_cvae_marginal_is_refined_per_label():
    ds = probgen.load_data("digits")
    torch.manual_seed(0)
    cvae = CVAE(64, 10, z_dim=3, hidden=(16,)).fit(ds.train, y=ds.train_labels, epochs=1,
                                                                  batch_size=128, progress=False)
    s = score(cvae, ds.test[:10], y=ds.test_labels[:10], num_samples=5, refine=3)
    assert s.estimator == "IWAE, q refined 3 steps, marginal over labels" and torch.isfinite(s.values).all()


def test_refine_refuses_bad_steps_and_discrete_guide_sites():
    story, x = Conjugate(), torch.zeros(3, 2)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="refine must be a number of steps"):
            log_likelihood(story, x, num_samples=2, refine=bad)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        refine_proposal(story, x, steps=0)

    def discrete_guide(x, y=None):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Bernoulli(0.5 * torch.ones_like(x)).to_event(1))

    with pytest.raises(ValueError, match="guide site 'z' is a Bernoulli"):
        refine_proposal(story, x, guide=discrete_guide)


def test_two_latent_sites_in_one_plate_are_refined_together():
    from probgen.models import HVAE

    ds = probgen.load_data("digits")
    torch.manual_seed(0)
    hvae = HVAE(64, z1_dim=4, z2_dim=2, hidden1=(16,), hidden2=(8,)).fit(ds.train, epochs=1, batch_size=128,
                                                                          progress=False)
    q = refine_proposal(hvae, hvae.prepare(ds.test[:5])[0], steps=2)
    assert set(q.sites) == {"z1", "z2"} and all(s[3] == [("data", 5, -1)] for s in q.sites.values())
    v = probgen.log_likelihood(hvae, ds.test[:5], num_samples=4, refine=2)
    assert v.shape == (5,) and torch.isfinite(v).all()


def test_a_story_with_an_inner_token_plate_is_refined_per_sentence():
    from probgen.models.sentence_vae import SentenceVAE

    m = SentenceVAE(20, embed_dim=8, hidden=16, z_dim=3, word_dropout=0.0, kl_anneal="none").eval()
    x = torch.randint(4, 20, (6, 7))
    x[:, -1] = 3  # <eos>
    q = refine_proposal(m, m.prepare(x)[0], steps=3)
    loc, _, event_dim, plates = q.sites["z"]
    assert loc.shape == (6, 1, 3) and event_dim == 1 and plates == [("sentences", 6, -2)]  # one code per sentence
    v = probgen.log_likelihood(m, x, num_samples=5, refine=5)
    assert v.shape == (6,) and torch.isfinite(v).all()
