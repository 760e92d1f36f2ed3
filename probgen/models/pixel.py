"""Autoregressive pixel models: every pixel given all the pixels before it.

The story has no latent variable at all. An image is generated one pixel at a
time in raster order (row by row, left to right)::

    p(x) = Π_i p(x_i | x_1, …, x_{i-1})

and a single network computes all the conditionals in one pass (teacher forcing),
because its connections are *masked*: the output at pixel (i, j) only sees the
pixels before (i, j). Training is therefore plain maximum likelihood, and the
log-likelihood is exact (no importance sampling, no bound). In Pyro this is one
observed site with no guide at all::

    pyro.sample("x", Bernoulli(logits=net(x)).to_event(3), obs=x)

Two networks (:mod:`probgen.nn.autoregressive`) share the same wrapper :class:`PixelModel`:
:class:`~probgen.nn.GatedPixelCNN` (Gated PixelCNN, no blind spot) and
:class:`~probgen.nn.RowLSTMNet` (PixelRNN, Row LSTM).

Sampling re-uses what cannot change (as in Fast PixelCNN++): once a row is complete
each vertical block computes just that row from a cache of the rows above, and for
each new pixel each horizontal block computes just that pixel from the few columns
to its left, as matrix products; the Row LSTM keeps the LSTM state of the row above
and computes one column per pixel. ``sample(method="naive")`` re-runs the whole
network for every pixel and draws the same images, a few hundred times slower
(``experiments/bench_pixel_sampling.py``).
"""
from __future__ import annotations

from dataclasses import replace

import math
from typing import ClassVar, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import TorchDistribution, constraints

from ..data import MAX_CLASSES, check_data
from ..nn import GatedPixelCNN, RowLSTMNet, check_kernel, check_positive_int
from ..runtime import progress_bar
from ..story import Story, Traits

__all__ = ["PixelModel", "BACKBONES", "LIKELIHOODS", "METHODS"]

BACKBONES = ("gated", "rowlstm")
#: samplers: cache the rows above and earlier columns / re-run the current row / re-run everything
METHODS = ("cached", "rows", "naive")
LIKELIHOODS = ("bernoulli", "categorical")


# =====================================================================================
# The probabilistic wrapper
# =====================================================================================
class _Autoregressive(TorchDistribution):
    """p(x) of a :class:`PixelModel` as a distribution: ``sample`` runs the raster loop,
    ``log_prob`` is the exact teacher-forced sum. Used when ``model`` runs without data."""

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real

    def __init__(self, story: "PixelModel", n: int, y: torch.Tensor | None):
        self.story, self.y = story, y
        super().__init__(torch.Size([n]), torch.Size([1, *story.shape]), validate_args=False)

    def sample(self, sample_shape=torch.Size()):
        if len(sample_shape):
            raise ValueError("a pixel model draws one batch at a time (sample_shape must be empty)")
        x = self.story._generate(self.batch_shape[0], self.y, progress=False)  # [n, H, W]
        return self.story._observation(x)

    def log_prob(self, value):
        x = value.float() / (self.story.levels - 1) if self.story.likelihood == "categorical" else value
        logits = self.story.net(x.float().reshape(-1, 1, *self.story.shape), self.y)
        return self.story._likelihood(logits).log_prob(value)


