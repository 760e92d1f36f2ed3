"""The plain auto-encoder: the VAE's networks without the probabilistic story.

- VAE:  z ~ N(0, I),  x | z ~ p(x | decoder(z)),  fitted by the ELBO with q(z | x)
- AE:   code = encoder(x),  x ~ p(x | decoder(code)),  fitted by maximum likelihood
        of the reconstruction: no latent sample site, no prior, no KL term.

Nothing ties the codes to N(0, I), so "draw a random code, decode it" (:meth:`AutoEncoder.sample`)
lands mostly where the decoder was never trained: the lecture's "why VAE" experiment.
A Gaussian fitted to the training codes (``code_prior="fitted"``) helps, but the codes
fill only parts of that Gaussian.
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import pyro
import pyro.distributions as dist
import torch

from ..data import check_data
from ..likelihoods import check_pixel_args, mean_image, pixel_likelihood
from ..nn import check_positive_int, encoder_decoder
from ..story import Story, Traits

__all__ = ["AutoEncoder"]

CODE_PRIORS = ("normal", "fitted")


class AutoEncoder(Story):
    """Deterministic auto-encoder with the same layer sizes as :class:`probgen.models.VAE`
    (the encoder ends in ``z_dim`` codes instead of a mean and a scale).

    :param x_dim: values per example (64 for 8×8 digits).
    :param z_dim: size of the code.
    :param hidden: hidden-layer widths of the encoder; the decoder mirrors them.
    :param likelihood: ``"bernoulli"`` (binary pixels: cross-entropy) or ``"normal"``.
    :param x_shape: shape of one example for :meth:`sample` (default ``(x_dim,)``).
    :param activation: hidden activation (``relu``, ``softplus``, ``tanh``, ...).
    """

    kind = "autoencoder"
    elbo = "trace"  # with no latent site, Trace_ELBO is the negative log-likelihood
    static_graph = False  # its code prior lives in buffers, which the captured step refuses
    # no latent site and no guide: log p(x) by importance sampling with a proposal of its own (log_prob)
    traits = Traits(estimator="proposal", proposal_name="IS, fitted code prior", guide=False,
                    offers={"encode", "decode", "sample_mean"})

    def __init__(self, x_dim: int, *, z_dim: int = 10, hidden: Sequence[int] = (256,),
                 likelihood: str = "bernoulli", x_shape: Sequence[int] | None = None,
                 activation: str = "relu"):
        super().__init__()
        self.x_dim, self.z_dim, hidden, self.likelihood, self.x_shape = check_pixel_args(
            x_dim, z_dim=z_dim, hidden=hidden, likelihood=likelihood, x_shape=x_shape)
        self.encoder, self.decoder = encoder_decoder(x_dim, z_dim, hidden, likelihood=likelihood,
                                                     activation=activation, gaussian=False)
        # Gaussian fitted to the training codes at the end of fit (N(0, I) until then)
        self.register_buffer("code_mean", torch.zeros(z_dim))  # z_dim
        self.register_buffer("code_scale_tril", torch.eye(z_dim))  # z_dim × z_dim

    # -- the model; the guide is Story's default (no latent sites) -----------------------
    def model(self, x: torch.Tensor | None = None, y=None, n: int | None = None):
        """x ~ p(x | decoder(encoder(x))): maximum likelihood of the reconstruction."""
        self.register_params()
        if x is None:
            raise ValueError("an auto-encoder has no generative story without data; use sample(n)")
        x = x.reshape(x.shape[0], -1)  # batch × x_dim
        with pyro.plate("data", x.shape[0]):
            code = self.encoder(x)  # batch × z_dim, a deterministic function of x
            pyro.sample("x", self._likelihood(code), obs=x)

    def _likelihood(self, code: torch.Tensor) -> dist.TorchDistribution:
        return pixel_likelihood(self.likelihood, self.decoder(code))

    # -- the probgen API ---------------------------------------------------------------
    def prepare(self, x, y=None):
        return check_data(x, x_dim=self.x_dim, binary=self.likelihood == "bernoulli"), y

    def end_fit(self, x: torch.Tensor, y=None, *, val=None, val_y=None) -> None:
        """After SVI (maximum likelihood), fit the Gaussian of the training codes used by
        ``sample(code_prior="fitted")`` and ``log_prob``: the final checkpoint holds it."""
        self.fit_code_prior(x)

    @torch.no_grad()
    def fit_code_prior(self, x) -> None:
        """Store mean and Cholesky factor of the covariance of the codes of ``x``."""
        codes = self.encode(x).double()  # n × z_dim
        mean = codes.mean(0)
        centred = codes - mean
        eye = torch.eye(self.z_dim, dtype=codes.dtype, device=codes.device)  # on the codes' device (CUDA too)
        cov = centred.T @ centred / max(len(codes) - 1, 1) + 1e-6 * eye  # z_dim × z_dim
        self.code_mean.copy_(mean.float())
        self.code_scale_tril.copy_(torch.linalg.cholesky(cov).float())

    def code_distribution(self, code_prior: str = "normal") -> dist.TorchDistribution:
        """N(0, I) (``"normal"``) or the Gaussian fitted to the training codes (``"fitted"``)."""
        if code_prior not in CODE_PRIORS:
            raise ValueError(f"code_prior must be one of {CODE_PRIORS}, got {code_prior!r}")
        if code_prior == "normal":
            return dist.MultivariateNormal(torch.zeros_like(self.code_mean), scale_tril=torch.eye(
                self.z_dim, device=self.device))
        return dist.MultivariateNormal(self.code_mean, scale_tril=self.code_scale_tril)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes ``[n × z_dim]`` (a point, not a distribution)."""
        x = check_data(x, x_dim=self.x_dim)
        return self.encoder(x.reshape(len(x), -1).to(self.device))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean image of p(x | code) in data shape, values in [0, 1]."""
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        return mean_image(self.likelihood, self.decoder(z), self.x_shape)

    @torch.no_grad()
    def sample(self, n: int, *, code_prior: str = "normal", mean: bool = False,
               z: torch.Tensor | None = None) -> torch.Tensor:
        """Decode random codes: the experiment that shows why an AE is not a generator.

        :param code_prior: ``"normal"``: codes from N(0, I), as a VAE would;
            ``"fitted"``: from the Gaussian fitted to the training codes.
        :param mean: return the decoder's mean image instead of a draw.
        :param z: codes to decode instead of drawing them, ``[n × z_dim]``.
        """
        n = check_positive_int("n", n)
        if z is None:
            z = self.code_distribution(code_prior).sample((n,))  # n × z_dim
        if mean:
            return self.decode(z)
        return self._likelihood(z.to(self.device)).sample().clamp(0, 1).reshape(n, *self.x_shape)

    # -- a likelihood: importance sampling around the encoder's code -----------------------
    def code_model(self, x: torch.Tensor, y=None, *, code_prior: str = "fitted"):
        """The generative story an AE implies: code ~ code prior, x ~ p(x | decoder(code))."""
        prior = self.code_distribution(code_prior)
        with pyro.plate("data", x.shape[0]):
            code = pyro.sample("code", prior)  # [K, b, z_dim] under the particle plate
            pyro.sample("x", self._likelihood(code), obs=x.reshape(x.shape[0], -1))

    def proposal(self, x: torch.Tensor, y=None, *, code_prior: str = "fitted", proposal_scale: float = 0.1):
        """q(code | x) = N(encoder(x), (proposal_scale · s)² I), s the spread of the training codes."""
        spread = self.code_scale_tril.diagonal() if code_prior == "fitted" else torch.ones_like(self.code_mean)
        loc = self.encoder(x.reshape(x.shape[0], -1))  # b × z_dim
        with pyro.plate("data", x.shape[0]):
            pyro.sample("code", dist.Normal(loc, proposal_scale * spread).to_event(1))

    @torch.no_grad()
    def log_prob(self, x, y=None, *, num_samples: int = 1000, code_prior: str = "fitted",
                 proposal_scale: float = 0.1, **options) -> torch.Tensor:
        """log p(x) of the generative model "code ~ code prior, x ~ p(x | decoder(code))"
        (:meth:`code_model`), by importance sampling with :meth:`proposal` around the
        encoder's code (an AE has no density of its own): a stochastic lower bound, like IWAE.

        :param num_samples: importance samples K per example.
        :param code_prior: ``"fitted"`` (default) or ``"normal"``.
        :param proposal_scale: proposal width relative to the code spread.
        :param options: :meth:`probgen.story.Story.log_prob`'s (``batch_size``, ``return_weights``, ...).
        """
        x, _ = self.prepare(x)
        num_samples = check_positive_int("num_samples", num_samples)
        self.code_distribution(code_prior)  # validates the name
        return super().log_prob(x.reshape(len(x), -1), num_samples=num_samples,
                                model=partial(self.code_model, code_prior=code_prior),
                                guide=partial(self.proposal, code_prior=code_prior, proposal_scale=proposal_scale),
                                **options)
