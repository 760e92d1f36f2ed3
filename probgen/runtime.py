"""Helpers every layer shares, at the bottom so that any module may use them: the one progress
bar, the one log line, torch's thread count, the random-number state (bit-identical resume) and
the "parameters already registered" switch trainers set around their steps.

The bar and the log line write to stderr only while it can take a line: a closed stderr (``2>&-``),
a descriptor open for reading only, or one that fails later (its reader left) makes them quiet, never
an error; training goes on. Nothing here knows about stories, trainers or files.
"""
from __future__ import annotations

import ast
import contextlib
import os
import random
import sys
from typing import Any, Iterable

import numpy as np
import pyro
import torch

__all__ = ["progress_bar", "bars_off", "log", "say_first", "flush_first", "drop_first", "reserve_std_fds",
           "set_threads", "rng_state", "set_rng_state", "registered_quietly"]

_BARS_OFF = [0]  # depth of bars_off() blocks: > 0 silences every progress bar
_FIRST: list[str] = []  # a line held until the run prints anything (say_first)


# -- progress and log lines -----------------------------------------------------------------------
def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True, desc: str, unit: str = "epoch",
                 total: int | None = None):
    """The one progress bar: tqdm over ``iterable`` (or a manual bar of ``total`` units when
    ``iterable`` is ``None``: call ``update(n)``, then ``close()``).

    Off when ``enabled`` is false, inside :func:`bars_off`, or when stderr is not a terminal or is closed; the
    quiet stand-in offers the same methods (``set_postfix``, ``update``, ``close``), so callers never branch.

    :param iterable: what to iterate over (``None``: a manual bar).
    :param enabled: show it at all.
    :param desc: the bar's label; ``unit``: what one step is; ``total``: steps of a manual bar.
    """
    stream = _stderr()
    if not enabled or _BARS_OFF[0] or stream is None:
        return _Quiet(iterable)
    from tqdm.auto import tqdm

    try:  # tqdm flushes the raw sys.stderr and sys.stdout as it starts: a stream that just went away
        bar = tqdm(iterable, desc=desc, unit=unit, total=total, leave=False, dynamic_ncols=True, disable=None,
                   file=stream)
    except (OSError, ValueError):
        return _Quiet(iterable)
    if not bar.disable:  # shown (a terminal): the held first line goes above it
        flush_first()
    return bar


class _Quiet:
    """A progress bar that shows nothing."""

    def __init__(self, iterable: Iterable | None):
        self._it = iterable

    def __iter__(self):
        return iter(self._it if self._it is not None else ())

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


@contextlib.contextmanager
def bars_off():
    """While inside, every :func:`progress_bar` is the quiet one (a logger drawing samples per epoch
    must not put a pixel-by-pixel bar of the model's ``sample`` on the screen)."""
    _BARS_OFF[0] += 1
    try:
        yield
    finally:
        _BARS_OFF[0] -= 1


def say_first(line: str) -> None:
    """Hold ``line`` (a command's device line) until the run prints anything: the next :func:`log` line, a
    shown progress bar, or :func:`flush_first` (the command line calls it before its first output line); a
    command that fails before that prints its one-line error alone (:func:`drop_first`)."""
    _FIRST[:] = [line]


def flush_first() -> None:
    """Print the line :func:`say_first` holds, if any, on stderr (once)."""
    if _FIRST:
        line = _FIRST.pop()
        log(line)


def drop_first() -> None:
    """Forget the held line (a command that ends in an error says only the error)."""
    _FIRST.clear()


def log(msg: str, *, file=None) -> None:
    """Print one line above a live progress bar (not through it); ``file`` defaults to stderr. A line
    held by :func:`say_first` comes first."""
    flush_first()
    file = _stderr() if file is None else file
    if file is None:  # no stderr to write to (closed): the line is dropped, the run goes on
        return
    from tqdm.auto import tqdm

    tqdm.write(msg, file=file)


