"""The model families. Each file is independent; import what you use.

Names load lazily so that ``import probgen.models`` stays fast.
"""
from __future__ import annotations

import importlib
from pathlib import Path

__all__ = ["GMM", "VAE", "CVAE", "AutoEncoder", "PixelModel", "GAN", "SentenceVAE", "MixtureVAE",
           "HVAE", "load", "MODULES"]

#: public name -> module file in this package
MODULES = {
    "GMM": "gmm",
    "VAE": "vae",
    "CVAE": "cvae",
    "AutoEncoder": "autoencoder",
    "PixelModel": "pixel",
    "GAN": "gan",
    "SentenceVAE": "sentence_vae",
    "MixtureVAE": "mixture_vae",
    "HVAE": "hvae",
}


def __getattr__(name: str):
    if name in MODULES:
        module = importlib.import_module(f".{MODULES[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'probgen.models' has no attribute {name!r}")


def _import_all() -> None:
    for mod in set(MODULES.values()):
        try:
            importlib.import_module(f".{mod}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{mod}":  # a missing family file is fine, a broken import is not
                raise


def load(path: str | Path, *, device: str = "cpu"):
    """Load any probgen checkpoint, whatever its model kind (runs no code from the file).

    :param path: a ``.pt`` file written by ``model.save`` or ``probgen train``.
    :param device: where to put the model.
    """
    from ..io import load_checkpoint
    from ..story import REGISTRY, Story

    payload = load_checkpoint(path)
    _import_all()
    if payload["kind"] not in REGISTRY:
        raise ValueError(f"{path}: unknown model kind {payload['kind']!r} "
                         f"(known: {', '.join(sorted(REGISTRY))})")
    try:
        return Story.from_checkpoint(payload, device=device)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
