"""A user's story runs in this process: what its code raises, or how it ends the process, as one line.

``probgen train --story FILE.py:NAME`` (and ``compare --story``) imports the user's file and trains its model
and guide with probgen's own trainers, in this process. Inside :func:`user_code`

- an exception that passes through the user's code (the story's file and what it imports from its own
  folders; not probgen, torch, Pyro, an installed package or the standard library) becomes a ``ValueError``
  of one line naming the file, the line and the exception: the command line prints it and exits 2, as for
  an import error. The original is its ``__cause__``; ``PROBGEN_DEBUG=1`` makes the command line print the
  whole traceback first;
- ``sys.exit`` and ``os._exit`` called by the story end the run with such a line instead of the process.
  ``os._exit`` cannot be caught: it is replaced, for this process only and while the story runs, by a
  function that raises. Anything else that kills the process (a signal, ``posix._exit``, a crash in native
  code) leaves the run folder as a killed run does: no manifest, nothing that looks finished.
"""
from __future__ import annotations

import os
import sysconfig
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["user_code", "user_location", "exits_refused", "StoryExit"]


class StoryExit(SystemExit):
    """``os._exit(code)`` called by a user's story while :func:`user_code` runs it."""


def _library_folders() -> tuple[str, ...]:
    import pyro
    import torch

    paths = sysconfig.get_paths()
    folders = [Path(__file__).resolve().parents[1], Path(torch.__file__).parent, Path(pyro.__file__).parent,
               *(paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib"))]  # probgen, libraries, Python
    return tuple(str(Path(f).resolve()) + os.sep for f in folders)


def user_location(e: BaseException) -> str | None:
    """``file.py:line`` of the innermost frame of ``e``'s traceback in the user's code: the story's file and what
    it imports from its own folders (not probgen, torch, Pyro, an installed package or the standard library);
    ``None`` when the failure did not pass through the user's code."""
    skip = _library_folders()
    found, tb = None, e.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if not name.startswith("<") and not str(Path(name).resolve()).startswith(skip):
            found = f"{name}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


@contextmanager
def user_code(spec: str, doing: str = "training") -> Iterator[None]:
    """Run the body (which runs the code of the story ``spec``) with the user's failures as one line.

    :param spec: the story as the user named it (``bad.py:Story``), for the message.
    :param doing: what probgen was doing (``training``), for the message.
    :raises ValueError: the story raised, or called ``sys.exit`` / ``os._exit`` (one line, original chained).
    """
    try:
        with exits_refused():
            yield
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as e:  # noqa: BLE001 - the user's own exception classes may derive from BaseException
        where = user_location(e)
        if where is None:
            raise  # probgen's own failure (or a library's, not called from the story): as it is
        from ..check import first_line

        if isinstance(e, StoryExit):
            what = f"called os._exit({e.code})"
        elif isinstance(e, SystemExit):
            what = f"called sys.exit({e.code})"
        else:
            what = f"raised {type(e).__name__}: {first_line(e)}"
        hint = "" if os.environ.get("PROBGEN_DEBUG") else "; PROBGEN_DEBUG=1 shows the traceback"
        raise ValueError(f"{spec}: your story {what} while {doing} (at {where}){hint}") from e


@contextmanager
def exits_refused() -> Iterator[None]:
    """While inside, ``os._exit(code)`` in this process raises :class:`StoryExit` (a ``SystemExit``) instead of
    ending it at once, unseen; a forked child (a data loader's worker) still exits for real."""
    real, me = os._exit, os.getpid()

    def refuse(code: int = 0) -> None:
        if os.getpid() != me:
            real(code)
        raise StoryExit(code)

    os._exit = refuse
    try:
        yield
    finally:
        os._exit = real
