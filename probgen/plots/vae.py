"""Figures of the VAE family: latent traversal, latent map, interpolation, "why VAE".

The image grids are pixel-exact PNGs (:func:`probgen.plots.image_grid`, no matplotlib),
so their size is known: ``cols · (W + 1) + 1`` pixels wide before upscaling. Figures
with axes (scatter, side by side with titles) use matplotlib, imported lazily.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .core import image_grid, mosaic, new_figure, savefig

__all__ = ["traversal_grid", "latent_map", "latent_scatter", "interpolation_strip", "why_vae_figure"]


def _as_array(images) -> np.ndarray:
    return images.detach().cpu().float().numpy() if hasattr(images, "detach") else np.asarray(images, np.float32)


def traversal_grid(images, path: str | Path) -> Path:
    """Write a traversal: ``images [rows, cols, H, W]``, row = value of dim I, column = dim J.

    :param images: decoded images on the (dim I × dim J) grid.
    :param path: destination ``.png``.
    """
    arr = _as_array(images)
    if arr.ndim != 4:
        raise ValueError(f"expected images [rows, cols, H, W], got shape {arr.shape}")
    rows, cols = arr.shape[:2]
    return image_grid(arr.reshape(rows * cols, *arr.shape[2:]), path, nrow=cols)


def latent_map(images, path: str | Path) -> Path:
    """Decoded regular grid over a 2-D code space as one mosaic; ``images [rows, cols, H, W]``,
    rows from high to low z₂ (top = high), columns from low to high z₁."""
    return traversal_grid(images, path)


def latent_scatter(codes, labels, path: str | Path, *, extent: float | None = None,
                   title: str = "test codes (posterior means)") -> Path:
    """Scatter 2-D codes coloured by label.

    :param codes: ``[n, 2]``; ``labels``: ``[n]`` ints or ``None``.
    :param extent: draw the square ``[-extent, extent]²`` of the decoded mosaic.
    """
    codes = _as_array(codes)
    fig, ax = new_figure(figsize=(5, 4.4))
    if labels is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=6, alpha=0.7)
    else:
        labels = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels)
        sc = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=6, alpha=0.8,
                        vmin=-0.5, vmax=9.5 if labels.max() < 10 else labels.max() + 0.5)
        fig.colorbar(sc, ax=ax, ticks=sorted(set(labels.tolist())), label="label")
    if extent is not None:
        ax.plot([-extent, extent, extent, -extent, -extent], [-extent, -extent, extent, extent, -extent],
                "k--", lw=0.8, label="decoded grid")
        ax.legend(loc="upper right", fontsize=7)
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")
    return savefig(fig, path)


def interpolation_strip(rows, path: str | Path) -> Path:
    """One strip per path: ``rows [n_paths, steps, H, W]`` (e.g. linear, then spherical)."""
    return traversal_grid(rows, path)


def why_vae_figure(panels: Sequence[tuple[str, object]], path: str | Path, *, nrow: int = 8,
                   suptitle: str = "") -> Path:
    """Side-by-side sample grids with a title each (e.g. AE vs VAE on the same codes).

    :param panels: ``(title, images [n, H, W])`` pairs, drawn left to right.
    :param nrow: images per row inside each panel.
    """
    fig, axes = new_figure(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    axes = np.atleast_1d(axes)
    for ax, (title, images) in zip(axes, panels):
        ax.imshow(mosaic(images, nrow=nrow), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return savefig(fig, path)
