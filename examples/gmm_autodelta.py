"""Pyro's Gaussian-mixture tutorial (pyro.ai/examples/gmm.html) as written there, on images: global
mixture weights, component means and a shared scale drawn with ``pyro.sample`` outside the data plate,
the assignment summed out exactly (``config_enumerate``), and the MAP guide ``AutoDelta`` on the
globals, built on ``poutine.block(model, expose=[...])``. It does not import probgen.

    probgen train --story examples/gmm_autodelta.py --data digits --continuous --lr 0.05
"""
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import config_enumerate
from pyro.infer.autoguide import AutoDelta

K = 10  # components


@config_enumerate
def model(data):
    data = data.reshape(len(data), -1)  # images -> vectors
    weights = pyro.sample("weights", dist.Dirichlet(0.5 * torch.ones(K)))
    scale = pyro.sample("scale", dist.LogNormal(-1.0, 1.0))
    with pyro.plate("components", K):
        locs = pyro.sample("locs", dist.Normal(0.5 * torch.ones(data.shape[1]), 1.0).to_event(1))
    with pyro.plate("data", len(data)):
        assignment = pyro.sample("assignment", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[assignment], scale).to_event(1), obs=data)


guide = AutoDelta(poutine.block(model, expose=["weights", "locs", "scale"]))
