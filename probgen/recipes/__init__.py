"""Recipes: the applications of probgen as plain functions over typed configs.

Each recipe takes a config dataclass and returns a result object; the CLI, the tour
(``probgen.report.tour``) and ``experiments/`` all call these, never each other.
"""
from __future__ import annotations

from .config import DataConfig, FitConfig, RunConfig  # noqa: F401
