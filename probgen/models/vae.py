"""The variational auto-encoder: a Gaussian mixture with a distributed representation.

From the GMM to the VAE, one step at a time (compare ``probgen/models/gmm.py``):

- GMM:  m ~ Categorical(π)       x | m ~ N(μ_m, Σ_m)         μ_m: a row of a lookup table
- VAE:  z ~ N(0, I)              x | z ~ p(x | μ(z), σ(z))    μ(z), σ(z): a neural network

The discrete component m becomes a continuous code z, and the table of means
becomes a decoder network. Because z can no longer be summed out, the guide
q(z | x) (an encoder network) proposes codes and SVI maximises the lower bound
L_b, where log p(x) = KL(q(z | x) ‖ p(z | x)) + L_b.
"""
from __future__ import annotations

from typing import Sequence

import pyro
import pyro.distributions as dist
import torch

from ..check import check_elbo
from ..data import check_data
from ..likelihoods import check_pixel_args, mean_image, pixel_likelihood
from ..nn import check_positive_int, encoder_decoder
from ..story import Story, Traits

__all__ = ["VAE"]


class VAE(Story):
    """VAE with an MLP encoder q(z | x) and decoder p(x | z).

    :param x_dim: values per example (64 for 8×8 digits).
    :param z_dim: size of the code z.
    :param hidden: hidden-layer widths of the encoder; the decoder mirrors them.
    :param likelihood: ``"bernoulli"`` (binary pixels) or ``"normal"`` (real values).
    :param x_shape: shape of one example for :meth:`sample` (default ``(x_dim,)``).
    :param activation: hidden activation (``relu``, ``softplus``, ``tanh``, ...).
    :param elbo: default training objective: ``meanfield`` (analytic KL), ``trace``,
        ``jit`` or ``jit-meanfield``.
    """

    kind = "vae"
    traits = Traits(offers={"encode", "decode", "sample_mean"})
    static_graph = True  # long fits replay the traced step (infer.compiled)

    def __init__(self, x_dim: int, *, z_dim: int = 10, hidden: Sequence[int] = (256,),
                 likelihood: str = "bernoulli", x_shape: Sequence[int] | None = None,
                 activation: str = "relu", elbo: str = "meanfield"):
        super().__init__()
        self.x_dim, self.z_dim, hidden, self.likelihood, self.x_shape = check_pixel_args(
            x_dim, z_dim=z_dim, hidden=hidden, likelihood=likelihood, x_shape=x_shape)
        self.elbo = check_elbo(elbo, type(self).__name__)
        self.encoder, self.decoder = encoder_decoder(x_dim, z_dim, hidden, likelihood=likelihood,
                                                     activation=activation)

    # -- the generative story and its guide, side by side --------------------------
    def model(self, x: torch.Tensor | None = None, y=None, n: int | None = None):
        """p(z) p(x | z): z ~ N(0, I), x ~ Bernoulli/Normal(decoder(z))."""
        self.register_params()
        n = x.shape[0] if x is not None else n
        x = x.reshape(n, -1) if x is not None else None  # batch × x_dim
        with pyro.plate("data", n):
            loc = torch.zeros(n, self.z_dim, device=self.device)
            z = pyro.sample("z", dist.Normal(loc, torch.ones_like(loc)).to_event(1))  # batch × z_dim
            pyro.sample("x", self._likelihood(z), obs=x)

    def guide(self, x: torch.Tensor, y=None, n: int | None = None):
        """q(z | x): a diagonal Gaussian from the encoder network."""
        self.register_params()
        x = x.reshape(x.shape[0], -1)
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encoder(x)  # batch × z_dim each
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def _likelihood(self, z: torch.Tensor) -> dist.TorchDistribution:
        return pixel_likelihood(self.likelihood, self.decoder(z))

    # -- conveniences -----------------------------------------------------------------
    def prepare(self, x, y=None):
        return check_data(x, x_dim=self.x_dim, binary=self.likelihood == "bernoulli"), y

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and scale of q(z | x): ``[n × z_dim]`` each."""
        x, _ = self.prepare(x)
        return self.encoder(x.reshape(len(x), -1).to(self.device))

    def _check_z(self, z) -> torch.Tensor:
        try:
            z = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"z: expected a tensor of codes [.., {self.z_dim}], got {type(z).__name__}") from None
        if z.dim() == 0 or z.shape[-1] != self.z_dim or z.numel() == 0:
            raise ValueError(f"z: expected codes [.., {self.z_dim}], got shape {tuple(z.shape)}")
        if not torch.isfinite(z).all():
            raise ValueError("z: codes contain NaN or inf")
        return z

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean image of p(x | z) in data shape, values in [0, 1] for Bernoulli."""
        z = self._check_z(z)
        return mean_image(self.likelihood, self.decoder(z), self.x_shape)

    @torch.no_grad()
    def sample(self, n: int, *, mean: bool = False, z: torch.Tensor | None = None) -> torch.Tensor:
        """Draw ``n`` examples from the story: z ~ N(0, I), then x ~ p(x | z).

        :param mean: return the decoder's mean image instead of a draw (smoother pictures).
        :param z: codes to decode instead of drawing them, ``[n × z_dim]``.
        """
        n = check_positive_int("n", n)
        if z is None:
            z = torch.randn(n, self.z_dim, device=self.device)
        else:
            z = self._check_z(z)
            if z.shape != (n, self.z_dim):
                raise ValueError(f"z: expected {n} codes [{n}, {self.z_dim}], got shape {tuple(z.shape)}")
        if mean:
            return self.decode(z)
        x = self._likelihood(z).sample()
        return x.clamp(0, 1).reshape(n, *self.x_shape)
