"""Walks through code space: straight and great-circle paths, grids, traversals.

Pure tensor functions shared by the VAE family's pictures and the GAN's walks; they know
nothing about models (the caller decodes the codes).
"""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["lerp", "slerp", "grid", "traversal", "neighbour_change"]


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight line ``(1 − t) z0 + t z1`` for each ``t``.

    :param z0: start code ``[z_dim]``; ``z1``: end code ``[z_dim]``.
    :param t: positions ``[m]`` (0 at ``z0``, 1 at ``z1``).
    :return: ``[m, z_dim]``.
    """
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device).reshape(-1, 1)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation along the great circle (Shoemake 1985; White 2016 for generative models).

    A Gaussian code in d dimensions lies near the sphere of radius √d; the straight line's
    midpoint has norm ≈ √(d/2), in a region the decoder never saw. Slerp keeps the norm in the
    typical range. (Anti)parallel codes fall back to the straight line.

    :param z0: start code ``[z_dim]``; ``z1``: end code ``[z_dim]``; ``t``: positions ``[m]``.
    :return: ``[m, z_dim]``.
    """
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device).reshape(-1, 1)
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(omega.sin().abs()) < 1e-4:  # the circle is not defined: the line is the best we can do
        return lerp(z0, z1, t)
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / omega.sin()


def grid(*, span: float, steps: int) -> torch.Tensor:
    """A square grid over ``[-span, span]²`` of a 2-D code, laid out as a picture: columns sweep
    z₁ left to right, rows sweep z₂ from high (top row) to low.

    :return: ``[steps, steps, 2]`` with ``[..., 0] = z₁``, ``[..., 1] = z₂``.
    """
    values = torch.linspace(-span, span, steps)
    z2, z1 = torch.meshgrid(values.flip(0), values, indexing="ij")  # top row = high z₂
    return torch.stack([z1, z2], -1)


def traversal(base: torch.Tensor, dims: Sequence[int], *, span: float, steps: int) -> torch.Tensor:
    """Fix every code dimension at ``base`` except two, which sweep ``[-span, span]``: ``dims[0]``
    down the rows, ``dims[1]`` along the columns.

    :param base: the code ``[z_dim]`` the other dimensions keep.
    :param dims: the two swept dimensions ``(i, j)``.
    :return: ``[steps, steps, z_dim]``.
    """
    i, j = dims
    values = torch.linspace(-span, span, steps, dtype=base.dtype, device=base.device)
    z = base.repeat(steps, steps, 1)  # rows × cols × z_dim
    z[:, :, i] = values[:, None]  # dim i down the rows
    z[:, :, j] = values[None, :]  # dim j along the columns
    return z


def neighbour_change(images: torch.Tensor) -> tuple[float, float]:
    """How smoothly a grid of decoded images changes: over all pairs of neighbouring cells
    (down and across), the mean |Δpixel| of each pair; returns its mean and its maximum.

    :param images: ``[R, C, H, W]`` (a decoded :func:`grid` or :func:`traversal`).
    """
    d = torch.cat([(images[1:] - images[:-1]).abs().mean((-2, -1)).flatten(),
                   (images[:, 1:] - images[:, :-1]).abs().mean((-2, -1)).flatten()])
    return float(d.mean()), float(d.max())
