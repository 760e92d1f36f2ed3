"""The one place where probgen silences warnings (issue 20: quiet output stays quiet).

Only third-party warnings that probgen cannot fix are filtered, each by its message, inside a
``with quiet("name"):`` block around the one call that raises it; everything else is fixed
where it is raised. Add a filter here (with the reason), never ``warnings.filterwarnings``
elsewhere in the package.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

__all__ = ["THIRD_PARTY", "quiet"]

#: name -> (why it cannot be fixed here, message patterns to ignore, categories to ignore by name)
THIRD_PARTY: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "jit-trace": (
        "Pyro's NUTS (jit_compile=True) calls torch.jit.trace, deprecated since torch 2.x with no "
        "replacement inside Pyro; tracing the potential may also raise TracerWarnings about Python "
        "control flow in Pyro's own code",
        (r".*torch\.jit\.trace.*is deprecated",), ("torch.jit.TracerWarning",)),
    "frozen-params": (
        "pyro.module warns once per parameter with requires_grad=False; infer.refit_guide freezes the "
        "model's parameters on purpose",
        (r".*was not registered in the param store because requires_grad=False",), ()),
    "arviz-pandas": (
        "ArviZ 0.23's compare() calls DataFrame.sort_values(inplace=True), deprecated by pandas (PDEP-8)",
        (r"The inplace keyword in DataFrame\.sort_values is deprecated",), ()),
}


def _category(dotted: str) -> type[Warning]:
    import importlib

    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@contextlib.contextmanager
def quiet(*names: str) -> Iterator[None]:
    """Ignore the named third-party warnings (:data:`THIRD_PARTY`) inside the block.

    :raises ValueError: an unknown name.
    """
    unknown = [n for n in names if n not in THIRD_PARTY]
    if unknown:
        raise ValueError(f"unknown warning filter(s) {', '.join(unknown)}; known: {', '.join(THIRD_PARTY)}")
    with warnings.catch_warnings():
        for name in names:
            _, messages, categories = THIRD_PARTY[name]
            for pattern in messages:
                warnings.filterwarnings("ignore", message=pattern)
            for dotted in categories:
                warnings.filterwarnings("ignore", category=_category(dotted))
        yield
