"""A fully Bayesian Gaussian mixture: a plain Pyro model for NUTS (no guide, no Story).

    π ~ Dirichlet(1),  μ_k ~ N(0, prior_scale² I),  σ_k ~ LogNormal(0, 1) (per dimension),
    m_i ~ Categorical(π),  x_i ~ N(μ_{m_i}, σ_{m_i})

The assignment m is marked for enumeration, so NUTS samples only the continuous sites
(:func:`probgen.diagnostics.bayesian_gmm_nuts` fits it and shows label switching).
"""
from __future__ import annotations

from typing import Callable

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import config_enumerate

__all__ = ["bayesian_gmm"]


def bayesian_gmm(n_components: int, dim: int, *, prior_scale: float = 5.0) -> Callable[[torch.Tensor], None]:
    """The model ``fn(data [n, dim])`` of a Bayesian GMM with ``n_components`` components.

    :param n_components: K; ``dim``: D values per point; ``prior_scale``: prior std of the means.
    """
    K, D = int(n_components), int(dim)

    @config_enumerate
    def model(data: torch.Tensor) -> None:
        like = dict(dtype=data.dtype, device=data.device)  # the priors live where the data does (CUDA too)
        w = pyro.sample("weights", dist.Dirichlet(torch.ones(K, **like)))
        with pyro.plate("components", K):
            loc = pyro.sample("locs", dist.Normal(torch.zeros(D, **like), prior_scale).to_event(1))
            scale = pyro.sample("scales", dist.LogNormal(torch.zeros(D, **like), 1.0).to_event(1))
        with pyro.plate("data", len(data)):
            m = pyro.sample("m", dist.Categorical(w))
            pyro.sample("x", dist.Normal(loc[m], scale[m]).to_event(1), obs=data)

    return model
