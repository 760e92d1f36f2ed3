"""Figures people can read: every image in a grid PNG or a panel figure is at least 56 px a side
(nearest-neighbour upscaled), for 8×8 digits, 28×28 MNIST and 28×20 Frey faces."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from probgen.plots import core, vae as V

SHAPES = [(8, 8), (28, 28), (28, 20)]


@pytest.mark.parametrize("h,w", SHAPES)
def test_image_grid_scales_each_image_to_56_px(tmp_path, h, w):
    path = core.image_grid(torch.rand(6, h, w), tmp_path / "g.png", nrow=3)
    k = core.pixel_scale(h, w)
    assert min(h, w) * k >= 56 and min(h, w) * (k - 1) < 56  # the smallest factor that does it
    width, height = Image.open(path).size
    assert (width, height) == ((3 * (w + 1) + 1) * k, (2 * (h + 1) + 1) * k)


def _image_extents(monkeypatch):
    """Spy on savefig: the on-screen size (px at the saved dpi) of every image drawn."""
    seen = []
    real = V.savefig

    def spy(fig, path, **kw):
        fig.canvas.draw()
        ratio = kw.get("dpi", 110) / fig.dpi
        seen.append([(b.width * ratio, b.height * ratio) for b in
                     (ax.images[0].get_window_extent() for ax in fig.axes if ax.images)])
        return real(fig, path, **kw)

    monkeypatch.setattr(V, "savefig", spy)
    return seen


@pytest.mark.parametrize("h,w", SHAPES)
def test_panel_figure_and_nearest_pairs_keep_images_56_px(tmp_path, monkeypatch, h, w):
    seen = _image_extents(monkeypatch)
    V.panel_figure([[("a", torch.rand(36, h, w), 6), ("b", torch.rand(10, h, w), 5)], [("c", torch.rand(8, h, w), 8)]],
                   tmp_path / "p.png", suptitle="title")
    V.nearest_pairs(torch.rand(10, h, w), torch.rand(10, h, w), torch.rand(10), tmp_path / "n.png")
    panels, pairs = seen
    for (bw, bh), (cols, rows) in zip(panels, [(6, 6), (5, 2), (8, 1)]):  # mosaic extent / images per side
        assert min(bw / cols * w / (w + 1), bh / rows * h / (h + 1)) >= 55, (bw, bh)
    assert min(min(e) for e in pairs) >= 55
    assert (tmp_path / "p.png").is_file() and (tmp_path / "n.png").is_file()


def test_distance_histogram_writes_a_png(tmp_path):
    path = V.distance_histogram({"generated": torch.rand(50), "held-out": torch.rand(40) + 0.5}, tmp_path / "d.png")
    assert Image.open(path).size[0] > 300
