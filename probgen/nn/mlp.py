"""Building blocks: networks that return distribution parameters.

Networks are plain ``torch.nn.Module`` s and know nothing about Pyro; the
probabilistic wrapper (a :class:`probgen.story.Story`) decides what they mean.
"""
from __future__ import annotations

import numbers
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLP", "GaussianHead", "GaussianEncoder", "BernoulliDecoder", "GaussianDecoder",
           "ConvGaussianEncoder", "ConvBernoulliDecoder", "encoder_decoder",
           "ACTIVATIONS", "DECODERS", "check_positive_int", "check_hidden"]

ACTIVATIONS = {"relu": nn.ReLU, "softplus": nn.Softplus, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}


def check_positive_int(name: str, value) -> int:
    """Validate a hyperparameter that must be a positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)  # numpy integers too, as a plain int (a checkpoint config holds plain values)


def check_hidden(hidden) -> tuple[int, ...]:
    """Validate a tuple of hidden-layer widths (may be empty)."""
    if isinstance(hidden, int):
        hidden = (hidden,)
    hidden = tuple(hidden)
    for h in hidden:
        check_positive_int("hidden layer width", h)
    return hidden


class MLP(nn.Sequential):
    """``in_dim → hidden[0] → … → out_dim`` with an activation between layers (none at the end)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, *, activation: str = "relu"):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: use one of {', '.join(ACTIVATIONS)}")
        dims = [in_dim, *hidden, out_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(ACTIVATIONS[activation]())
        super().__init__(*layers)


class GaussianHead(nn.Module):
    """Linear map to ``(loc, scale)`` of a diagonal Gaussian; scale > ``min_scale``."""

    def __init__(self, in_dim: int, out_dim: int, *, min_scale: float = 1e-4):
        super().__init__()
        self.linear = nn.Linear(in_dim, 2 * out_dim)
        self.min_scale = min_scale

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw = self.linear(h).chunk(2, dim=-1)
        return loc, F.softplus(raw) + self.min_scale


class GaussianEncoder(nn.Module):
    """q(z | x) network: ``x [batch × in_dim] → (loc, scale) [batch × z_dim]``."""

    def __init__(self, in_dim: int, z_dim: int, hidden: Sequence[int] = (256,), *, activation: str = "relu"):
        super().__init__()
        hidden = tuple(hidden)
        self.body = MLP(in_dim, hidden[:-1], hidden[-1], activation=activation) if hidden else nn.Identity()
        self.act = ACTIVATIONS[activation]() if hidden else nn.Identity()
        self.head = GaussianHead(hidden[-1] if hidden else in_dim, z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.act(self.body(x)))


class BernoulliDecoder(nn.Module):
    """p(x | z) network for binary pixels: ``z → logits [.. × x_dim]``."""

    def __init__(self, z_dim: int, x_dim: int, hidden: Sequence[int] = (256,), *, activation: str = "relu"):
        super().__init__()
        self.net = MLP(z_dim, tuple(hidden), x_dim, activation=activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class GaussianDecoder(nn.Module):
    """p(x | z) network for real values: ``z → (loc, scale)``; the scale is learned per
    pixel and per code, bounded below so that densities stay finite."""

    def __init__(self, z_dim: int, x_dim: int, hidden: Sequence[int] = (256,), *,
                 activation: str = "relu", min_scale: float = 1e-2):
        super().__init__()
        hidden = tuple(hidden)
        self.body = MLP(z_dim, hidden[:-1], hidden[-1], activation=activation) if hidden else nn.Identity()
        self.act = ACTIVATIONS[activation]() if hidden else nn.Identity()
        self.head = GaussianHead(hidden[-1] if hidden else z_dim, x_dim, min_scale=min_scale)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.act(self.body(z)))


def _conv_args(x_shape, channels, activation: str) -> tuple[tuple[int, int], tuple[int, ...]]:
    """Validate the image shape ``(H, W)``, the channel widths and the activation of a conv net."""
    shape = tuple(int(v) for v in x_shape)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"x_shape must be (height, width), got {x_shape!r}")
    channels = check_hidden(channels)
    if not channels or activation not in ACTIVATIONS:
        raise ValueError(f"need at least one channel width and an activation in {', '.join(ACTIVATIONS)}")
    return shape, channels


