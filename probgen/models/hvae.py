"""A VAE with two stochastic layers (Burda et al. 2016, the IWAE paper's 2-layer architecture).

The generative story runs top-down, the guide bottom-up, through the same two sites::

    model:  z2 ~ N(0, I)               z1 | z2 ~ N(μ(z2), σ(z2))      x | z1 ~ p(x | decoder(z1))
    guide:  z1 | x ~ N(μ(x), σ(x))     z2 | z1 ~ N(μ(z1), σ(z1))

Each arrow is a small MLP (``probgen.nn``): with the defaults, x → 100 → 100 → z1 (100) →
50 → 50 → z2 (50) in the guide, mirrored in the model. Nothing here is new machinery: the
trainer, the IWAE estimator (both latent sites in each importance weight) and the checkpoint
format are the ones every story uses. The default objective is ``trace`` (the Monte Carlo
ELBO): the closed-form KL of ``meanfield`` would be wrong here, because z1's prior depends on
z2, which the guide draws from z1. ``elbo="iwae"`` with ``num_particles=k`` trains the IWAE bound.
"""
from __future__ import annotations

from typing import Sequence

import pyro
import pyro.distributions as dist
import torch

from ..check import check_elbo
from ..data import check_data
from ..likelihoods import check_pixel_args, mean_image, pixel_likelihood
from ..nn import GaussianEncoder, check_hidden, check_positive_int, encoder_decoder
from ..story import Story, Traits

__all__ = ["HVAE"]


class HVAE(Story):
    """Two stochastic layers: p(z2) p(z1 | z2) p(x | z1), guide q(z1 | x) q(z2 | z1).

    :param x_dim: values per example (784 for 28×28 images).
    :param z1_dim: size of the lower code z1 (the IWAE paper: 100).
    :param z2_dim: size of the upper code z2 (50).
    :param hidden1: widths between x and z1 (input side first; the decoder mirrors them).
    :param hidden2: widths between z1 and z2 (both directions).
    :param likelihood: ``"bernoulli"`` (binary pixels) or ``"normal"``.
    :param x_shape: shape of one example for :meth:`sample` (default ``(x_dim,)``).
    :param activation: hidden activation (the paper: ``tanh``).
    :param elbo: default objective: ``trace`` (or ``iwae`` with ``num_particles`` in ``fit``).
    """

    kind = "hvae"
    traits = Traits(offers={"sample_mean"})
    static_graph = True  # long fits replay the traced step (infer.compiled)
    elbo = "trace"

    def __init__(self, x_dim: int, *, z1_dim: int = 100, z2_dim: int = 50, hidden1: Sequence[int] = (100, 100),
                 hidden2: Sequence[int] = (50, 50), likelihood: str = "bernoulli",
                 x_shape: Sequence[int] | None = None, activation: str = "tanh", elbo: str = "trace"):
        super().__init__()
        self.x_dim, self.z1_dim, hidden1, self.likelihood, self.x_shape = check_pixel_args(
            x_dim, z_dim=z1_dim, hidden=hidden1, likelihood=likelihood, x_shape=x_shape)
        self.z2_dim = check_positive_int("z2_dim", z2_dim)
        hidden2 = check_hidden(hidden2)
        self.elbo = check_elbo(elbo, type(self).__name__)
        if self.elbo.endswith("meanfield"):
            raise ValueError("HVAE: elbo='meanfield' would use KL(q(z1|x) ‖ p(z1|z2)) with z2 drawn from z1, "
                             "which is not the ELBO; use 'trace' or 'iwae'")
        # x ↔ z1: the VAE's mirrored pair; z1 ↔ z2: a Gaussian network each way
        self.encoder1, self.decoder = encoder_decoder(x_dim, z1_dim, hidden1, likelihood=likelihood,
                                                      activation=activation)
        self.encoder2 = GaussianEncoder(z1_dim, self.z2_dim, hidden2, activation=activation)  # q(z2 | z1)
        self.prior1 = GaussianEncoder(self.z2_dim, z1_dim, tuple(reversed(hidden2)), activation=activation)  # p(z1|z2)

    # -- the generative story and its guide, side by side --------------------------
    def model(self, x: torch.Tensor | None = None, y=None, n: int | None = None):
        """p(z2) p(z1 | z2) p(x | z1)."""
        self.register_params()
        if x is not None:
            n, x = len(x), x.reshape(len(x), -1)  # batch × x_dim
        top = dist.Normal(torch.zeros(n, self.z2_dim, device=self.device), 1.0)  # N(0, I), batch × z2_dim
        with pyro.plate("data", n):
            z2 = pyro.sample("z2", top.to_event(1))
            z1 = pyro.sample("z1", dist.Normal(*self.prior1(z2)).to_event(1))  # batch × z1_dim
            pyro.sample("x", pixel_likelihood(self.likelihood, self.decoder(z1)), obs=x)

    def guide(self, x: torch.Tensor, y=None, n: int | None = None):
        """q(z1 | x) q(z2 | z1), bottom-up."""
        self.register_params()
        x = x.reshape(x.shape[0], -1)
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", dist.Normal(*self.encoder1(x)).to_event(1))  # batch × z1_dim
            pyro.sample("z2", dist.Normal(*self.encoder2(z1)).to_event(1))  # batch × z2_dim

    # -- conveniences -----------------------------------------------------------------
    def prepare(self, x, y=None):
        return check_data(x, x_dim=self.x_dim, binary=self.likelihood == "bernoulli"), y

    @torch.no_grad()
    def sample(self, n: int, *, mean: bool = False) -> torch.Tensor:
        """Draw ``n`` examples top-down: z2 ~ N(0, I), z1 ~ p(z1 | z2), x ~ p(x | z1).

        :param mean: return the decoder's mean image instead of a draw of x.
        """
        n = check_positive_int("n", n)
        z2 = torch.randn(n, self.z2_dim, device=self.device)
        z1 = dist.Normal(*self.prior1(z2)).sample()
        decoded = self.decoder(z1)
        if mean:
            return mean_image(self.likelihood, decoded, self.x_shape)
        return pixel_likelihood(self.likelihood, decoded).sample().clamp(0, 1).reshape(n, *self.x_shape)
