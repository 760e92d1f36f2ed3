"""A story whose posterior is known, for the diagnostics tests."""
from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from probgen.story import Story


class ConjugateGaussian(Story):
    """z ~ N(0, I), x | z ~ N(z, s² I): the posterior is N(x / (1 + s²), s² / (1 + s²) I).
    The guide is that exact posterior with its scale multiplied by ``guide_ratio`` and its mean moved by
    ``guide_shift`` posterior standard deviations."""

    kind = "test_conjugate_gaussian"

    def __init__(self, *, z_dim: int = 2, noise: float = 0.5, guide_ratio: float = 1.0, guide_shift: float = 0.0):
        super().__init__()
        self.z_dim, self.noise, self.guide_ratio, self.guide_shift = z_dim, noise, guide_ratio, guide_shift
        self.unused = nn.Parameter(torch.zeros(1))  # a module with one parameter, like any story

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        s2 = self.noise**2
        return x / (1 + s2), math.sqrt(s2 / (1 + s2))

    def model(self, x=None, y=None, n=None):
        self.register_params()
        n = len(x)
        with pyro.plate("data", n):
            z = pyro.sample("z", dist.Normal(torch.zeros(n, self.z_dim), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, self.noise).to_event(1), obs=x)

    def guide(self, x=None, y=None, n=None):
        self.register_params()
        loc, sd = self.posterior(x)
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(loc + self.guide_shift * sd, sd * self.guide_ratio).to_event(1))


def _conj_data(n=30, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g)
    return z + 0.5 * torch.randn(n, d, generator=g)
