"""Probabilistic PCA: the lecture's missing middle step between the GMM and the VAE.

    GMM:   m ~ Categorical(π)     x | m ~ N(μ_m, Σ_m)          a table of means, one per m
    PPCA:  z ~ N(0, I)            x | z ~ N(W z + μ, σ² I)      a continuous z, a *linear* map
    VAE:   z ~ N(0, I)            x | z ~ p(x | decoder(z))     the linear map becomes a network

(Tipping & Bishop 1999). Because the map is linear, z integrates out in closed form:
p(x) = N(x; μ, W Wᵀ + σ² I), so PPCA is the one latent-variable story here whose exact
log-likelihood is known — and, since it is also a Pyro model/guide pair trained by SVI like the VAE,
its IWAE estimate can be checked against that exact number.

The exact posterior is Gaussian too: p(z | x) = N(M⁻¹ Wᵀ (x − μ), σ² M⁻¹), M = Wᵀ W + σ² I. Its
mean is linear in x and its covariance does not depend on x, so the guide below — a linear
encoder for the mean and one full covariance shared by all examples — can represent it exactly.
"""
from __future__ import annotations

from typing import Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ..data import check_data
from ..likelihoods import check_x_shape
from ..nn import check_positive_int
from ..story import Story, Traits

__all__ = ["PPCA"]


class PPCA(Story):
    """Probabilistic PCA, z ~ N(0, I), x | z ~ N(W z + μ, σ² I), with a Gaussian guide q(z | x).

    :param x_dim: values per example (64 for 8×8 digits).
    :param z_dim: size of the code z (the number of principal directions).
    :param x_shape: shape of one example for :meth:`sample` (default ``(x_dim,)``).
    """

    kind = "ppca"
    # exact log p(x) from the closed form; the guide still gives an IWAE estimate to check it against
    static_graph = True  # long fits take the captured step (infer.compiled)
    traits = Traits(trainers=("svi",), estimator="exact", guide=True, offers={"encode", "decode", "sample_mean"})

    def __init__(self, x_dim: int, *, z_dim: int = 10, x_shape: Sequence[int] | None = None):
        super().__init__()
        self.x_dim = check_positive_int("x_dim", x_dim)
        self.z_dim = check_positive_int("z_dim", z_dim)
        self.x_shape = check_x_shape(x_dim, x_shape)
        self.W = nn.Parameter(0.1 * torch.randn(x_dim, z_dim))  # D × q: the linear map
        self.mu = nn.Parameter(torch.zeros(x_dim))  # D
        self.log_sigma = nn.Parameter(torch.zeros(()))  # log σ, one noise level for every value
        # guide: q(z | x) = N(A x + b, L Lᵀ) -- the exact posterior has this form
        self.encoder = nn.Linear(x_dim, z_dim)  # D -> q
        self.posterior_tril = nn.Parameter(torch.zeros(z_dim, z_dim))  # q × q, log-diagonal Cholesky factor

    @property
    def sigma(self) -> torch.Tensor:
        return self.log_sigma.exp()

    @property
    def scale_tril(self) -> torch.Tensor:
        """L of the guide's covariance L Lᵀ, ``[q × q]`` (positive diagonal)."""
        raw = self.posterior_tril
        return torch.tril(raw, -1) + torch.diag_embed(raw.diagonal().exp())

    # -- the generative story and its guide, side by side --------------------------
    def model(self, x: torch.Tensor | None = None, y=None, n: int | None = None):
        """p(z) p(x | z): z ~ N(0, I), x ~ N(W z + μ, σ² I)."""
        self.register_params()
        x = None if x is None else x.reshape(len(x), -1)  # batch × D
        prior = dist.Normal(self.mu.new_zeros(()), 1.0)  # on the parameters' device
        with pyro.plate("data", n if x is None else len(x)) as idx:
            z = pyro.sample("z", prior.expand([len(idx), self.z_dim]).to_event(1))  # batch × q
            pyro.sample("x", dist.Normal(z @ self.W.T + self.mu, self.sigma).to_event(1), obs=x)  # linear map

    def guide(self, x: torch.Tensor, y=None, n: int | None = None):
        """q(z | x) = N(A x + b, L Lᵀ): a linear encoder and one covariance for all examples."""
        self.register_params()
        x = x.reshape(x.shape[0], -1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.MultivariateNormal(self.encoder(x), scale_tril=self.scale_tril))

    # -- the closed forms --------------------------------------------------------------
    def marginal(self) -> dist.TorchDistribution:
        """p(x) = N(μ, W Wᵀ + σ² I), z integrated out."""
        return dist.LowRankMultivariateNormal(self.mu, self.W, self.sigma.pow(2).expand(self.x_dim))

    def prepare(self, x, y=None):
        return check_data(x, x_dim=self.x_dim), y

    @torch.no_grad()
    def log_prob(self, x, y=None, *, num_samples: int | None = None) -> torch.Tensor:
        """Exact log p(x) per example in nats (``num_samples`` is ignored: nothing to sample)."""
        x, _ = self.prepare(x)
        return self.marginal().log_prob(x.reshape(len(x), -1).to(self.device))

    @torch.no_grad()
    def posterior(self, x) -> dist.MultivariateNormal:
        """The exact p(z | x) = N(M⁻¹ Wᵀ (x − μ), σ² M⁻¹), M = Wᵀ W + σ² I, batched over ``x``."""
        x, _ = self.prepare(x)
        x = x.reshape(len(x), -1).to(self.device)
        s2 = self.sigma.pow(2)
        M = self.W.T @ self.W + s2 * torch.eye(self.z_dim, device=self.device)  # q × q
        mean = torch.linalg.solve(M, self.W.T @ (x - self.mu).T).T  # n × q
        return dist.MultivariateNormal(mean, covariance_matrix=s2 * torch.linalg.inv(M))

    # -- conveniences -----------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and per-dimension scale of q(z | x): ``[n × z_dim]`` each."""
        x, _ = self.prepare(x)
        loc = self.encoder(x.reshape(len(x), -1).to(self.device))
        return loc, self.scale_tril.pow(2).sum(-1).sqrt().expand_as(loc)

    @torch.no_grad()
    def decode(self, z) -> torch.Tensor:
        """The mean W z + μ of p(x | z), in data shape."""
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        if z.dim() == 0 or z.shape[-1] != self.z_dim:
            raise ValueError(f"z: expected codes [.., {self.z_dim}], got shape {tuple(z.shape)}")
        return (z @ self.W.T + self.mu).reshape(*z.shape[:-1], *self.x_shape)

    @torch.no_grad()
    def sample(self, n: int, *, mean: bool = False, z: torch.Tensor | None = None) -> torch.Tensor:
        """Draw ``n`` examples: z ~ N(0, I), then x ~ N(W z + μ, σ² I).

        :param mean: return W z + μ instead of a draw.
        :param z: codes to decode instead of drawing them, ``[n × z_dim]``.
        """
        n = check_positive_int("n", n)
        z = torch.randn(n, self.z_dim, device=self.device) if z is None else z
        x = self.decode(z)
        if z.shape[0] != n:
            raise ValueError(f"z: expected {n} codes, got {z.shape[0]}")
        return x if mean else x + self.sigma * torch.randn_like(x)
