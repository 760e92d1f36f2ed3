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

Two networks share the same wrapper :class:`PixelModel`:

- :class:`GatedPixelCNN` (van den Oord et al. 2016, "Conditional Image Generation
  with PixelCNN Decoders"): a vertical stack (rows above, full width) and a
  horizontal stack (the current row, to the left), so there is no blind spot;
  gated activations tanh(a) · σ(b), residual connections, optional class bias.
- :class:`RowLSTMNet` (van den Oord et al. 2016, "Pixel Recurrent Neural
  Networks"): a 7×7 mask-A convolution, then LSTMs that run down the image one
  row at a time, each row computed in parallel (triangular receptive field).

Sampling re-uses what cannot change (as in Fast PixelCNN++): once a row is complete
each vertical block computes just that row from a cache of the rows above, and for
each new pixel each horizontal block computes just that pixel from the few columns
to its left, as matrix products; the Row LSTM keeps the LSTM state of the row above
and computes one column per pixel. ``sample(method="naive")`` re-runs the whole
network for every pixel and draws the same images, a few hundred times slower
(``experiments/bench_pixel_sampling.py``).
"""
from __future__ import annotations

import math
from typing import ClassVar, Sequence

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution, constraints
from torch import nn

from ..nn import check_positive_int
from ..story import Story, check_data

__all__ = ["PixelModel", "GatedPixelCNN", "GatedBlock", "RowLSTMNet", "RowLSTMLayer", "MaskedConv2d",
           "BACKBONES", "LIKELIHOODS", "METHODS"]

BACKBONES = ("gated", "rowlstm")
#: samplers: cache the rows above and earlier columns / re-run the current row / re-run everything
METHODS = ("cached", "rows", "naive")
LIKELIHOODS = ("bernoulli", "categorical")


# =====================================================================================
# Networks (plain torch; they know nothing about Pyro)
# =====================================================================================
def _shift_down(x: torch.Tensor) -> torch.Tensor:
    """Row r receives row r − 1 (zeros in row 0): ``[n, C, H, W]`` → same shape."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def _shift_right(x: torch.Tensor) -> torch.Tensor:
    """Column c receives column c − 1 (zeros in column 0)."""
    return F.pad(x, (1, 0, 0, 0))[..., :-1]


def _gate(x: torch.Tensor) -> torch.Tensor:
    """Gated activation tanh(a) · σ(b) over the two halves of the channels."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def _check_kernel(name: str, k) -> int:
    k = check_positive_int(name, k)
    if k % 2 == 0:
        raise ValueError(f"{name} must be odd, got {k}")
    return k


class GatedBlock(nn.Module):
    """One gated layer with a vertical and a horizontal stack.

    Vertical: a ``(k//2+1) × k`` convolution over the rows at and above each row
    (padding on top), so its features at row r see input rows ≤ r, all columns in reach.
    Shifted down by one row they feed the horizontal stack, which sees rows < i only.
    Horizontal: a ``1 × (k//2+1)`` convolution over the current row up to the current
    column; in the first block the input is shifted right (mask A: the pixel itself is
    not seen), later blocks see their own position (mask B) and add a residual.

    :param in_channels: channels coming in (1 for the image in the first block).
    :param channels: feature maps p of each stack.
    :param kernel_size: odd k.
    :param n_classes: number of classes for a class-dependent bias, or ``None``.
    :param first: first block (mask A, no residual).
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int, *, n_classes: int | None = None,
                 first: bool = False):
        super().__init__()
        self.k, self.kh, self.kw, self.first = kernel_size, kernel_size // 2 + 1, kernel_size // 2 + 1, first
        self.v_conv = nn.Conv2d(in_channels, 2 * channels, (self.kh, kernel_size))
        self.h_conv = nn.Conv2d(in_channels, 2 * channels, (1, self.kw))
        self.link = nn.Conv2d(2 * channels, 2 * channels, 1)  # vertical → horizontal (shifted down)
        self.h_out = nn.Conv2d(channels, channels, 1)
        self.embed = nn.Embedding(n_classes, 4 * channels) if n_classes else None

    def condition(self, y: torch.Tensor | None):
        """Class biases ``(for v [n, 2p, 1, 1], for h [n, 2p, 1, 1])`` or ``(0, 0)``."""
        if self.embed is None or y is None:
            return 0.0, 0.0
        cv, ch = self.embed(y)[:, :, None, None].chunk(2, dim=1)
        return cv, ch

    def vertical(self, v: torch.Tensor, cv) -> tuple[torch.Tensor, torch.Tensor]:
        """``v [n, C_in, R, W]`` → (next v ``[n, p, R, W]``, pre-activation ``[n, 2p, R, W]``)."""
        pre = self.v_conv(F.pad(v, (self.k // 2, self.k // 2, self.kh - 1, 0)))
        return _gate(pre + cv), pre

    def horizontal(self, h: torch.Tensor, link: torch.Tensor, ch) -> torch.Tensor:
        """``h [n, C_in, R, Wc]`` and the shifted vertical link ``[n, 2p, R, Wc]`` → ``[n, p, R, Wc]``."""
        hin = _shift_right(h) if self.first else h
        pre = self.h_conv(F.pad(hin, (self.kw - 1, 0, 0, 0))) + link + ch
        out = self.h_out(_gate(pre))
        return out if self.first else out + h

    def column(self, window: torch.Tensor, link: torch.Tensor, ch, h_self) -> torch.Tensor:
        """One output pixel from the ``kw`` input columns that reach it: ``[n, C_in, kw]`` → ``[n, p]``.

        ``window`` is already shifted for the first block; ``link`` ``[n, 2p]``; ``h_self``
        ``[n, p]`` is this pixel's input (the residual; ignored by the first block). The
        convolutions become matrix products: much cheaper than conv2d on one pixel."""
        out = _linear(self.h_out, _gate(_linear(self.h_conv, window) + link + ch))
        return out if self.first else out + h_self


def _linear(conv: nn.Conv2d | nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A convolution evaluated at a single output position: its receptive window ``x [n, C_in, …]``
    (exactly the kernel's size) → ``[n, C_out]``."""
    return F.linear(x.reshape(len(x), -1), conv.weight.reshape(conv.out_channels, -1), conv.bias)


def _head_column(head: nn.Sequential, h: torch.Tensor) -> torch.Tensor:
    """The 1×1 output head on one pixel's features ``[n, C]`` → ``[n, out]``."""
    return _linear(head[3], F.relu(_linear(head[1], F.relu(h))))


def _flat(cond):
    """A class bias ``[n, c, 1, 1]`` → ``[n, c]`` (or the scalar 0)."""
    return cond[:, :, 0, 0] if isinstance(cond, torch.Tensor) else cond


def _head(channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                         nn.Conv2d(channels, out_channels, 1))


class GatedPixelCNN(nn.Module):
    """Gated PixelCNN: ``x [n, 1, H, W]`` (and labels ``y [n]``) → logits ``[n, out, H, W]``.

    :param out_channels: outputs per pixel (1 Bernoulli logit, or one logit per grey level).
    :param channels: feature maps per stack.
    :param n_layers: gated blocks.
    :param kernel_size: odd kernel of blocks 2.. (3 in the paper).
    :param first_kernel: odd kernel of the first, mask-A block (7 in the paper).
    :param n_classes: class-conditional if given.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, channels: int = 32, n_layers: int = 5,
                 kernel_size: int = 3, first_kernel: int = 7, n_classes: int | None = None):
        super().__init__()
        blocks = [GatedBlock(in_channels, channels, first_kernel, n_classes=n_classes, first=True)]
        blocks += [GatedBlock(channels, channels, kernel_size, n_classes=n_classes) for _ in range(n_layers - 1)]
        self.blocks = nn.ModuleList(blocks)
        self.head = _head(channels, out_channels)
        # rows above row i that the vertical stack's link into row i can see
        self.context_rows = 1 + sum(b.kh - 1 for b in self.blocks)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        v = h = x  # [n, 1, H, W]
        for b in self.blocks:
            cv, ch = b.condition(y)
            v_next, pre = b.vertical(v, cv)
            h = b.horizontal(h, b.link(_shift_down(pre)), ch)  # rows < i only reach row i
            v = v_next
        return self.head(h)  # [n, out, H, W]

    # -- incremental sampling ------------------------------------------------------------
    # "rows": per row, the vertical stack runs on the window of rows above that reaches the
    # row; per pixel, the horizontal stack re-runs on the current row up to the pixel.
    # "columns" (as in Fast PixelCNN++): once a row is complete, every vertical block
    # computes that one new row from the kh rows it needs, kept in a cache; per pixel,
    # every horizontal block computes only the new pixel from the kw columns it needs.
    def init_cache(self, x: torch.Tensor, y: torch.Tensor | None, *, columns: bool = True) -> dict:
        cache = {"cond": [b.condition(y) for b in self.blocks], "columns": columns}
        if columns:
            n, _, h, w = x.shape
            # inputs of each vertical block, padded as its convolution pads: [n, C_in, kh − 1 + H, W + k − 1]
            cache["v"] = [x.new_zeros(n, b.v_conv.in_channels, b.kh - 1 + h, w + b.k - 1) for b in self.blocks]
        return cache

    def begin_row(self, cache: dict, x: torch.Tensor, i: int) -> None:
        n, _, _, w = x.shape
        links = []
        if cache["columns"] and i > 0:
            links = cache["next_links"]  # computed when row i − 1 was complete
        elif i == 0:  # nothing above: the link sees the zero padding
            for b in self.blocks:
                zero = x.new_zeros(n, b.link.in_channels, 1, w)
                links.append(b.link(zero))
        else:
            # a window of rows tall enough that row i − 1 of every block is exact
            v = x[:, :, max(0, i - self.context_rows):i]
            for b, (cv, _) in zip(self.blocks, cache["cond"]):
                v, pre = b.vertical(v, cv)
                links.append(b.link(pre[:, :, -1:]))  # [n, 2p, 1, W]
        cache["links"] = links
        if cache["columns"]:
            # inputs of blocks 2.. along row i, left-padded with kw − 1 zero columns: [n, p, 1, kw − 1 + W]
            cache["h"] = [x.new_zeros(n, b.h_conv.in_channels, 1, b.kw - 1 + w) for b in self.blocks[1:]]

    def pixel_logits(self, cache: dict, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """Logits ``[n, out]`` of pixel (i, j), from row i, columns ≤ j only."""
        if not cache["columns"]:
            h = x[:, :, i:i + 1, :j + 1]
            for b, link, (_, ch) in zip(self.blocks, cache["links"], cache["cond"]):
                h = b.horizontal(h, link[..., :j + 1], ch)
            return self.head(h[..., -1:])[:, :, 0, 0]
        first = self.blocks[0]
        window = x[:, :, i, max(0, j - first.kw):j]  # the kw pixels left of (i, j): [n, 1, ≤kw]
        window = F.pad(window, (first.kw - window.shape[-1], 0))
        h = first.column(window, cache["links"][0][:, :, 0, j], _flat(cache["cond"][0][1]), None)  # [n, p]
        for l, b in enumerate(self.blocks[1:]):
            buf = cache["h"][l]  # [n, p, 1, kw − 1 + W]
            buf[:, :, 0, b.kw - 1 + j] = h
            h = b.column(buf[:, :, 0, j:j + b.kw], cache["links"][l + 1][:, :, 0, j], _flat(cache["cond"][l + 1][1]), h)
        return _head_column(self.head, h)

    def end_row(self, cache: dict, x: torch.Tensor, i: int) -> None:
        if not cache["columns"]:
            return
        # row i is final: push it through every vertical block, one row each
        v, links = x[:, :, i], []  # [n, 1, W]
        for b, buf, (cv, _) in zip(self.blocks, cache["v"], cache["cond"]):
            buf[:, :, b.kh - 1 + i, b.k // 2:b.k // 2 + v.shape[-1]] = v
            pre = b.v_conv(buf[:, :, i:i + b.kh])  # [n, 2p, 1, W]: row i of this block
            v = _gate(pre + cv)[:, :, 0]
            links.append(b.link(pre))  # what row i + 1 of the horizontal stack sees
        cache["next_links"] = links


class MaskedConv2d(nn.Conv2d):
    """k × k convolution that only sees the rows above and the pixels to the left.

    ``mask="A"`` also hides the centre pixel (first layer), ``"B"`` lets it through.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, mask: str = "B"):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        if mask not in ("A", "B"):
            raise ValueError(f"mask must be 'A' or 'B', got {mask!r}")
        m = torch.ones_like(self.weight)  # [out, in, k, k]
        c = kernel_size // 2
        m[:, :, c, c + (mask == "B"):] = 0
        m[:, :, c + 1:] = 0
        self.register_buffer("mask", m, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class RowLSTMLayer(nn.Module):
    """Row LSTM: an LSTM that steps down the image, one whole row per step.

    input-to-state: a ``1 × (k//2+1)`` convolution over the current row, up to and
    including each column (mask B); state-to-state: a width-k 1-D convolution of the
    previous row's hidden state. Residual output ``f + W_out h``.
    """

    def __init__(self, channels: int, hidden: int, kernel_size: int = 3, *, n_classes: int | None = None):
        super().__init__()
        self.k = kernel_size
        self.i2s = nn.Conv2d(channels, 4 * hidden, (1, kernel_size // 2 + 1))
        self.s2s = nn.Conv1d(hidden, 4 * hidden, kernel_size, padding=kernel_size // 2)
        self.out = nn.Conv2d(hidden, channels, 1)
        self.embed = nn.Embedding(n_classes, 4 * hidden) if n_classes else None
        self.hidden = hidden

    def condition(self, y):
        return 0.0 if self.embed is None or y is None else self.embed(y)[:, :, None, None]

    def input_part(self, f: torch.Tensor, cond) -> torch.Tensor:
        """``f [n, C, R, Wc]`` → input-to-state pre-activations ``[n, 4h, R, Wc]``."""
        return self.i2s(F.pad(f, (self.k // 2, 0, 0, 0))) + cond

    @staticmethod
    def step(pre: torch.Tensor, s2s: torch.Tensor, c_prev: torch.Tensor):
        """One row: pre-activations ``[n, 4h, W]`` → (h, c) ``[n, h, W]`` each."""
        o, f, i, g = (pre + s2s).chunk(4, dim=1)
        c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def forward(self, f: torch.Tensor, cond) -> torch.Tensor:
        n, _, rows, w = f.shape
        pre = self.input_part(f, cond)  # all rows at once: [n, 4h, H, W]
        h = f.new_zeros(n, self.hidden, w)
        c = torch.zeros_like(h)
        hs = []
        for r in range(rows):  # the recurrence runs down the rows
            h, c = self.step(pre[:, :, r], self.s2s(h), c)
            hs.append(h)
        return f + self.out(torch.stack(hs, dim=2))


class RowLSTMNet(nn.Module):
    """PixelRNN with Row LSTM layers: ``x [n, 1, H, W]`` → logits ``[n, out, H, W]``.

    :param channels: feature maps (the LSTM state has as many).
    :param n_layers: Row LSTM layers.
    :param kernel_size: odd width of the input-to-state and state-to-state convolutions (3).
    :param first_kernel: odd size of the mask-A input convolution (7).
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, channels: int = 32, n_layers: int = 2,
                 kernel_size: int = 3, first_kernel: int = 7, n_classes: int | None = None):
        super().__init__()
        self.input_conv = MaskedConv2d(in_channels, channels, first_kernel, mask="A")
        self.layers = nn.ModuleList(RowLSTMLayer(channels, channels, kernel_size, n_classes=n_classes)
                                    for _ in range(n_layers))
        self.head = _head(channels, out_channels)
        self.context_rows = first_kernel // 2

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        f = self.input_conv(x)
        for layer in self.layers:
            f = layer(f, layer.condition(y))
        return self.head(f)

    # -- incremental sampling: keep each layer's LSTM state of the row above ------------
    # "rows" re-runs row i up to column j for every pixel; "columns" computes only column j
    # of every layer from the columns that reach it and keeps the rest of the row.
    def init_cache(self, x: torch.Tensor, y: torch.Tensor | None, *, columns: bool = True) -> dict:
        n, _, _, w = x.shape
        zeros = [x.new_zeros(n, l.hidden, w) for l in self.layers]
        return {"cond": [l.condition(y) for l in self.layers], "h": zeros, "c": [z.clone() for z in zeros],
                "columns": columns}

    def begin_row(self, cache: dict, x: torch.Tensor, i: int) -> None:
        cache["s2s"] = [l.s2s(h) for l, h in zip(self.layers, cache["h"])]  # [n, 4h, W], fixed for row i
        cache["row"] = i
        if cache["columns"]:
            n, _, _, w = x.shape
            # row i's features entering each layer, left-padded: [n, C, k//2 + W]
            cache["f"] = [x.new_zeros(n, self.input_conv.out_channels, l.k // 2 + w) for l in self.layers]
            cache["h_new"] = [torch.zeros_like(h) for h in cache["h"]]
            cache["c_new"] = [torch.zeros_like(c) for c in cache["c"]]

    def _row(self, cache: dict, x: torch.Tensor, i: int, j: int):
        rows = x[:, :, max(0, i - self.context_rows):i + 1]
        f = self.input_conv(rows)[:, :, -1:, :j + 1]  # [n, C, 1, j+1]
        hs, cs = [], []
        for l, cond, s2s, c_prev in zip(self.layers, cache["cond"], cache["s2s"], cache["c"]):
            pre = l.input_part(f, cond)[:, :, 0]
            h, c = l.step(pre, s2s[..., :j + 1], c_prev[..., :j + 1])
            f = f + l.out(h[:, :, None])
            hs.append(h)
            cs.append(c)
        return f, hs, cs

    def _input_column(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """The mask-A convolution at (i, j) alone: ``[n, C]``."""
        r, w = self.context_rows, x.shape[-1]
        crop = x[:, :, max(0, i - r):i + 1, max(0, j - r):j + r + 1]
        crop = F.pad(crop, (r - (j - max(0, j - r)), j + r + 1 - min(w, j + r + 1), r - (i - max(0, i - r)), 0))
        conv = self.input_conv
        weight = (conv.weight * conv.mask)[:, :, :r + 1]  # rows below (i, j) are masked out anyway
        return F.linear(crop.reshape(len(crop), -1), weight.reshape(len(weight), -1), conv.bias)

    def pixel_logits(self, cache: dict, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """Logits ``[n, out]`` of pixel (i, j)."""
        if not cache["columns"]:
            f, _, _ = self._row(cache, x, i, j)
            return self.head(f[..., -1:])[:, :, 0, 0]
        f = self._input_column(x, i, j)  # [n, C]
        for l, (layer, buf) in enumerate(zip(self.layers, cache["f"])):
            pad = layer.k // 2
            buf[..., pad + j] = f
            pre = _linear(layer.i2s, buf[..., j:j + pad + 1]) + _flat(cache["cond"][l])
            h, c = layer.step(pre, cache["s2s"][l][..., j], cache["c"][l][..., j])  # [n, h] each
            cache["h_new"][l][..., j], cache["c_new"][l][..., j] = h, c
            f = f + _linear(layer.out, h)
        return _head_column(self.head, f)

    def end_row(self, cache: dict, x: torch.Tensor, i: int) -> None:
        if cache.get("row") == i and cache["columns"]:
            cache["h"], cache["c"] = cache["h_new"], cache["c_new"]
            return
        if cache.get("row") != i:  # a kept (given) row: its state still has to be computed
            self.begin_row(cache, x, i)
        _, cache["h"], cache["c"] = self._row(cache, x, i, x.shape[-1] - 1)


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
    has_exact_log_prob = True
    max_plate_nesting = 1
    needs_labels = False

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
        _check_kernel("kernel_size", kernel_size)
        _check_kernel("first_kernel", first_kernel)
        if likelihood == "categorical" and (isinstance(levels, bool) or not isinstance(levels, int) or levels < 2):
            raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
        if n_classes is not None and (isinstance(n_classes, bool) or not isinstance(n_classes, int)
                                      or n_classes < 2):
            raise ValueError(f"n_classes must be an integer >= 2 or None, got {n_classes!r}")
        self.backbone, self.shape, self.likelihood = backbone, shape, likelihood
        self.levels = levels if likelihood == "categorical" else 2
        self.n_classes = n_classes
        self.needs_labels = n_classes is not None
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
        bar = _pixel_bar((h - k) * w, progress)
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


def _pixel_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="sampling pixels", unit="px", leave=False, dynamic_ncols=True,
                disable=None if enabled else True)
