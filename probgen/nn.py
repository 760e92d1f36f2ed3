"""Building blocks: networks that return distribution parameters.

Networks are plain ``torch.nn.Module`` s and know nothing about Pyro; the
probabilistic wrapper (a :class:`probgen.story.Story`) decides what they mean.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLP", "GaussianHead", "GaussianEncoder", "BernoulliDecoder", "GaussianDecoder",
           "ACTIVATIONS", "check_positive_int", "check_hidden"]

ACTIVATIONS = {"relu": nn.ReLU, "softplus": nn.Softplus, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}


def check_positive_int(name: str, value) -> int:
    """Validate a hyperparameter that must be a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


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