class ConvGaussianEncoder(nn.Module):
    """q(z | x) network for grey images: stride-2 convolutions, then ``(loc, scale)``.

    ``x [batch, H, W]`` or ``[batch, H·W]`` → ``(loc, scale) [batch, z_dim]``; each layer halves H and W.
    """

    def __init__(self, x_shape: Sequence[int], z_dim: int, channels: Sequence[int] = (32, 64), *,
                 activation: str = "relu"):
        super().__init__()
        self.x_shape, channels = _conv_args(x_shape, channels, activation)
        layers: list[nn.Module] = []
        h, w = self.x_shape
        for c_in, c_out in zip((1, *channels[:-1]), channels):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), ACTIVATIONS[activation]()]
            h, w = (h + 1) // 2, (w + 1) // 2
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.head = GaussianHead(channels[-1] * h * w, z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lead = x.shape[:-2] if tuple(x.shape[-2:]) == self.x_shape else x.shape[:-1]
        h = self.body(x.reshape(-1, 1, *self.x_shape))  # (prod lead) × features
        loc, scale = self.head(h)
        return loc.reshape(*lead, -1), scale.reshape(*lead, -1)


class ConvBernoulliDecoder(nn.Module):
    """p(x | z) network for binary images: a linear map to a small feature map, then stride-2
    transposed convolutions. ``z [..., z_dim]`` → logits ``[..., H·W]`` (a drop-in for
    :class:`BernoulliDecoder`; extra leading dims such as importance samples are kept)."""

    def __init__(self, z_dim: int, x_shape: Sequence[int], channels: Sequence[int] = (64, 32), *,
                 activation: str = "relu"):
        super().__init__()
        self.x_shape, channels = _conv_args(x_shape, channels, activation)
        scale = 2 ** len(channels)
        self.start = (channels[0], -(-self.x_shape[0] // scale), -(-self.x_shape[1] // scale))  # C × h0 × w0
        layers: list[nn.Module] = [nn.Linear(z_dim, channels[0] * self.start[1] * self.start[2]),
                                   ACTIVATIONS[activation](), nn.Unflatten(1, self.start)]
        for c_in, c_out in zip(channels, (*channels[1:], channels[-1])):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), ACTIVATIONS[activation]()]
        layers.append(nn.Conv2d(channels[-1], 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        H, W = self.x_shape
        out = self.net(z.reshape(-1, z.shape[-1]))[:, 0, :H, :W]  # (prod lead) × H × W
        return out.reshape(*z.shape[:-1], H * W)


#: pixel likelihood name -> the decoder network that parameterises it
DECODERS = {"bernoulli": BernoulliDecoder, "normal": GaussianDecoder}


def encoder_decoder(x_dim: int, z_dim: int, hidden: Sequence[int] = (256,), *, likelihood: str = "bernoulli",
                    activation: str = "relu", condition_dim: int = 0,
                    gaussian: bool = True) -> tuple[nn.Module, nn.Module]:
    """The encoder/decoder pair of the VAE-like models: mirrored MLPs around a code of ``z_dim``.

    :param x_dim: values per example; ``z_dim``: size of the code.
    :param hidden: encoder widths, input side first; the decoder uses them reversed.
    :param likelihood: ``"bernoulli"`` (decoder → logits) or ``"normal"`` (decoder → ``(loc, scale)``).
    :param activation: one of :data:`ACTIVATIONS`.
    :param condition_dim: extra inputs both networks see (a one-hot label of the CVAE): the encoder
        reads ``[x, c]``, the decoder ``[z, c]``.
    :param gaussian: the encoder returns ``(loc, scale)`` of q(z | x) (a VAE); ``False``: one code
        ``[.., z_dim]`` (a deterministic autoencoder).
    :return: ``(encoder, decoder)``.
    """
    if likelihood not in DECODERS:
        raise ValueError(f"likelihood must be one of {tuple(DECODERS)}, got {likelihood!r}")
    hidden = tuple(hidden)
    if gaussian:
        encoder: nn.Module = GaussianEncoder(x_dim + condition_dim, z_dim, hidden, activation=activation)
    else:
        encoder = MLP(x_dim + condition_dim, hidden, z_dim, activation=activation)
    decoder = DECODERS[likelihood](z_dim + condition_dim, x_dim, tuple(reversed(hidden)), activation=activation)
    return encoder, decoder
