"""Pixel likelihoods p(x | decoder output) and the shape/name checks of the VAE-like models.

A decoder ends in either Bernoulli logits ``[.., D]`` or a Normal ``(loc, scale)`` pair of
``[.., D]`` tensors; :func:`pixel_likelihood` turns that output into a distribution with one
event per example and :func:`mean_image` into the mean image in [0, 1].
"""
from __future__ import annotations

from typing import Sequence

import torch

from .nn import check_hidden, check_positive_int

__all__ = ["LIKELIHOODS", "check_likelihood", "check_x_shape", "check_pixel_args", "pixel_likelihood",
           "mean_image"]

LIKELIHOODS = ("bernoulli", "normal")


def check_likelihood(likelihood: str) -> str:
    """Validate a pixel-likelihood name (``"bernoulli"`` or ``"normal"``)."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    return likelihood


def check_x_shape(x_dim: int, x_shape=None) -> tuple[int, ...]:
    """The shape of one example (default ``(x_dim,)``); it must hold ``x_dim`` values."""
    shape = tuple(x_shape) if x_shape is not None else (x_dim,)
    if int(torch.tensor(shape).prod()) != x_dim:
        raise ValueError(f"x_shape {shape} does not hold x_dim={x_dim} values")
    return shape


def check_pixel_args(x_dim: int, *, z_dim: int, hidden: Sequence[int], likelihood: str,
                     x_shape: Sequence[int] | None = None) -> tuple[int, int, tuple[int, ...], str, tuple[int, ...]]:
    """Validate the constructor arguments the VAE-like models share (one ``ValueError`` line each).

    :return: ``(x_dim, z_dim, hidden, likelihood, x_shape)``, ``hidden`` as a tuple and ``x_shape``
        defaulting to ``(x_dim,)``.
    """
    x_dim = check_positive_int("x_dim", x_dim)
    z_dim = check_positive_int("z_dim", z_dim)
    return x_dim, z_dim, check_hidden(hidden), check_likelihood(likelihood), check_x_shape(x_dim, x_shape)


def pixel_likelihood(likelihood: str, decoded) -> "pyro.distributions.TorchDistribution":  # noqa: F821
    """p(x | decoder output), one event per example: Bernoulli(logits) or Normal(loc, scale).

    ``validate_args=False`` for Bernoulli: grey levels in [0, 1] are allowed as soft targets.

    :param likelihood: ``"bernoulli"`` (``decoded`` = logits ``[.., D]``) or ``"normal"``
        (``decoded`` = ``(loc, scale)``, each ``[.., D]``).
    """
    import pyro.distributions as dist

    if likelihood == "bernoulli":
        return dist.Bernoulli(logits=decoded, validate_args=False).to_event(1)
    loc, scale = decoded
    return dist.Normal(loc, scale).to_event(1)


def mean_image(likelihood: str, decoded, x_shape: Sequence[int] | None = None) -> torch.Tensor:
    """The mean of p(x | decoder output) as values in [0, 1]: sigmoid of the Bernoulli logits,
    or the Normal's location clamped to [0, 1].

    :param decoded: the decoder's output for codes ``[.., z]`` (logits, or ``(loc, scale)``), ``[.., D]``.
    :param x_shape: the shape of one example: the result is ``[.., *x_shape]`` (default ``[.., D]``).
    """
    mean = torch.sigmoid(decoded) if likelihood == "bernoulli" else decoded[0].clamp(0, 1)
    return mean if x_shape is None else mean.reshape(*mean.shape[:-1], *x_shape)
