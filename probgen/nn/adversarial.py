"""Adversarial networks: generators ``G: z [n × z_dim] → x [n × *x_shape]`` and discriminators
``D: x → logit [n]`` (critic values for WGAN), as plain ``torch.nn.Module`` s.

The story and its objectives are :class:`probgen.models.gan.GAN`; these networks know nothing
about Pyro. The discriminators have no batch norm, so the WGAN gradient penalty stays valid;
``spectral_norm=True`` divides each of their weight matrices by its largest singular value
(one power iteration per forward pass, Miyato et al. 2018), which bounds D's Lipschitz constant
and keeps it from overpowering the generator.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

__all__ = ["MLPGenerator", "MLPDiscriminator", "ConvGenerator", "ConvDiscriminator", "OUTPUTS", "conv_base",
           "maybe_spectral_norm", "LOSSES", "check_loss"]

#: generator output layers: images in [0, 1] or real values
OUTPUTS = ("sigmoid", "linear")
#: the adversarial objectives (:mod:`probgen.infer.gan_losses` computes them): here, beside the networks,
#: so that the story that names one (:class:`probgen.models.GAN`) checks it without importing a trainer
LOSSES = ("minimax", "non-saturating", "wgan-gp", "hinge")


def check_loss(loss: str) -> str:
    """Raise ``ValueError`` unless ``loss`` is one of :data:`LOSSES`.

    :param loss: an objective's name.
    :return: ``loss``.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    return loss


def maybe_spectral_norm(layer: nn.Module, on: bool) -> nn.Module:
    """``layer`` with its weight spectrally normalised when ``on`` (else unchanged)."""
    return nn.utils.parametrizations.spectral_norm(layer) if on else layer


class MLPGenerator(nn.Module):
    """``z → hidden → x``; sigmoid output for images in [0, 1], linear for real-valued toys."""

    def __init__(self, z_dim: int, x_shape: Sequence[int], hidden: Sequence[int], *, output: str = "sigmoid"):
        super().__init__()
        self.x_shape = tuple(x_shape)
        dims = [z_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(dims[-1], math.prod(self.x_shape)))
        if output == "sigmoid":
            layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).reshape(len(z), *self.x_shape)  # n × *x_shape


class MLPDiscriminator(nn.Module):
    """``x → hidden (LeakyReLU 0.2) → one logit``; no batch norm, so the gradient penalty is valid."""

    def __init__(self, x_shape: Sequence[int], hidden: Sequence[int], *, dropout: float = 0.0,
                 spectral_norm: bool = False):
        super().__init__()
        dims = [math.prod(x_shape), *reversed(tuple(hidden))]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [maybe_spectral_norm(nn.Linear(a, b), spectral_norm), nn.LeakyReLU(0.2)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(maybe_spectral_norm(nn.Linear(dims[-1], 1), spectral_norm))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(len(x), -1)).squeeze(-1)  # n


class ConvGenerator(nn.Module):
    """DCGAN generator: linear → ``C×h×w`` → (ConvTranspose 4/2/1, BN, ReLU)* → 1×H×W.

    ``channels`` lists the widths from the image side inwards (``(64, 128)``: the smallest
    feature map has 128 channels); each entry doubles the resolution, so H and W must be
    divisible by ``2 ** len(channels)`` (8×8 digits: 2×2 → 4×4 → 8×8; MNIST: 7×7 → 14×14 → 28×28).
    """

    def __init__(self, z_dim: int, x_shape: Sequence[int], channels: Sequence[int], *, output: str = "sigmoid"):
        super().__init__()
        self.x_shape = tuple(x_shape)
        h, w = conv_base(self.x_shape, len(channels))
        chans = list(reversed(tuple(channels)))  # inner → outer, e.g. [128, 64]
        self.base = (chans[0], h, w)
        self.project = nn.Sequential(nn.Linear(z_dim, chans[0] * h * w), nn.BatchNorm1d(chans[0] * h * w),
                                     nn.ReLU())
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.BatchNorm2d(b), nn.ReLU()]
        layers.append(nn.ConvTranspose2d(chans[-1], 1, 4, 2, 1))
        if output == "sigmoid":
            layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).reshape(len(z), *self.base)  # n × C × h × w
        return self.net(h).reshape(len(z), *self.x_shape)  # n × H × W


class ConvDiscriminator(nn.Module):
    """DCGAN discriminator: (Conv 4/2/1, LeakyReLU 0.2)* → linear → logit. No batch norm (WGAN-GP safe)."""

    def __init__(self, x_shape: Sequence[int], channels: Sequence[int], *, dropout: float = 0.0,
                 spectral_norm: bool = False):
        super().__init__()
        h, w = conv_base(tuple(x_shape), len(channels))
        chans = [1, *channels]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [maybe_spectral_norm(nn.Conv2d(a, b, 4, 2, 1), spectral_norm), nn.LeakyReLU(0.2)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers, nn.Flatten(),
                                 maybe_spectral_norm(nn.Linear(chans[-1] * h * w, 1), spectral_norm))
        self.x_shape = tuple(x_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(len(x), 1, *self.x_shape[-2:])).squeeze(-1)  # n


def conv_base(x_shape: tuple, n_up: int) -> tuple[int, int]:
    """The smallest feature map ``(h, w)`` of a DCGAN with ``n_up`` stride-2 layers on ``x_shape``."""
    if len(x_shape) != 2:
        raise ValueError(f"arch='dcgan' needs 2-D images, got x_shape {list(x_shape)}; use arch='mlp'")
    f = 2 ** n_up
    if x_shape[0] % f or x_shape[1] % f:
        raise ValueError(f"arch='dcgan' with {n_up} layers needs H and W divisible by {f}, got {list(x_shape)}")
    return x_shape[0] // f, x_shape[1] // f
