"""The GMM and the VAE in one story: a VAE whose prior is a learned Gaussian mixture.

    c ~ Categorical(π)                 # the GMM's discrete component (probgen/models/gmm.py) ...
    z | c ~ N(μ_c, diag σ_c²)          # ... now draws a code instead of an image
    x | z ~ p(x | decoder(z))          # and the VAE's decoder (probgen/models/vae.py) draws the image

The guide is the VAE's encoder q(z | x) followed by q(c | z) = p(c | z), the exact
posterior of the prior mixture given the code (as in VaDE, Jiang et al. 2017). The
site c is marked for parallel enumeration, so ``TraceEnum_ELBO`` (chosen automatically
by :meth:`probgen.story.Story.fit`) sums over the clusters exactly; with q(c | z) = p(c | z)
the objective is the VAE's ELBO under the mixture prior with c summed out,
E_q(z|x)[log p(x | z) + log Σ_c π_c N(z; μ_c, σ_c) − log q(z | x)]. The same guide makes
probgen's importance-weighted log-likelihood (:mod:`probgen.evaluate`) exact in c: the
weight p(c) p(z | c) / p(c | z) is p(z).
"""
from __future__ import annotations

from typing import Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ..data import check_data
from ..likelihoods import check_pixel_args, mean_image, pixel_likelihood
from ..nn import check_positive_int, encoder_decoder
from ..story import Story, Traits

__all__ = ["MixtureVAE", "matched_accuracy"]


