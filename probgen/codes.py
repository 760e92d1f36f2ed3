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
    typical range. The angle comes from ``2 atan2(|û0 − û1|, |û0 + û1|)`` in float64, accurate at both
    ends (the arccos of the cosine loses half the digits there, and near-opposite codes, where
    sin Ω ≈ 0 divides, would leave the sphere). The direction follows the circle and the norm goes
    linearly from |z0| to |z1| (for equal norms this is Shoemake's formula; for unequal ones it does
    not amplify the norm difference by 1/sin Ω near opposite codes). Only codes (anti)parallel to
    within 1e-6 rad, or a zero code, fall back to the straight line (no circle is defined).

    :param z0: start code ``[z_dim]``; ``z1``: end code ``[z_dim]``; ``t``: positions ``[m]``.
    :return: ``[m, z_dim]`` in ``z0``'s dtype.
    """
    a, b = z0.double(), z1.double()
    n0, n1 = a.norm(), b.norm()
    if float(n0) == 0.0 or float(n1) == 0.0:
        return lerp(z0, z1, t)
    u0, u1 = a / n0, b / n1
    omega = 2 * torch.atan2((u0 - u1).norm(), (u0 + u1).norm())
    sin = omega.sin()
    if float(sin) < 1e-6:  # the circle is not defined: the line is the best we can do
        return lerp(z0, z1, t)
    t = torch.as_tensor(t, dtype=torch.float64, device=z0.device).reshape(-1, 1)
    direction = (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / sin  # unit, on the great circle
    return (direction * ((1 - t) * n0 + t * n1)).to(z0.dtype)


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
