"""Image grids (pixel-exact PNGs, no matplotlib) and the matplotlib plumbing."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io import atomic_write

__all__ = ["mosaic", "image_grid", "new_figure", "savefig", "line_plot", "MIN_PIXELS", "pixel_scale", "mosaic_inches"]

#: the smallest side, in screen pixels, of one image in any figure (8×8 digits: ×7, MNIST: ×2)
MIN_PIXELS = 56


def pixel_scale(h: int, w: int, min_pixels: int = MIN_PIXELS) -> int:
    """The integer nearest-neighbour factor that makes an ``h × w`` image at least ``min_pixels`` a side."""
    return max(1, math.ceil(min_pixels / max(1, min(int(h), int(w)))))


def mosaic_inches(grid_shape, image_shape, *, dpi: int = 110, min_pixels: int = MIN_PIXELS) -> tuple[float, float]:
    """Width and height (inches) at which a :func:`mosaic` of ``grid_shape`` shows each image of
    ``image_shape`` (``[H, W]``) at ``min_pixels`` or more on a side, drawn at ``dpi``."""
    k = pixel_scale(image_shape[-2], image_shape[-1], min_pixels)
    return grid_shape[1] * k / dpi, grid_shape[0] * k / dpi


def mosaic(images, *, nrow: int | None = None, pad: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """Tile ``images [n, H, W]`` (values in [0, 1]) into one array, ``nrow`` images per row."""
    arr = images.detach().cpu().float().numpy() if hasattr(images, "detach") else np.asarray(images, dtype=np.float32)
    if arr.ndim == 2:  # vectors: show as square-ish images if possible
        side = int(math.isqrt(arr.shape[1]))
        if side * side != arr.shape[1]:
            raise ValueError(f"cannot show vectors of length {arr.shape[1]} as images")
        arr = arr.reshape(-1, side, side)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3 or len(arr) == 0:
        raise ValueError(f"expected images [n, H, W], got shape {arr.shape}")
    n, h, w = arr.shape
    ncol = nrow or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / ncol))
    out = np.full((rows * (h + pad) + pad, ncol * (w + pad) + pad), pad_value, dtype=np.float32)
    for i, im in enumerate(arr):
        r, c = divmod(i, ncol)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = im
    return np.clip(out, 0.0, 1.0)


def image_grid(images, path: str | Path, *, nrow: int | None = None, scale: int | None = None,
               title: str | None = None) -> Path:
    """Write a grid of grey images as a PNG (nearest-neighbour upscaled, written atomically).

    :param images: ``[n, H, W]`` tensor or array, values in [0, 1].
    :param path: destination ``.png``.
    :param nrow: images per row (default: a square grid).
    :param scale: pixel upscaling factor (default: each image at least :data:`MIN_PIXELS` a side).
    :param title: ignored in the pixel-exact grid (kept for a uniform signature).
    """
    from PIL import Image

    grid = mosaic(images, nrow=nrow)
    shape = tuple(images.shape if hasattr(images, "shape") else np.shape(images))
    if len(shape) == 2:  # vectors shown as square images (see mosaic)
        shape = (math.isqrt(shape[1]),) * 2
    scale = scale or pixel_scale(shape[-2], shape[-1])
    img = Image.fromarray((grid * 255).round().astype(np.uint8), mode="L")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return atomic_write(path, lambda f: img.save(f, format="PNG"))


def new_figure(*args, **kwargs):
    """``plt.subplots`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def savefig(fig, path: str | Path, *, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi, bbox_inches="tight"))
    finally:
        plt.close(fig)


def line_plot(series: dict[str, Sequence[float]], path: str | Path, *, xlabel: str = "epoch",
              ylabel: str = "", title: str = "", xs: dict[str, Sequence[float]] | None = None,
              marks: dict[str, tuple[float, float]] | None = None, ylim: tuple[float, float] | None = None,
              figsize: tuple[float, float] = (5, 3.2)) -> Path:
    """One line per named series (training curves and the like).

    :param xs: x values of a series (default: 1, 2, ...), e.g. cumulative training hours.
    :param marks: one point per series, drawn in its colour (e.g. the test score at the end).
    :param ylim: the y range (long curves start far above where they end).
    """
    fig, ax = new_figure(figsize=figsize)
    for name, ys in series.items():
        x = list((xs or {}).get(name, range(1, len(ys) + 1)))
        (line,) = ax.plot(x, list(ys), label=name)
        if marks and name in marks:
            ax.plot(*marks[name], "o", color=line.get_color())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if len(series) > 1:
        ax.legend(fontsize="small")
    return savefig(fig, path)
