"""Figures. matplotlib is imported here only, and only when a figure is drawn.

``core`` (image grids, mosaics, line plots; the common ones are re-exported here), ``vae`` (code-space
pictures: traversals, maps, interpolation strips, nearest neighbours), ``gan`` (the 1-D game, the judge's
histograms), ``tour`` (the mixture story, the likelihood bars) and ``diagnostics`` (k̂, posterior checks).
They draw arrays and tensors; no module here knows a model.
"""
from __future__ import annotations

from .core import image_grid, mosaic, new_figure, savefig, line_plot

__all__ = ["image_grid", "mosaic", "new_figure", "savefig", "line_plot"]
