"""Figures of the VAE family: latent traversal, latent map, interpolation, "why VAE".

The image grids are pixel-exact PNGs (:func:`probgen.plots.image_grid`, no matplotlib),
so their size is known: ``cols · (W + 1) + 1`` pixels wide before upscaling. Figures
with axes (scatter, side by side with titles) use matplotlib, imported lazily.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .core import image_grid, mosaic, mosaic_inches, new_figure, savefig

__all__ = ["traversal_grid", "latent_map", "latent_scatter", "interpolation_strip", "panel_figure",
           "nearest_pairs", "distance_histogram"]


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


def panel_figure(rows: Sequence[Sequence[tuple]], path: str | Path, *, suptitle: str = "", dpi: int = 110,
                 max_width: float | None = None) -> Path:
    """A table of titled image mosaics, sized so that every image is at least ``MIN_PIXELS`` a side.

    :param rows: figure rows, each a list of ``(title, images [n, H, W], images per row)``; a row may be
        shorter than the others (its last cells stay empty).
    :param max_width: inches a row may take (e.g. a page's column); a longer row wraps onto the next.
    """
    mosaics = [[(title, mosaic(images, nrow=nrow), _as_array(images).shape[-2:]) for title, images, nrow in row]
               for row in rows]
    if max_width:
        mosaics = _wrapped(mosaics, max_width, dpi)
    ncol = max(len(r) for r in mosaics)
    sizes = [[mosaic_inches(m.shape, hw, dpi=dpi) for _, m, hw in r] for r in mosaics]
    # matplotlib's default margins take about a quarter of each side: room so images keep their size
    widths = [max((r[c][0] for r in sizes if c < len(r)), default=0.1) for c in range(ncol)]
    heights = [max(h for _, h in r) for r in sizes]
    width = sum(w * 1.3 + 0.4 for w in widths)
    top, gap = (0.95 if suptitle else 0.5), 0.6  # inches: the title(s) above the first row, between rows
    height = sum(heights) + gap * (len(heights) - 1) + top + 0.15
    fig, axes = new_figure(len(mosaics), ncol, figsize=(max(width, 3.0), height), squeeze=False,
                           gridspec_kw={"width_ratios": widths, "height_ratios": heights})
    # margins in inches, not shares of a tall figure (shares left wide gaps under the title and between rows)
    fig.subplots_adjust(top=1 - top / height, bottom=0.15 / height, hspace=gap / (sum(heights) / len(heights)))
    for r, row in enumerate(mosaics):
        for c in range(ncol):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(row):
                title, m, _ = row[c]
                ax.imshow(m, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                ax.set_title(title, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return savefig(fig, path, dpi=dpi)


def _wrapped(mosaics: list, max_width: float, dpi: int) -> list:
    """Rows of panels re-flowed so that none is wider than ``max_width`` inches (at least one panel a row)."""
    out = []
    for row in mosaics:
        line, used = [], 0.0
        for cell in row:
            w = mosaic_inches(cell[1].shape, cell[2], dpi=dpi)[0] + 0.35  # the image and a gap (margins are cut)
            if line and used + w > max_width:
                out.append(line)
                line, used = [], 0.0
            line.append(cell)
            used += w
        out.append(line)
    return out


def nearest_pairs(generated, nearest, distances, path: str | Path, *, dpi: int = 110) -> Path:
    """Each generated image (top) above its nearest training image (bottom), the distance between them.

    :param generated: ``[k, H, W]``; ``nearest``: ``[k, H, W]``; ``distances``: ``[k]``.
    """
    g, t = _as_array(generated), _as_array(nearest)
    k = len(g)
    w_in, h_in = mosaic_inches(g.shape[-2:], g.shape[-2:], dpi=dpi)
    cell_w, cell_h = max(w_in, 0.55) * 1.25, h_in * 1.25 + 0.3  # room for the distance above each pair
    fig, axes = new_figure(2, k, figsize=(k * cell_w + 0.9, 2 * cell_h + 0.5), squeeze=False)
    fig.subplots_adjust(left=0.9 / (k * cell_w + 0.9), right=0.99, bottom=0.02, top=1 - 0.5 / (2 * cell_h + 0.5),
                        wspace=0.1, hspace=0.15)
    for c in range(k):
        for r, (img, title) in enumerate(((g[c], f"{float(distances[c]):.2f}"), (t[c], ""))):
            ax = axes[r][c]
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if title:
                ax.set_title(title, fontsize=7)
    axes[0][0].set_ylabel("generated", fontsize=8)
    axes[1][0].set_ylabel("nearest\ntraining", fontsize=8)
    fig.suptitle("generated (top) and its nearest training image (below); distance above", fontsize=9)
    return savefig(fig, path, dpi=dpi)


def distance_histogram(series: dict, path: str | Path, *, title: str = "") -> Path:
    """Overlaid histograms of nearest-training-image distances, one per named set (generated, held-out real).

    :param series: ``{name: distances [n]}``.
    """
    fig, ax = new_figure(figsize=(6, 3.4))
    arrays = {name: _as_array(d).ravel() for name, d in series.items()}
    lo = min(float(a.min()) for a in arrays.values())
    hi = max(float(a.max()) for a in arrays.values())
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 30)
    for name, a in arrays.items():
        ax.hist(a, bins=bins, alpha=0.5, density=True, label=f"{name} (median {np.median(a):.2f})")
    ax.set_xlabel("distance to the nearest training image (pixel space)")
    ax.set_ylabel("density")
    ax.set_title(title or "imitate or create? generated vs held-out real images", fontsize=9)
    ax.legend(fontsize=7)
    return savefig(fig, path)
