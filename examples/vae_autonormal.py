"""A VAE with one global latent: the scale of the code's prior, ``prior_scale ~ LogNormal(0, 1)``, drawn
once for all images. Its guide is Pyro's ``AutoNormal`` on that site (``poutine.block(model,
expose=["prior_scale"])``) plus an encoder for the per-image code. It does not import probgen.

    probgen train --story examples/vae_autonormal.py:AutoNormalVAE --data digits
"""
import pyro
import pyro.distributions as dist
from pyro import poutine
from pyro.infer.autoguide import AutoNormal
from torch import nn


class AutoNormalVAE(nn.Module):
    def __init__(self, x_dim=64, z_dim=4, hidden=64):
        super().__init__()
        self.x_dim, self.z_dim, self.hidden = x_dim, z_dim, hidden
        self.decoder = nn.Sequential(nn.Linear(z_dim, hidden), nn.Softplus(), nn.Linear(hidden, x_dim))
        self.encoder = nn.Sequential(nn.Linear(x_dim, hidden), nn.Softplus(), nn.Linear(hidden, 2 * z_dim))
        self.global_guide = AutoNormal(poutine.block(self.model, expose=["prior_scale"]))

    def model(self, x):
        pyro.module("decoder", self.decoder)
        x = x.reshape(len(x), -1)
        prior_scale = pyro.sample("prior_scale", dist.LogNormal(0.0, 1.0))
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.z_dim), prior_scale[..., None]).to_event(1))
            pyro.sample("obs", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)

    def guide(self, x):
        self.global_guide(x)  # q(prior_scale)
        pyro.module("encoder", self.encoder)
        x = x.reshape(len(x), -1)
        loc, raw = self.encoder(x).chunk(2, -1)
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(loc, nn.functional.softplus(raw) + 1e-3).to_event(1))