class MixtureVAE(Story):
    """VAE with a K-component Gaussian-mixture prior: clusters and a generative model at once.

    :param x_dim: values per example (64 for 8×8 digits).
    :param n_clusters: K, components of the prior.
    :param z_dim: size of the code z.
    :param hidden: encoder hidden widths; the decoder mirrors them.
    :param likelihood: ``"bernoulli"`` (binary pixels) or ``"normal"``.
    :param x_shape: shape of one example for :meth:`sample` (default ``(x_dim,)``).
    :param activation: hidden activation.
    :param learn_weights: learn π (else uniform; fixed weights keep clusters from dying out).
    """

    kind = "mixture_vae"
    elbo = "enum"
    traits = Traits(offers={"encode", "decode", "sample_mean", "cluster", "sample_label"})

    def __init__(self, x_dim: int, *, n_clusters: int = 10, z_dim: int = 10, hidden: Sequence[int] = (256,),
                 likelihood: str = "bernoulli", x_shape: Sequence[int] | None = None, activation: str = "relu",
                 learn_weights: bool = True):
        super().__init__()
        self.x_dim, self.z_dim, hidden, self.likelihood, self.x_shape = check_pixel_args(
            x_dim, z_dim=z_dim, hidden=hidden, likelihood=likelihood, x_shape=x_shape)
        self.n_clusters = check_positive_int("n_clusters", n_clusters)
        self.encoder, self.decoder = encoder_decoder(x_dim, z_dim, hidden, likelihood=likelihood,
                                                     activation=activation)
        # the prior mixture: weights π (K), means μ (K × z_dim), log-scales log σ (K × z_dim)
        self.logits = nn.Parameter(torch.zeros(n_clusters), requires_grad=bool(learn_weights))
        self.locs = nn.Parameter(torch.randn(n_clusters, z_dim))
        self.log_scales = nn.Parameter(torch.zeros(n_clusters, z_dim))

    # -- the generative story and its guide, side by side --------------------------
    def model(self, x: torch.Tensor | None = None, y=None, n: int | None = None):
        """c ~ Categorical(π); z ~ N(μ_c, σ_c); x ~ p(x | decoder(z))."""
        self.register_params()
        n = x.shape[0] if x is not None else n
        x = x.reshape(n, -1) if x is not None else None  # batch × x_dim
        with pyro.plate("data", n):
            c = pyro.sample("c", dist.Categorical(logits=self.logits))  # batch, or K × 1 when enumerated
            z = pyro.sample("z", dist.Normal(self.locs[c], self.log_scales[c].exp()).to_event(1))
            pyro.sample("x", self._likelihood(z), obs=x)  # z: batch × z_dim

    def guide(self, x: torch.Tensor, y=None, n: int | None = None):
        """q(z | x) from the encoder, then q(c | z) = p(c | z), enumerated."""
        self.register_params()
        x = x.reshape(x.shape[0], -1)
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encoder(x)  # batch × z_dim each
            z = pyro.sample("z", dist.Normal(loc, scale).to_event(1))
            pyro.sample("c", dist.Categorical(logits=self.cluster_logits(z)), infer={"enumerate": "parallel"})

    def cluster_logits(self, z: torch.Tensor) -> torch.Tensor:
        """log p(c | z) for every cluster: ``[..., K]`` for codes ``[..., z_dim]``."""
        joint = dist.Normal(self.locs, self.log_scales.exp()).to_event(1).log_prob(z.unsqueeze(-2))  # ... × K
        joint = joint + torch.log_softmax(self.logits, -1)
        return joint - torch.logsumexp(joint, -1, keepdim=True)

    def _likelihood(self, z: torch.Tensor) -> dist.TorchDistribution:
        return pixel_likelihood(self.likelihood, self.decoder(z))

    # -- clusters -----------------------------------------------------------------------
    def prepare(self, x, y=None):
        return check_data(x, x_dim=self.x_dim, binary=self.likelihood == "bernoulli"), y

    @property
    def weights(self) -> torch.Tensor:
        """Mixture weights π, ``[K]``."""
        return torch.softmax(self.logits.detach(), -1)

    @torch.no_grad()
    def encode(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and scale of q(z | x): ``[n × z_dim]`` each."""
        x, _ = self.prepare(x)
        return self.encoder(x.reshape(len(x), -1).to(self.device))

    @torch.no_grad()
    def cluster_probs(self, x) -> torch.Tensor:
        """p(c | z = E[z | x]) for each example: ``[n × K]``."""
        return self.cluster_logits(self.encode(x)[0]).exp()

    def cluster(self, x) -> torch.Tensor:
        """Most probable cluster of each example: ``[n]`` (long)."""
        return self.cluster_probs(x).argmax(-1)

    @torch.no_grad()
    def init_clusters(self, x, *, seed: int = 0) -> "MixtureVAE":
        """Place the prior's components on k-means clusters of the current codes (a warm start)."""
        from sklearn.cluster import KMeans

        z, scale = self.encode(x)  # n × z_dim each
        labels = torch.as_tensor(KMeans(self.n_clusters, n_init=4, random_state=seed)
                                 .fit(z.cpu().numpy()).labels_, device=z.device)
        for k in range(self.n_clusters):
            zk, sk = z[labels == k], scale[labels == k]
            if len(zk) > 1:
                self.locs[k] = zk.mean(0)
                # cover the codes q(z | x) draws, not only their means: var of means + mean posterior var
                self.log_scales[k] = 0.5 * (zk.var(0) + sk.pow(2).mean(0)).clamp_min(1e-4).log()
        if self.logits.requires_grad:
            counts = torch.bincount(labels, minlength=self.n_clusters).float() + 1.0
            self.logits.copy_(counts.log())
        return self

    # -- sampling -----------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean image of p(x | z) in data shape."""
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        return mean_image(self.likelihood, self.decoder(z), self.x_shape)

    @torch.no_grad()
    def sample(self, n: int, *, mean: bool = False, cluster: int | None = None, label: int | None = None,
               return_clusters: bool = False):
        """Run the story forwards: c from π (or fixed), z from component c, x from the decoder.

        :param mean: the decoder's mean image instead of a draw.
        :param cluster: draw only from this component (``label`` is an alias, for ``probgen sample --label``).
        :param return_clusters: also return the components drawn, ``[n]``.
        """
        n = check_positive_int("n", n)
        cluster = label if cluster is None else cluster
        if cluster is None:
            c = dist.Categorical(logits=self.logits).sample((n,))
        else:
            if not 0 <= int(cluster) < self.n_clusters:
                raise ValueError(f"cluster must be in 0..{self.n_clusters - 1}, got {cluster}")
            c = torch.full((n,), int(cluster), dtype=torch.long, device=self.device)
        z = dist.Normal(self.locs[c], self.log_scales[c].exp()).sample()  # n × z_dim
        x = self.decode(z) if mean else self._likelihood(z).sample().clamp(0, 1).reshape(n, *self.x_shape)
        return (x, c) if return_clusters else x

    @torch.no_grad()
    def sample_clusters(self, n_per: int, *, mean: bool = True) -> torch.Tensor:
        """``n_per`` samples from each component: ``[K, n_per, *x_shape]`` (rows of a per-cluster grid)."""
        return torch.stack([self.sample(n_per, mean=mean, cluster=k) for k in range(self.n_clusters)])


def matched_accuracy(clusters, labels) -> float:
    """Unsupervised clustering accuracy: the fraction of examples whose cluster maps to their
    label under the best one-to-one matching of clusters to labels (Hungarian algorithm,
    ``scipy.optimize.linear_sum_assignment``); clusters left unmatched count as errors.

    :param clusters: cluster index per example ``[n]``; ``labels``: true class ``[n]``.
    """
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    c = np.asarray(torch.as_tensor(clusters).cpu(), dtype=np.int64)
    t = np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64)
    if c.shape != t.shape or c.ndim != 1 or len(c) == 0:
        raise ValueError(f"clusters and labels must be two non-empty vectors of one length, got {c.shape}, {t.shape}")
    counts = np.zeros((c.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(counts, (c, t), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(c))
