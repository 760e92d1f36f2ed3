"""``probgen train --story path/to/file.py:ClassName``: your own generative story on the command line.

Importing a file runs its code, so it only happens when you name the file (see
:mod:`probgen.recipes.story`, which also loads such checkpoints explicitly).
"""
from __future__ import annotations

from ..recipes.story import load_story_checkpoint  # noqa: F401 - the README's import path
from .common import config_from

__all__ = ["register", "run_story_train", "load_story_checkpoint"]


def register(sub) -> None:
    """The ``--story`` flags live on ``probgen train`` (:mod:`probgen.cli.spine`)."""


def run_story_train(args) -> int:
    """``probgen train --story FILE.py:Class``: build the story, fit it, save ``OUT/<kind>.pt``."""
    from ..recipes.story import StoryConfig, user_story

    cfg = config_from(StoryConfig, args)
    for line in user_story(cfg).lines(cfg.story):
        print(line)
    return 0
