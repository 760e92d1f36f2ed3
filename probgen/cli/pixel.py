"""``probgen complete CKPT --index I --rows K``: keep the top K rows of test image I and let a
pixel model (``probgen train pixelcnn|pixelrnn``) draw the rest."""
from __future__ import annotations

from .common import add_recipe

__all__ = ["register"]


DESCRIPTION = ("Image completion: keep the top --rows rows of test image(s) --index and draw the remaining "
               "pixels from the model, -n times each. Each grid row: original, the kept rows (rest grey), "
               "then the completions.")


def register(sub) -> None:
    from ..recipes.pixel import CompleteConfig, complete

    add_recipe(sub, "complete", CompleteConfig, complete, description=DESCRIPTION,
               help="keep the top rows of test images, let a pixel model draw the rest",
               positional=[("checkpoint", "a pixelcnn/pixelrnn .pt file written by probgen", None)])
