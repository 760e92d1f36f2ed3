"""The conditional VAE: the VAE's story with the label y given to both networks.

- VAE:   z ~ N(0, I)    x | z    ~ p(x | decoder(z))        q(z | x)
- CVAE:  z ~ N(0, I)    x | z, y ~ p(x | decoder(z, y))     q(z | x, y)

y is not a random site here: it is an input we condition on (both networks see it
as a one-hot vector concatenated to their input). Because the decoder is told the
class, the code z is free to hold what the label does not say: the *style* of the
digit (slant, thickness, width). That is what :meth:`CVAE.transfer` uses: encode x
with its own label, decode the same code with another label.
"""
from __future__ import annotations

from typing import Sequence

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F

from ..check import check_elbo
from ..data import MAX_CLASSES, check_data, check_tensor
from ..likelihoods import check_pixel_args, mean_image, pixel_likelihood
from ..nn import check_positive_int, encoder_decoder
from ..story import Story, Traits

__all__ = ["CVAE"]


class CVAE(Story):
    """Conditional VAE with MLP networks q(z | x, y) and p(x | z, y).

    :param x_dim: values per example (64 for 8×8 digits).
    :param n_classes: number of labels C (10 for digits).
    :param z_dim: size of the style code z (default 2: a small code leaves the class to the
        label; with larger codes, prior draws can carry a class of their own and disagree with y).
    :param hidden: hidden-layer widths of the encoder; the decoder mirrors them.
    :param likelihood: ``"bernoulli"`` (binary pixels) or ``"normal"`` (real values).
    :param x_shape: shape of one example for :meth:`sample` (default ``(x_dim,)``).
    :param activation: hidden activation (``relu``, ``softplus``, ``tanh``, ...).
    :param elbo: default objective: ``meanfield`` (Trace_ELBO with the Gaussian KL in closed
        form, as the VAE), ``trace`` (KL sampled too), ``jit`` or ``jit-meanfield``.
    """

    kind = "cvae"
    static_graph = True  # long fits replay the traced step (infer.compiled)
    # model(x, y) needs the labels: trainers pass them, the estimator marginalises over them
    traits = Traits(labels=True, offers={"encode", "decode", "sample_mean", "transfer", "sample_label"})

    def __init__(self, x_dim: int, n_classes: int, *, z_dim: int = 2, hidden: Sequence[int] = (256,),
                 likelihood: str = "bernoulli", x_shape: Sequence[int] | None = None,
                 activation: str = "relu", elbo: str = "meanfield"):
        super().__init__()
        self.x_dim, self.z_dim, hidden, self.likelihood, self.x_shape = check_pixel_args(
            x_dim, z_dim=z_dim, hidden=hidden, likelihood=likelihood, x_shape=x_shape)
        self.n_classes = check_positive_int("n_classes", n_classes)
        if not 2 <= self.n_classes <= MAX_CLASSES:  # one input column of both networks per class
            raise ValueError(f"n_classes must lie in 2..{MAX_CLASSES}, got {n_classes}")
        self.elbo = check_elbo(elbo, type(self).__name__)
        # the networks see [input, one-hot(y)]
        self.encoder, self.decoder = encoder_decoder(x_dim, z_dim, hidden, likelihood=likelihood,
                                                     activation=activation, condition_dim=n_classes)

    # -- the generative story and its guide, side by side --------------------------
    def model(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None, n: int | None = None):
        """p(z) p(x | z, y): z ~ N(0, I), x ~ Bernoulli/Normal(decoder(z, y))."""
        self.register_params()
        y = self._require_labels(y)
        n = len(y)
        x = x.reshape(n, -1) if x is not None else None  # batch × x_dim
        with pyro.plate("data", n):
            loc = torch.zeros(n, self.z_dim, device=self.device)
            z = pyro.sample("z", dist.Normal(loc, torch.ones_like(loc)).to_event(1))  # [particles ×] batch × z_dim
            pyro.sample("x", self._likelihood(z, y), obs=x)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None, n: int | None = None):
        """q(z | x, y): a diagonal Gaussian from the encoder network."""
        self.register_params()
        y = self._require_labels(y)
        x = x.reshape(x.shape[0], -1)
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encoder(torch.cat([x, self.one_hot(y, len(x))], -1))  # batch × z_dim each
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def _likelihood(self, z: torch.Tensor, y: torch.Tensor) -> dist.TorchDistribution:
        h = self._decoder_input(z, y)
        return pixel_likelihood(self.likelihood, self.decoder(h))

    def _decoder_input(self, z: torch.Tensor, y) -> torch.Tensor:
        onehot = self.one_hot(y, z.shape[-2] if z.dim() > 1 else 1)  # batch × C
        return torch.cat([z, onehot.expand(*z.shape[:-1], self.n_classes)], -1)  # [particles ×] batch × (z+C)

    # -- labels -------------------------------------------------------------------------
    def _require_labels(self, y):
        if y is None:
            raise ValueError("a CVAE needs labels y: pass y=labels to fit/log_prob (probgen does it "
                             "for labelled data)")
        return y

    def one_hot(self, y, n: int) -> torch.Tensor:
        """Labels as rows of one-hot vectors ``[n × C]``.

        :param y: an int (one class for all ``n``), long labels ``[n]``, or a float
            tensor ``[n × C]`` of class weights (used as given: interpolating labels works).
        :param n: number of rows when ``y`` is an int.
        """
        if isinstance(y, (int,)) and not isinstance(y, bool):
            if not 0 <= y < self.n_classes:  # before torch.full: 10**30 does not fit a long
                raise ValueError(f"labels must lie in 0..{self.n_classes - 1}, got {y}")
            y = torch.full((n,), y, dtype=torch.long)
        y = check_tensor(torch.as_tensor(y, device=self.device), "y")
        if y.is_floating_point():
            if y.dim() < 2:
                raise ValueError(f"labels must be whole class numbers 0..{self.n_classes - 1} (or soft labels "
                                 f"[n, {self.n_classes}]), got floats of shape {tuple(y.shape)}")
            if y.dim() != 2 or y.shape[-1] != self.n_classes:
                raise ValueError(f"soft labels must have shape [n, {self.n_classes}], got {tuple(y.shape)}")
            return y.float()
        if y.dim() == 0:  # one class (numpy or tensor scalar) for all n
            y = y.expand(n)
        y = y.long().reshape(-1)
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.n_classes):
            raise ValueError(f"labels must lie in 0..{self.n_classes - 1}, got {int(y.min())}..{int(y.max())}")
        return F.one_hot(y, self.n_classes).float()

    # -- conveniences -----------------------------------------------------------------
    def prepare(self, x, y=None):
        x = check_data(x, x_dim=self.x_dim, binary=self.likelihood == "bernoulli")
        if y is None:
            raise ValueError("a CVAE needs labels y (one per example)")
        y = torch.as_tensor(y)
        if y.is_floating_point() and not bool((y == y.round()).all()):  # .long() would read 2.5 as class 2
            bad = float(y[y != y.round()].reshape(-1)[0])
            raise ValueError(f"y: labels must be whole class numbers 0..{self.n_classes - 1}, got {bad:g}")
        y = y.long().reshape(-1)
        if len(y) != len(x):
            raise ValueError(f"got {len(x)} examples and {len(y)} labels")
        self.one_hot(y, len(y))  # range check
        return x, y.to(self.device)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and scale of q(z | x, y): ``[n × z_dim]`` each.

        :param y: the labels of ``x`` (an int for all, or ``[n]``).
        """
        x = check_data(x, x_dim=self.x_dim).reshape(len(x), -1).to(self.device)
        return self.encoder(torch.cat([x, self.one_hot(y, len(x))], -1))

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y) -> torch.Tensor:
        """Mean image of p(x | z, y) in data shape ``[n, *x_shape]``, values in [0, 1].

        :param y: class to draw (an int for all rows, long ``[n]``, or soft ``[n × C]``).
        """
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device).reshape(-1, self.z_dim)
        h = self._decoder_input(z, y)
        return mean_image(self.likelihood, self.decoder(h), self.x_shape)  # len(z) × *x_shape

    @torch.no_grad()
    def sample(self, n: int, *, label=None, mean: bool = False, z: torch.Tensor | None = None) -> torch.Tensor:
        """Draw ``n`` examples of class ``label``: z ~ N(0, I), then x ~ p(x | z, label).

        :param label: an int (all ``n`` of that class), long labels ``[n]``, or ``None``
            (classes in turn, 0, 1, …, C-1, 0, …, so a grid shows every class).
        :param mean: return the decoder's mean image instead of a draw.
        :param z: codes to decode instead of drawing them, ``[n × z_dim]``.
        """
        n = check_positive_int("n", n)
        if label is None:
            label = torch.arange(n) % self.n_classes
        onehot = self.one_hot(label, n)
        if len(onehot) != n:
            raise ValueError(f"got {len(onehot)} labels for n={n} samples")
        if z is None:
            z = torch.randn(n, self.z_dim, device=self.device)
        if mean:
            return self.decode(z, onehot)
        x = self._likelihood(z.to(self.device), onehot).sample()
        return x.clamp(0, 1).reshape(n, *self.x_shape)

    @torch.no_grad()
    def transfer(self, x: torch.Tensor, y_from, y_to, *, mean: bool = True) -> torch.Tensor:
        """Keep the style code of ``x`` and redraw it as class ``y_to``.

        :param x: images ``[n, ...]``; ``y_from``: their labels (int or ``[n]``).
        :param y_to: target class (int or ``[n]``).
        :param mean: decoder mean images (default) instead of Bernoulli/Normal draws.
        :return: ``[n, *x_shape]`` in [0, 1].
        """
        loc, _ = self.encode(x, y_from)  # n × z_dim: the style, with the class explained away
        if mean:
            return self.decode(loc, y_to)
        return self._likelihood(loc, self.one_hot(y_to, len(loc))).sample().clamp(0, 1).reshape(
            len(loc), *self.x_shape)
