"""A user's program with a label argument: log p(x) is the marginal over the labels, with a uniform
p(y), or with the program's own p(y) when its model observes the label at a site; log p(x | y) in its
own column. The model is linear-Gaussian with the exact posterior as guide, so both are analytic."""
from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from probgen import as_story
from probgen.evaluate import marginal_log_likelihood, score

W = torch.tensor([[1.0], [0.5]])  # x_dim 2 × z_dim 1
B = torch.tensor([[1.0, -1.0], [-2.0, 0.5]])  # the mean of x for each of the 2 classes
SIGMA = 0.6
PI = torch.tensor([0.2, 0.8])


class LinearGaussian:
    """z ~ N(0, 1), x | z, y ~ N(W z + b_y, σ² I); the guide is the exact posterior q(z | x, y)."""

    def __init__(self, prior: str = "none"):
        self.prior = prior  # "none": y is an input; "first": y ~ Categorical(PI) before z; "after": after z
        if prior == "none":
            self.n_classes = 2

    def model(self, x, y):
        with pyro.plate("data", x.shape[0]):
            if self.prior == "first":
                pyro.sample("y", dist.Categorical(PI), obs=y)
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 1), 1.).to_event(1))
            if self.prior == "after":
                pyro.sample("y", dist.Categorical(PI), obs=y)
            pyro.sample("x", dist.Normal(z @ W.T + B[y], SIGMA).to_event(1), obs=x)

    def guide(self, x, y):
        var = 1 / (1 + float((W ** 2).sum()) / SIGMA ** 2)
        with pyro.plate("data", x.shape[0]):
            loc = var * (x - B[y]) @ W / SIGMA ** 2  # batch × 1
            pyro.sample("z", dist.Normal(loc, math.sqrt(var)).to_event(1))


def exact(x):
    """log p(x | y = c) for c = 0, 1: ``[2, n]``."""
    cov = W @ W.T + SIGMA ** 2 * torch.eye(2)
    return torch.stack([dist.MultivariateNormal(B[c], cov).log_prob(x) for c in range(2)])


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    return B[y] + torch.randn(6, 2, generator=g), y


def test_uniform_prior_when_the_label_is_only_an_input(data):
    x, y = data
    story = as_story(LinearGaussian("none"))
    assert story.needs_labels and story.label_prior(x, y) is None and story.n_classes == 2
    s = score(story, x, y=y, num_samples=3)
    ref = exact(x)
    assert s.estimator == "IWAE, marginal over labels" and s.extra["label_prior"] == "uniform over 2"
    assert torch.allclose(s.values, torch.logsumexp(ref, 0) - math.log(2), atol=1e-4)
    assert torch.allclose(s.conditional, ref[y, torch.arange(6)], atol=1e-4)


def test_the_programs_own_label_prior_replaces_the_uniform_one(data):
    x, y = data
    story = as_story(LinearGaussian("first"))
    assert story.n_classes is None
    s = score(story, x, y=y, num_samples=3)
    ref = exact(x)
    assert story.label_prior(x, y) == "y" and story.n_classes == 2  # the Categorical's support
    assert s.extra["label_prior"] == "the model's site 'y'"
    assert torch.allclose(s.values, torch.logsumexp(ref + PI.log()[:, None], 0), atol=1e-4)
    assert not torch.allclose(s.values, torch.logsumexp(ref, 0) - math.log(2), atol=1e-2)
    assert torch.allclose(s.conditional, ref[y, torch.arange(6)], atol=1e-4)  # log p(x, y) − log p(y)
    with pytest.raises(ValueError, match="prior must be probabilities or 'model'"):
        marginal_log_likelihood(story, x, 2, prior="uniform")


def test_a_label_site_after_a_latent_keeps_the_marginal_and_drops_the_conditional(data):
    x, y = data
    s = score(as_story(LinearGaussian("after")), x, y=y, num_samples=3)
    assert torch.allclose(s.values, torch.logsumexp(exact(x) + PI.log()[:, None], 0), atol=1e-4)
    assert s.conditional is None


def test_sampling_a_program_that_takes_a_label(data):
    x, y = data
    for prior in ("none", "first"):
        story = as_story(LinearGaussian(prior))
        story.prepare(x, y)
        assert story.sample(5).shape == (5, 2) and story.sample(3, label=1).shape == (3, 2)
    with pytest.raises(ValueError, match="label must lie in 0..1"):
        story.sample(2, label=5)