# -- the standard streams, when they are closed ------------------------------------------------------
class _Guarded:
    """A text stream whose failing writes are dropped (``EBADF``, ``EPIPE``, ``EIO``, closed): a progress
    line is not worth a failed run. After the first failure it stays quiet."""

    def __init__(self, stream):
        self._stream, self._dead = stream, False

    def write(self, text: str) -> int:
        if not self._dead:
            try:
                return self._stream.write(text)
            except (OSError, ValueError):
                self._dead = True
        return len(text)

    def flush(self) -> None:
        if not self._dead:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._dead = True

    def __getattr__(self, name: str):  # isatty, fileno, encoding: tqdm asks
        return getattr(self._stream, name)

    # tqdm clears a live bar before a line only for the bar's own stream (or stdout/stderr): the same
    def __eq__(self, other) -> bool:
        return other is self or other is self._stream

    def __hash__(self) -> int:
        return id(self._stream)


_GUARDED: dict[int, _Guarded] = {}  # one guard per stream: the bar and the log lines share it (and its silence)


def _guarded(stream) -> _Guarded:
    guard = _GUARDED.get(id(stream))
    if guard is None or guard._stream is not stream:
        guard = _GUARDED[id(stream)] = _Guarded(stream)
    return guard


def _stderr():
    """``sys.stderr`` guarded (:class:`_Guarded`) if it can take a line, else ``None``: Python sets it to
    ``None`` when descriptor 2 was closed at start (``2>&-``); a stream on a closed descriptor, or on one
    open for reading only (a shell script's, started with ``2>&-``), cannot be written either."""
    stream = sys.stderr
    if stream is None or getattr(stream, "closed", False):
        return None
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # no descriptor (pytest's capture, a StringIO): use it
        return _guarded(stream)
    try:
        import fcntl

        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
            return None
    except ImportError:  # pragma: no cover - Windows: no fcntl; the guard catches a failing write
        pass
    except OSError:  # EBADF: the descriptor is closed
        return None
    return _guarded(stream)


def reserve_std_fds() -> None:
    """Put ``/dev/null`` on any of the descriptors 0, 1, 2 that is closed (``2>&-``): otherwise the next
    file opened (a checkpoint's temporary file, the run's lock) would get descriptor 2, and anything
    written to stderr below Python (a C++ warning of torch) would land inside it. ``sys.stderr`` stays
    as Python set it (``None``): the lines go nowhere, as the user asked. Called when this module is
    imported; the command line may call it first thing too (it is idempotent)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, os.O_RDWR)
            except OSError:  # pragma: no cover - no /dev/null: nothing to reserve with
                return
            if null != fd:  # open() takes the lowest free descriptor: fd itself, as the lower ones are open
                os.dup2(null, fd)
                os.close(null)


reserve_std_fds()


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads for training: ``n``, or by default half the cores (at most 4):
    one on a 2-core machine, where two threads competing with any other load ran 3.6-18× slower
    than one (issue 20). Returns the number set.

    :raises ValueError: ``n`` is not a positive integer.
    """
    import os

    if n is None:
        n = max(1, min(4, (os.cpu_count() or 2) // 2))
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"--threads must be >= 1, got {n!r}")
    torch.set_num_threads(n)
    return n


# -- random-number state (bit-identical resume) ------------------------------------------------------
def rng_state() -> dict:
    """All random-number-generator states, in a form ``weights_only`` loading accepts."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.as_tensor(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "python": repr(random.getstate()),
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state((npst[0], npst[1].numpy().astype(np.uint32), int(npst[2]), int(npst[3]), float(npst[4])))
    random.setstate(ast.literal_eval(state["python"]))


# -- one registration per fit ---------------------------------------------------------------------------
@contextlib.contextmanager
def registered_quietly(story: torch.nn.Module):
    """While inside, a story whose parameters a trainer registered once skips ``pyro.module`` in
    ``Story.register_params`` (~1 ms a step) and Pyro's per-site validation (done by that
    first registration step and the story check)."""
    story.__dict__["_params_registered"] = True
    try:
        with pyro.validation_enabled(False):
            yield
    finally:
        story.__dict__.pop("_params_registered", None)
