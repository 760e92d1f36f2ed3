"""GAN figures: the 1-D toy game, walks through code space, training curves, class histograms.

matplotlib is imported only inside the functions (through :func:`probgen.plots.core.new_figure`).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io import atomic_write
from .core import mosaic, new_figure, savefig

__all__ = ["kde", "toy_figure", "toy_gif", "wasserstein_curve", "walk_figure", "training_curves",
           "class_histograms"]


def kde(samples: np.ndarray, grid: np.ndarray, bandwidth: float | None = None) -> np.ndarray:
    """Gaussian kernel density of 1-D ``samples`` on ``grid`` (Silverman's bandwidth by default)."""
    s = np.asarray(samples, dtype=np.float64).ravel()
    if bandwidth is None:
        iqr = np.subtract(*np.percentile(s, [75, 25]))
        spread = min(s.std(), iqr / 1.34) if iqr > 0 else s.std()
        bandwidth = max(0.9 * spread * len(s) ** -0.2, 1e-3)
    out = np.zeros_like(np.asarray(grid, dtype=np.float64))
    for chunk in np.array_split(s, max(1, len(s) // 2000)):  # bounded memory
        out += np.exp(-0.5 * ((grid[:, None] - chunk[None, :]) / bandwidth) ** 2).sum(1)
    return out / (len(s) * bandwidth * np.sqrt(2 * np.pi))


def _toy_panel(ax, snap: dict, xlim: tuple[float, float], ymax: float, d_label: str) -> None:
    grid = np.asarray(snap["grid"])
    ax.fill_between(grid, snap["data_pdf"], color="tab:blue", alpha=0.25, label="data density")
    samples = np.asarray(snap["samples"])
    bins = 60
    # density of *all* samples: mass outside the window is not renormalised into it
    ax.hist(samples, bins=bins, range=xlim, weights=np.full(len(samples), bins / (len(samples) * (xlim[1] - xlim[0]))),
            color="tab:green", alpha=0.35, label="G(z) histogram")
    ax.plot(grid, kde(snap["samples"], grid), color="tab:green", lw=1.5, label="G(z) KDE")
    ax.set_xlim(*xlim)
    ax.set_ylim(0, ymax)
    outside = float(np.mean((samples < xlim[0]) | (samples > xlim[1])))
    ax.set_title(f"step {snap['step']}   W₁ = {snap['w1']:.3f}"
                 + (f"   ({outside:.0%} of G(z) off-axis)" if outside >= 0.01 else ""), fontsize=9)
    ax2 = ax.twinx()
    d = np.asarray(snap["d"])
    ax2.plot(grid, d, color="tab:red", lw=1.2, ls="--", label=d_label)
    if d_label.startswith("D(x)"):
        ax2.set_ylim(0, 1)
    ax2.tick_params(axis="y", labelsize=7, colors="tab:red")
    return ax2


def toy_figure(snapshots: Sequence[dict], path: str | Path, *, title: str = "", wgan: bool = False) -> Path:
    """The lecture's picture: one panel per snapshot with the data density (blue), the generator's
    density (green histogram + KDE) and the discriminator curve D(x) (red dashes).

    :param snapshots: dicts with ``step``, ``grid [g]``, ``data_pdf [g]``, ``samples [m]``, ``d [g]``, ``w1``.
    :param wgan: D is a critic (unbounded values), not a probability.
    """
    n = len(snapshots)
    ncol = min(n, 3)
    nrow = int(np.ceil(n / ncol))
    fig, axes = new_figure(nrow, ncol, figsize=(4.2 * ncol, 3.0 * nrow), squeeze=False)
    xlim = (float(snapshots[0]["grid"][0]), float(snapshots[0]["grid"][-1]))
    ymax = 1.25 * max(float(np.max(s["data_pdf"])) for s in snapshots)
    d_label = "critic D(x)" if wgan else "D(x) = P(real)"
    for ax, snap in zip(axes.flat, snapshots):
        ax2 = _toy_panel(ax, snap, xlim, ymax, d_label)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    h1, l1 = axes.flat[0].get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    fig.legend(h1 + h2, l1 + l2, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(title or "1-D GAN: data (blue), generator (green), discriminator (red)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return savefig(fig, path)


def toy_gif(snapshots: Sequence[dict], path: str | Path, *, wgan: bool = False, ms_per_frame: int = 400) -> Path | None:
    """An animated GIF of the toy game, one frame per snapshot. Returns ``None`` without Pillow."""
    try:
        from PIL import Image
    except ImportError:
        return None
    xlim = (float(snapshots[0]["grid"][0]), float(snapshots[0]["grid"][-1]))
    ymax = 1.25 * max(float(np.max(s["data_pdf"])) for s in snapshots)
    frames = []
    for snap in snapshots:
        fig, ax = new_figure(figsize=(5, 3.2))
        _toy_panel(ax, snap, xlim, ymax, "critic D(x)" if wgan else "D(x)")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        import matplotlib.pyplot as plt

        plt.close(fig)
        buf.seek(0)
        frames.append(Image.open(buf).convert("P", palette=Image.ADAPTIVE))
    return atomic_write(path, lambda f: frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:],
                                                       duration=ms_per_frame, loop=0))


def wasserstein_curve(steps: Sequence[int], w1: Sequence[float], path: str | Path, *,
                      floor: float | None = None, spread: float | None = None) -> Path:
    """W₁(generator, data) against training step, with the sampling-noise floor and the data's std."""
    fig, ax = new_figure(figsize=(5, 3.2))
    ax.plot(steps, w1, color="tab:green", label="W₁(G(z), data)")
    if floor is not None:
        ax.axhline(floor, color="grey", ls=":", label=f"data vs data ({floor:.3f})")
    if spread is not None:
        ax.axhline(spread, color="tab:blue", ls="--", lw=0.8, label=f"data std ({spread:.2f})")
    ax.set_yscale("log")
    ax.set_xlabel("generator step")
    ax.set_ylabel("1-D Wasserstein distance")
    ax.legend(fontsize=8)
    return savefig(fig, path)


def walk_figure(linear, spherical, path: str | Path, *, norms_linear=None, norms_spherical=None,
                title: str = "") -> Path:
    """Two image mosaics (rows: walks, columns: steps), straight line vs great circle, and the code norms."""
    panels = 3 if norms_linear is not None else 2
    fig, axes = new_figure(1, panels, figsize=(4.2 * panels, 3.6))
    for ax, imgs, name in zip(axes, (linear, spherical), ("linear (lerp)", "spherical (slerp)")):
        steps = imgs.shape[1]
        ax.imshow(mosaic(imgs.reshape(-1, *imgs.shape[2:]), nrow=steps), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if norms_linear is not None:
        ax = axes[2]
        t = np.linspace(0, 1, np.asarray(norms_linear).shape[1])
        for i, (a, b) in enumerate(zip(norms_linear, norms_spherical)):
            ax.plot(t, a, color="tab:orange", alpha=0.7, label="lerp" if i == 0 else None)
            ax.plot(t, b, color="tab:purple", alpha=0.7, label="slerp" if i == 0 else None)
        ax.set_xlabel("t")
        ax.set_ylabel("‖z‖")
        ax.set_title("code norm along the path", fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(title or "moving through code space", fontsize=10)
    fig.tight_layout()
    return savefig(fig, path)


def training_curves(history: Sequence[dict], path: str | Path, *, wgan: bool = False) -> Path:
    """Per-epoch D and G losses, D(x) vs D(G(z)), and classifier coverage if monitored."""
    epochs = [r["epoch"] for r in history]
    has_cov = any("coverage" in r for r in history)
    fig, axes = new_figure(1, 3 if has_cov else 2, figsize=(4.2 * (3 if has_cov else 2), 3.2))
    axes[0].plot(epochs, [r.get("d_loss", np.nan) for r in history], label="D loss")
    axes[0].plot(epochs, [r.get("g_loss", np.nan) for r in history], label="G loss")
    axes[0].set_xlabel("epoch")
    axes[0].set_title("losses (epoch means)", fontsize=9)
    axes[0].legend(fontsize=8)
    axes[1].plot(epochs, [r.get("d_real", np.nan) for r in history], label="D(x)" if not wgan else "critic(x)")
    axes[1].plot(epochs, [r.get("d_fake", np.nan) for r in history], label="D(G(z))" if not wgan else "critic(G(z))")
    axes[1].set_xlabel("epoch")
    axes[1].set_title("discriminator on real vs generated", fontsize=9)
    axes[1].legend(fontsize=8)
    if has_cov:
        axes[2].plot(epochs, [r.get("coverage", np.nan) for r in history], label="class coverage")
        axes[2].plot(epochs, [r.get("max_class_fraction", np.nan) for r in history], label="max class fraction")
        axes[2].plot(epochs, [r.get("mean_confidence", np.nan) for r in history], label="mean confidence")
        for r in history:
            if r.get("mode_collapse_warning"):
                axes[2].axvline(r["epoch"], color="tab:red", alpha=0.3)
        axes[2].set_ylim(0, 1.05)
        axes[2].set_title("digit classifier on samples (red: collapse warnings)", fontsize=9)
        axes[2].set_xlabel("epoch")
        axes[2].legend(fontsize=8)
    fig.tight_layout()
    return savefig(fig, path)


def class_histograms(results: dict[str, dict], path: str | Path) -> Path:
    """Bars of the classifier's predicted-class fractions for each model's samples."""
    names = list(results)
    n_classes = len(next(iter(results.values()))["class_histogram"])
    width = 0.8 / max(len(names), 1)
    fig, ax = new_figure(figsize=(max(5, 0.6 * n_classes + 1), 3.2))
    x = np.arange(n_classes)
    for i, name in enumerate(names):
        ax.bar(x + i * width - 0.4 + width / 2, results[name]["class_histogram"], width=width, label=name)
    ax.axhline(1 / n_classes, color="grey", ls=":", lw=0.8)
    ax.set_xticks(x)
    ax.set_xlabel("class predicted by the digit classifier")
    ax.set_ylabel("fraction of samples")
    ax.legend(fontsize=8)
    return savefig(fig, path)
