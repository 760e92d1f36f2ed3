"""Figures. matplotlib is imported here only, and only when a figure is drawn.

One module per family (``core``, ``vae``, ``pixel``, ``gan``, ``text``, ``diagnostics``);
the common ones are re-exported here.
"""
from __future__ import annotations

from .core import image_grid, mosaic, new_figure, savefig, line_plot

__all__ = ["image_grid", "mosaic", "new_figure", "savefig", "line_plot"]
