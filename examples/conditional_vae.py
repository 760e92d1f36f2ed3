"""A conditional VAE written as plain Pyro: ``model(x, y)`` and ``guide(x, y)`` take the label as an
argument, both networks see it as a one-hot vector. It does not import probgen.

    probgen train --story examples/conditional_vae.py:ConditionalVAE --data digits --labels --epochs 20

With ``label_prior=True`` the model also holds its own prior over the label,
``pyro.sample("label", Categorical(probs), obs=y)`` with learned ``probs``; probgen then scores
log p(x) = log Σ_y p(x, y) with that p(y) instead of a uniform one.
"""
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch import nn


class ConditionalVAE(nn.Module):
    def __init__(self, x_dim=64, n_classes=10, z_dim=2, hidden_dim=64, label_prior=False):
        super().__init__()
        self.x_dim, self.n_classes, self.z_dim = x_dim, n_classes, z_dim
        self.hidden_dim, self.label_prior = hidden_dim, label_prior
        self.encoder = nn.Sequential(nn.Linear(x_dim + n_classes, hidden_dim), nn.Softplus(),
                                     nn.Linear(hidden_dim, 2 * z_dim))
        self.decoder = nn.Sequential(nn.Linear(z_dim + n_classes, hidden_dim), nn.Softplus(),
                                     nn.Linear(hidden_dim, x_dim))

    def one_hot(self, y):
        return nn.functional.one_hot(y.long(), self.n_classes).float()

    def model(self, x, y):
        pyro.module("decoder", self.decoder)
        x = x.reshape(-1, self.x_dim)
        with pyro.plate("data", x.shape[0]):
            if self.label_prior:
                probs = pyro.param("label_probs", torch.ones(self.n_classes) / self.n_classes,
                                   constraint=constraints.simplex)
                pyro.sample("label", dist.Categorical(probs), obs=y)
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], self.z_dim), 1.).to_event(1))
            onehot = self.one_hot(y).expand(*z.shape[:-1], self.n_classes)  # [particles ×] batch × C
            logits = self.decoder(torch.cat([z, onehot], -1))
            pyro.sample("x", dist.Bernoulli(logits=logits, validate_args=False).to_event(1), obs=x)

    def guide(self, x, y):
        pyro.module("encoder", self.encoder)
        x = x.reshape(-1, self.x_dim)
        with pyro.plate("data", x.shape[0]):
            h = self.encoder(torch.cat([x, self.one_hot(y)], -1))
            loc, scale = h[:, :self.z_dim], nn.functional.softplus(h[:, self.z_dim:]) + 1e-4
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))
