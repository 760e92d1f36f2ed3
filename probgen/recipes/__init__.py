"""Recipes: the applications of probgen as plain functions over typed configs.

Each recipe takes a config dataclass and returns a result object; the CLI, the tour
(``probgen.report.tour``) and ``experiments/`` all call these, never each other.
``probgen.recipes.<name>`` is loaded on first use (``train``, ``compare``, ``sample``,
``user_story``, ``diagnose``, ``complete``, ``poem``, ``interpolate_text``, ``MODELS``, and
the VAE-family and GAN recipes).
"""
from __future__ import annotations

import importlib

from .config import DataConfig, FitConfig, RunConfig  # noqa: F401

# imported here (they load no torch) so that the functions, not the same-named modules, are
# `probgen.recipes.train`, `.compare` and `.diagnose`
from .compare import CompareConfig, CompareResult, compare  # noqa: E402,F401
from .diagnose import DiagnoseConfig, diagnose  # noqa: E402,F401
from .train import SampleConfig, TrainConfig, TrainResult, sample, train  # noqa: E402,F401

#: public name -> module of probgen.recipes that defines it
_NAMES = {
    "MODELS": "models", "register_model": "models", "model_spec": "models", "fit_model": "models",
    "PUBLISHED": "published",
    "TrainConfig": "train", "TrainResult": "train", "train": "train", "SampleConfig": "train", "sample": "train",
    "CompareConfig": "compare", "CompareResult": "compare", "compare": "compare",
    "StoryConfig": "story", "user_story": "story", "load_story_class": "story",
    "load_story_checkpoint": "story",
    "DiagnoseConfig": "diagnose", "diagnose": "diagnose",
    "CompleteConfig": "pixel", "complete": "pixel",
    "PoemConfig": "text", "poem": "text", "InterpolateTextConfig": "text", "interpolate_text": "text",
    "traverse": "vae", "latent_map": "vae", "interpolate": "vae", "style_transfer": "vae", "why_vae": "code_space",
    "gan_toy": "gan", "walk": "gan", "judge": "gan",
}

__all__ = ["DataConfig", "FitConfig", "RunConfig", *_NAMES]


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'probgen.recipes' has no attribute {name!r}")