class PixelModel(Story):
    """An autoregressive image model with an exact likelihood, trained by maximum likelihood.

    :param backbone: ``"gated"`` (Gated PixelCNN) or ``"rowlstm"`` (PixelRNN, Row LSTM).
    :param shape: image shape ``[H, W]`` (one channel).
    :param channels: feature maps of the network.
    :param n_layers: gated blocks / Row LSTM layers.
    :param kernel_size: odd kernel of the later layers (3).
    :param first_kernel: odd kernel of the first, mask-A layer (7).
    :param likelihood: ``"bernoulli"`` (binary pixels) or ``"categorical"`` (one of
        ``levels`` grey levels per pixel, a softmax over levels).
    :param levels: grey levels of the categorical likelihood (256 for MNIST, 17 for digits).
    :param n_classes: number of classes for a class-conditional model (then ``fit`` and
        ``log_prob`` need labels, and ``sample(n, label=k)`` draws class k).
    """

    kind = "pixel"
    elbo = "trace"
    static_graph = False  # masks are buffers (refused by the captured step); steps are conv-bound anyway
    # maximum likelihood by SVI with an empty guide; the teacher-forced likelihood is exact
    traits = Traits(estimator="exact", guide=False, offers={"complete", "sample_temperature"})
    max_plate_nesting = 1

    def __init__(self, backbone: str = "gated", *, shape: Sequence[int] = (8, 8), channels: int = 32,
                 n_layers: int | None = None, kernel_size: int = 3, first_kernel: int = 7,
                 likelihood: str = "bernoulli", levels: int = 256, n_classes: int | None = None):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        shape = tuple(shape)
        if len(shape) != 2:
            raise ValueError(f"shape must be [H, W] (one grey channel), got {list(shape)}")
        for s in shape:
            check_positive_int("shape entry", s)
        if n_layers is None:
            n_layers = 5 if backbone == "gated" else 2
        check_positive_int("n_layers", n_layers)
        check_positive_int("channels", channels)
        check_kernel("kernel_size", kernel_size)
        check_kernel("first_kernel", first_kernel)
        if likelihood == "categorical" and (isinstance(levels, bool) or not isinstance(levels, int) or levels < 2):
            raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
        if n_classes is not None and (isinstance(n_classes, bool) or not isinstance(n_classes, int)
                                      or not 2 <= n_classes <= MAX_CLASSES):  # one embedding row per class
            raise ValueError(f"n_classes must be an integer in 2..{MAX_CLASSES} or None, got {n_classes!r}")
        self.backbone, self.shape, self.likelihood = backbone, shape, likelihood
        self.levels = levels if likelihood == "categorical" else 2
        self.n_classes = n_classes
        if n_classes is not None:  # a class-conditional model needs labels, and draws the class asked for
            self.traits = replace(type(self).traits, labels=True, offers=type(self).traits.offers | {"sample_label"})
        out = 1 if likelihood == "bernoulli" else levels
        net = GatedPixelCNN if backbone == "gated" else RowLSTMNet
        self.net = net(out_channels=out, channels=channels, n_layers=n_layers, kernel_size=kernel_size,
                       first_kernel=first_kernel, n_classes=n_classes)

    # -- the generative story (no latent sites, so the guide is empty) ----------------
    def model(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None, n: int | None = None):
        """x ~ Π_ij p(x_ij | x_<ij): one observed site whose logits come from the masked net."""
        self.register_params()
        if x is None:
            n = n if n is not None else (len(y) if y is not None else 1)
            with pyro.plate("data", n):
                return pyro.sample("x", _Autoregressive(self, n, y))
        with pyro.plate("data", x.shape[0]):
            logits = self.net(x[:, None], y)  # [n, out, H, W]: all conditionals in one pass
            return pyro.sample("x", self._likelihood(logits), obs=self._observation(x))

    def guide(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None, n: int | None = None):
        """Empty: no latent variables, so SVI maximises the exact log-likelihood."""
        self.register_params()

    def _likelihood(self, logits: torch.Tensor) -> dist.TorchDistribution:
        if self.likelihood == "bernoulli":
            return dist.Bernoulli(logits=logits).to_event(3)  # [n] | [1, H, W]
        # one softmax over grey levels per pixel: [n, 1, H, W, levels]
        return dist.Categorical(logits=logits.permute(0, 2, 3, 1).unsqueeze(1)).to_event(3)

    def _observation(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[n, H, W]`` → the site's value ``[n, 1, H, W]`` (float bits or long levels)."""
        if self.likelihood == "bernoulli":
            return x[:, None]
        return torch.round(x * (self.levels - 1)).long()[:, None]

    # -- data ------------------------------------------------------------------------------
    def prepare(self, x, y=None):
        x = check_data(x, binary=True)
        if x.dim() == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"x: this pixel model takes images of shape {list(self.shape)}, "
                             f"got {list(x.shape[1:])}")
        if self.likelihood == "bernoulli":
            if not ((x == 0) | (x == 1)).all():
                raise ValueError("x: a Bernoulli pixel model needs binary images (binarize the data first, "
                                 "--binarize), or use likelihood='categorical'")
        else:
            # floor(x · L) maps both k/(L−1) and dequantized (k + u)/L onto level k
            x = torch.floor(x * self.levels).clamp(0, self.levels - 1) / (self.levels - 1)
        return x, self._labels(y, len(x))

    def _labels(self, y, n: int) -> torch.Tensor | None:
        if self.n_classes is None:
            return None
        if y is None:
            raise ValueError("y: this pixel model is class-conditional: pass labels")
        y = torch.as_tensor(y)
        if y.dim() == 0:
            y = y.expand(n)
        if y.shape != (n,) or y.is_floating_point() and not (y == y.round()).all():
            raise ValueError(f"y: expected {n} integer labels, got shape {list(y.shape)}")
        y = y.long()
        if y.min() < 0 or y.max() >= self.n_classes:
            raise ValueError(f"y: labels must lie in 0..{self.n_classes - 1}, got {int(y.min())}..{int(y.max())}")
        return y.to(self.device)

    # -- exact likelihood ---------------------------------------------------------------
    @torch.no_grad()
    def log_prob(self, x, y=None, *, num_samples: int | None = None, batch_size: int = 256) -> torch.Tensor:
        """Exact log p(x) per image in nats (``num_samples`` is ignored: nothing to sample).

        For the categorical likelihood this is the log probability of the discrete levels;
        add ``H·W·log(levels)`` for the density of dequantized data on [0, 1]^D.
        """
        x, y = self.prepare(x, y)
        out = []
        for s in range(0, len(x), batch_size):
            xb = x[s:s + batch_size].to(self.device)
            yb = None if y is None else y[s:s + batch_size]
            out.append(self._likelihood(self.net(xb[:, None], yb)).log_prob(self._observation(xb)))
        return torch.cat(out)

    def dequantization_log_volume(self) -> float:
        """A categorical model gives each of ``levels`` grey levels a mass: one cell of dequantized
        pixels has volume (1/levels)^D. Binary pixels are scored as they are (0)."""
        if self.likelihood != "categorical":
            return 0.0
        return -math.prod(self.shape) * math.log(self.levels)

    def bits_per_dim(self, x, y=None) -> float:
        """Mean negative log-likelihood in bits per pixel."""
        return float(-self.log_prob(x, y).mean() / (math.prod(self.shape) * math.log(2)))

    @torch.no_grad()
    def conditionals(self, x, y=None) -> torch.Tensor:
        """Per-pixel log p(x_ij | x_<ij) ``[n, H, W]`` (their sum is :meth:`log_prob`)."""
        x, y = self.prepare(x, y)
        logits = self.net(x[:, None].to(self.device), y)
        return self._likelihood(logits).base_dist.log_prob(self._observation(x))[:, 0]

    # -- generation --------------------------------------------------------------------------
    def _draw(self, logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """One uniform per image turned into a pixel value by the inverse CDF: ``[n, out]`` → ``[n]``.

        Both samplers consume the random stream identically, so they give the same images.
        """
        u = torch.rand(logits.shape[0], device=logits.device)
        logits = logits / temperature
        if self.likelihood == "bernoulli":
            return (u < torch.sigmoid(logits[:, 0])).float()
        cdf = torch.softmax(logits, dim=1).cumsum(1)  # [n, levels]
        level = (cdf < u[:, None]).sum(1).clamp(max=self.levels - 1)
        return level.float() / (self.levels - 1)

    @torch.no_grad()
    def _generate(self, n: int, y: torch.Tensor | None, *, given: torch.Tensor | None = None,
                  temperature: float = 1.0, method: str = "cached", progress: bool = True) -> torch.Tensor:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        h, w = self.shape
        x = torch.zeros(n, 1, h, w, device=self.device)
        k = 0
        if given is not None:
            k = given.shape[1]
            x[:, 0, :k] = given.to(self.device)
        was_training = self.training
        self.eval()
        net = self.net
        cache = net.init_cache(x, y, columns=method == "cached") if method != "naive" else None
        bar = progress_bar(enabled=progress, desc="sampling pixels", unit="px", total=(h - k) * w)
        try:
            for i in range(h):
                if i >= k:
                    if cache is not None:
                        net.begin_row(cache, x, i)
                    for j in range(w):
                        if cache is not None:
                            logits = net.pixel_logits(cache, x, i, j)  # [n, out]
                        else:  # the naive loop: the whole network for every pixel
                            logits = net(x, y)[:, :, i, j]
                        x[:, 0, i, j] = self._draw(logits, temperature)
                    bar.update(w)
                if cache is not None:
                    net.end_row(cache, x, i)
        finally:
            bar.close()
            self.train(was_training)
        return x[:, 0]

    def _sample_labels(self, n: int, label) -> torch.Tensor | None:
        if self.n_classes is None:
            if label is not None:
                raise ValueError("label: this pixel model is not class-conditional (train with --conditional)")
            return None
        if label is None:  # one class after another: 0, 1, …, C−1, 0, 1, …
            return torch.arange(n, device=self.device) % self.n_classes
        return self._labels(label, n)

    def sample(self, n: int, label: int | torch.Tensor | None = None, given: torch.Tensor | None = None, *,
               temperature: float = 1.0, method: str = "cached", progress: bool = True) -> torch.Tensor:
        """Generate ``n`` images pixel by pixel in raster order: ``[n, H, W]`` in [0, 1].

        :param label: class to draw (int, or ``[n]`` labels) for a class-conditional model;
            ``None`` cycles through the classes.
        :param given: the top rows to keep, ``[k, W]`` or ``[n, k, W]``; generation continues
            from row k (an exact draw from p(rest | top rows)).
        :param temperature: divides the logits (< 1: sharper, more typical images).
        :param method: ``"cached"`` (re-use everything that cannot change: the rows above and
            the earlier columns of the current row), ``"rows"`` (re-run the current row up to
            the pixel) or ``"naive"`` (re-run the whole network for every pixel). All three
            draw the same images under the same seed; only the speed differs.
        :param progress: show a progress bar over pixels.
        """
        n = check_positive_int("n", n)
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        y = self._sample_labels(n, label)
        if given is not None:
            given = self._top_rows(given, n)
        return self._generate(n, y, given=given, temperature=temperature, method=method, progress=progress)

    def _top_rows(self, given, n: int) -> torch.Tensor:
        """Validate the rows to keep: ``[k, W]`` or ``[n, k, W]`` → ``[n, k, W]`` on the model's grid."""
        given = check_data(given, binary=True, name="given")
        h, w = self.shape
        if given.dim() == 2:
            given = given.expand(n, *given.shape)
        if given.dim() != 3 or given.shape[0] != n or given.shape[2] != w or given.shape[1] > h:
            raise ValueError(f"given: expected the top rows [k, {w}] or [{n}, k, {w}] with k <= {h}, "
                             f"got {list(given.shape)}")
        if self.likelihood == "bernoulli":
            if not ((given == 0) | (given == 1)).all():
                raise ValueError("given: a Bernoulli pixel model needs binary pixels")
            return given
        return torch.floor(given * self.levels).clamp(0, self.levels - 1) / (self.levels - 1)

    def complete(self, x, rows: int, *, y=None, temperature: float = 1.0, method: str = "cached",
                 progress: bool = True) -> torch.Tensor:
        """Keep the top ``rows`` rows of real images and generate the rest (image completion).

        :param x: images ``[n, H, W]``; ``y``: their labels for a class-conditional model.
        :return: ``[n, H, W]`` whose first ``rows`` rows equal those of ``x``.
        """
        if isinstance(rows, bool) or not isinstance(rows, int) or not 0 <= rows <= self.shape[0]:
            raise ValueError(f"rows must be an integer in 0..{self.shape[0]}, got {rows!r}")
        x, y = self.prepare(x, y)  # labels are required for a class-conditional model
        return self._generate(len(x), y, given=x[:, :rows], temperature=temperature, method=method,
                              progress=progress)
