"""A ``PyroModule`` with a discrete and a continuous latent: a VAE whose prior is a mixture,
c ~ Categorical(weights) (summed out exactly: marked for enumeration), z | c ~ Normal(mu_c, 1),
x | z ~ Bernoulli(decoder(z)). The guide samples z only. It does not import probgen.

    probgen train --story examples/mixture_pyromodule.py:MixturePriorVAE --data digits
"""
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.nn import PyroModule, PyroParam
from torch import nn


class MixturePriorVAE(PyroModule):
    def __init__(self, x_dim=64, z_dim=2, n_components=3, hidden=32):
        super().__init__()
        self.x_dim, self.z_dim, self.n_components = x_dim, z_dim, n_components
        self.weights = PyroParam(torch.ones(n_components) / n_components, constraint=constraints.simplex)
        self.means = PyroParam(torch.randn(n_components, z_dim))
        self.decoder = nn.Sequential(nn.Linear(z_dim, hidden), nn.Softplus(), nn.Linear(hidden, x_dim))
        self.encoder = nn.Sequential(nn.Linear(x_dim, hidden), nn.Softplus(), nn.Linear(hidden, 2 * z_dim))

    def model(self, x):
        pyro.module("nets", self)  # the plain nn.Linear layers; PyroParams register themselves
        x = x.reshape(len(x), -1)
        with pyro.plate("data", len(x)):
            c = pyro.sample("component", dist.Categorical(self.weights), infer={"enumerate": "parallel"})
            z = pyro.sample("code", dist.Normal(self.means[c], 1.0).to_event(1))
            pyro.sample("pixels", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)

    def guide(self, x):
        pyro.module("nets", self)
        x = x.reshape(len(x), -1)
        loc, raw = self.encoder(x).chunk(2, -1)
        with pyro.plate("data", len(x)):
            pyro.sample("code", dist.Normal(loc, nn.functional.softplus(raw) + 1e-3).to_event(1))
