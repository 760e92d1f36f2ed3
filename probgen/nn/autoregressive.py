"""Autoregressive networks for images: masked convolutions, gated blocks, the Row LSTM.

Plain ``torch.nn.Module`` s that know nothing about Pyro (the story is
:class:`probgen.models.pixel.PixelModel`):

- :class:`GatedPixelCNN` (van den Oord et al. 2016, "Conditional Image Generation
  with PixelCNN Decoders"): a vertical stack (rows above, full width) and a
  horizontal stack (the current row, to the left), so there is no blind spot;
  gated activations tanh(a) · σ(b), residual connections, optional class bias.
- :class:`RowLSTMNet` (van den Oord et al. 2016, "Pixel Recurrent Neural
  Networks"): a 7×7 mask-A convolution, then LSTMs that run down the image one
  row at a time, each row computed in parallel (triangular receptive field).

Both offer a cached sampling path (``begin_row`` / ``pixel`` / ``end_row``) that
computes only what a new pixel changes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import check_positive_int

__all__ = ["GatedPixelCNN", "GatedBlock", "RowLSTMNet", "RowLSTMLayer", "MaskedConv2d", "check_kernel"]


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


def check_kernel(name: str, k) -> int:
    """Validate an odd positive kernel size."""
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
        conv, r = self.input_conv, self.context_rows
        # the masked mask-A kernel, rows at and above the pixel, flattened once (not once per pixel)
        w_in = (conv.weight * conv.mask)[:, :, :r + 1].reshape(conv.out_channels, -1)
        return {"cond": [l.condition(y) for l in self.layers], "h": zeros, "c": [z.clone() for z in zeros],
                "columns": columns, "w_in": w_in}

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

    def _input_column(self, x: torch.Tensor, i: int, j: int, weight: torch.Tensor) -> torch.Tensor:
        """The mask-A convolution at (i, j) alone: ``[n, C]`` (``weight``: the cached flattened kernel;
        rows below (i, j) are masked out anyway)."""
        r, w = self.context_rows, x.shape[-1]
        crop = x[:, :, max(0, i - r):i + 1, max(0, j - r):j + r + 1]
        crop = F.pad(crop, (r - (j - max(0, j - r)), j + r + 1 - min(w, j + r + 1), r - (i - max(0, i - r)), 0))
        return F.linear(crop.reshape(len(crop), -1), weight, self.input_conv.bias)

    def pixel_logits(self, cache: dict, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """Logits ``[n, out]`` of pixel (i, j)."""
        if not cache["columns"]:
            f, _, _ = self._row(cache, x, i, j)
            return self.head(f[..., -1:])[:, :, 0, 0]
        f = self._input_column(x, i, j, cache["w_in"])  # [n, C]
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
