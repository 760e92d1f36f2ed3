"""The model families. Each file is independent; import what you use.

Every module of this package is a family (or a helper of one): a new file is found by itself, no list
here to edit. Names load lazily so that ``import probgen.models`` stays fast: ``probgen.models.GMM``
imports ``gmm.py`` on first use (each module's ``__all__`` says what it offers).
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

_OWN = ["load", "MODULES"]


def _family_modules() -> list[str]:
    """The modules of this package, by name (files starting with ``_`` are not families)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def _public(module: str) -> dict[str, str]:
    """The public names of one module (its ``__all__``) -> that module's name."""
    mod = importlib.import_module(f".{module}", __name__)
    return {name: module for name in getattr(mod, "__all__", ())}


def _modules() -> dict[str, str]:
    """Public name -> module file, for every module of the package (imports them all)."""
    out: dict[str, str] = {}
    for module in _family_modules():
        out.update(_public(module))
    return out


def __getattr__(name: str):
    if name == "MODULES":  # public name -> module file in this package
        return _modules()
    if name == "__all__":
        return [*_OWN, *_modules()]
    if not name.startswith("_"):
        # the module named like the class first (GMM -> gmm, SentenceVAE -> sentence_vae), then every one
        key = name.lower()
        candidates = _family_modules()
        for module in sorted(candidates, key=lambda m: m.replace("_", "") != key):
            found = _public(module)
            if name in found:
                value = getattr(importlib.import_module(f".{module}", __name__), name)
                globals()[name] = value  # found once: no second lookup
                return value
    raise AttributeError(f"module 'probgen.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_OWN, *_modules()})


def _import_all() -> None:
    """Import every family module, so that each registers its kind (:data:`probgen.story.REGISTRY`)."""
    for module in _family_modules():
        importlib.import_module(f".{module}", __name__)


def load(path: str | Path, *, device: str = "cpu"):
    """Load any probgen checkpoint, whatever its model kind (runs no code from the file): every family
    imported (registered), then the one loader, :meth:`probgen.story.Story.load`.

    :param path: a ``.pt`` file written by ``model.save`` or ``probgen train``.
    :param device: where to put the model.
    """
    from ..story import Story

    _import_all()
    return Story.load(path, device=device)
