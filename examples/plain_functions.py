"""A pair of plain functions with ``pyro.param``: a linear latent-variable model for binary
images (logistic factor analysis) and a linear amortised guide. It does not import probgen.

    probgen train --story examples/plain_functions.py:model,guide --data digits
"""
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints

Z_DIM = 4


def model(x):
    x = x.reshape(len(x), -1)
    d = x.shape[1]
    w = pyro.param("loadings", lambda: 0.1 * torch.randn(Z_DIM, d))
    b = pyro.param("bias", lambda: torch.zeros(d))
    with pyro.plate("data", len(x)):
        z = pyro.sample("factors", dist.Normal(x.new_zeros(len(x), Z_DIM), 1.0).to_event(1))
        pyro.sample("image", dist.Bernoulli(logits=z @ w + b).to_event(1), obs=x)


def guide(x):
    x = x.reshape(len(x), -1)
    d = x.shape[1]
    a = pyro.param("enc_weight", lambda: torch.zeros(d, Z_DIM))
    a0 = pyro.param("enc_bias", lambda: torch.zeros(Z_DIM))
    scale = pyro.param("enc_scale", lambda: torch.ones(Z_DIM), constraint=constraints.positive)
    with pyro.plate("data", len(x)):
        pyro.sample("factors", dist.Normal(x @ a + a0, scale).to_event(1))
