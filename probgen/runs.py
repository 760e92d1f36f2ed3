"""Run folders: one writer at a time, and a manifest that says a run finished.

A run (``probgen train vae``, ``probgen compare``, the tour) writes into ``--out`` inside
:func:`run_folder`, which

- takes the lock ``OUT/.<name>.lock`` (created exclusively, holding the writer's pid and host): a
  second run on the same folder refuses with one line instead of both reporting success while one
  silently loses; a lock left by a killed run (its pid gone, same host) is taken over;
- refuses a folder holding a finished run of the same name (``OUT/<name>.manifest.json``) unless
  the caller resumes it or forces a new one; the old manifest is removed before anything is written, so
  a run killed half-way never leaves a folder that claims to be finished while mixing two runs;
- writes the manifest last, through the atomic writer: the files of the run with their sizes;
- refuses to replace a file the run writes (``outputs``) that no run of this name left in the folder (a copied
  checkpoint, one written by an earlier version) unless forced or resumed, refuses ``--resume`` when the file it
  would continue from (``resume_from``) is missing, and removes the results of the run it replaces (``stale``)
  before anything new is written, so that a run killed half-way never leaves old results beside new files.

Commands that write named files (``sample``, ``traverse``, ``problems``, ...) resolve ``--out`` with
:func:`output_file` (a file, or a folder that receives the command's own file name; by default
``runs/<command>/``) and claim their files with :func:`claim_outputs`: an existing file is replaced
only with ``--force``, whether the recipe is called from the command line or from Python. Inside a
folder held by :func:`run_folder` (the tour), the run folder's own policy has already decided.
"""
from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Iterable, Iterator

from .io import write_json

__all__ = ["run_folder", "lock_path", "manifest_path", "unfinished_path", "read_manifest", "claim_outputs",
           "output_file", "inside_held"]

#: run folders this process holds (:func:`run_folder`): their files are the run's to replace
_HELD: ContextVar[tuple[Path, ...]] = ContextVar("probgen_held_run_folders", default=())


def lock_path(out: str | os.PathLike, name: str = "run") -> Path:
    """``OUT/.<name>.lock``: present while a run writes."""
    return Path(out) / f".{name}.lock"


def manifest_path(out: str | os.PathLike, name: str = "run") -> Path:
    """``OUT/<name>.manifest.json``: written last by a run that finished."""
    return Path(out) / f"{name}.manifest.json"


def unfinished_path(out: str | os.PathLike, name: str = "run") -> Path:
    """``OUT/.<name>.unfinished``: present from a run's start until its manifest is written, so that the files
    of a run that failed or was interrupted are still known as this run's (a rerun may replace them)."""
    return Path(out) / f".{name}.unfinished"


def read_manifest(out: str | os.PathLike, name: str = "run") -> dict | None:
    """The manifest of a finished run, or ``None``."""
    import json

    path = manifest_path(out, name)
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return {}  # damaged: still a finished run's marker


def claim_outputs(paths, *, force: bool = False) -> None:
    """The output policy of every command that writes named files: an existing file is replaced only
    with ``force`` (``--force``); a path that exists and is not a regular file is never ours to replace.

    :param paths: the files the command is about to write (``None`` entries skipped).
    :param force: replace existing files. Files inside a folder this process holds with :func:`run_folder`
        count as forced: that folder's policy (fresh, resume, force) has already been applied.
    :raises ValueError: one line naming the first path that exists.
    """
    from .io import check_output

    for path in paths:
        if path is None or not str(path):
            continue
        check_output(path)  # symlinks, FIFOs, devices, folders: refused even with force
        if os.path.lexists(path) and not (force or inside_held(path)):
            raise ValueError(f"{path}: exists; pass --force to replace it, or choose another --out")


def inside_held(path: str | os.PathLike) -> bool:
    """``path`` lies in a run folder this process holds (:func:`run_folder`, e.g. the tour's): that folder's
    policy (fresh, resume, force) has already decided about the files in it."""
    return any(Path(path).resolve().is_relative_to(folder) for folder in _HELD.get())


def output_file(out: str | os.PathLike, name: str) -> Path:
    """Where a command that writes file ``name`` (``traverse.png``) writes it, from its ``--out``.

    ``--out`` ending in ``name``'s suffix (``my.png``) is the file itself; any other path without a
    suffix, or an existing folder, is a folder that receives ``name`` (``runs/traverse`` ->
    ``runs/traverse/traverse.png``).

    :raises ValueError: ``--out`` has another suffix (``x.jpg`` for a PNG command).
    """
    path, suffix = Path(out), Path(name).suffix
    if path.is_dir() or str(out).endswith(("/", os.sep)) or not path.suffix:
        return path / name
    if path.suffix.lower() != suffix.lower():
        raise ValueError(f"--out {out}: must be a {suffix} file or a folder (it receives {name})")
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _take_lock(lock: Path) -> None:
    me = f"{os.getpid()} {socket.gethostname()}\n"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid_text, _, host = lock.read_text(encoding="utf-8").strip().partition(" ")
                pid = int(pid_text)
            except (OSError, ValueError):
                pid, host = -1, ""
            if host == socket.gethostname() and pid > 0 and not _alive(pid):
                lock.unlink(missing_ok=True)  # left by a killed run: take it over
                continue
            who = f"pid {pid} on {host}" if pid > 0 else "unknown"
            raise ValueError(f"{lock.parent}: another probgen run ({who}) is writing here; wait for it to "
                             f"finish or choose another --out (if no run is alive, delete {lock})") from None
        with os.fdopen(fd, "w") as f:
            f.write(me)
        return


@contextmanager
def run_folder(out: str | os.PathLike, *, name: str = "run", command: str = "", resume: bool = False,
               force: bool = False, fresh: bool = False, outputs: Iterable[str | os.PathLike] = (),
               resume_from: str | os.PathLike | None = None,
               stale: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Hold ``out`` for one run: lock, refuse a finished run, write the manifest last.

    :param out: the run folder (created).
    :param name: the run's name in the folder (``vae`` for ``train vae``): two runs of different names
        may share a folder, one after the other.
    :param command: recorded in the manifest.
    :param resume: continue a finished run (its manifest is replaced at the end).
    :param force: replace a finished run.
    :param fresh: the folder must be empty, or hold a run of this name (the tour: never mix a user's files).
    :param outputs: files the run writes (``OUT/vae.pt``): one that exists while the folder holds no run of this
        name (no manifest, no lock left by a killed run, no :func:`unfinished_path` left by a failed one) is
        someone else's and is replaced only with ``force`` or ``resume``.
    :param resume_from: the file a resumed run continues from (``OUT/vae.last.pt``): with ``resume`` it must
        exist (a resume without one would silently train afresh and replace the finished checkpoint).
    :param stale: results of the run being replaced (``results.json``): removed once the lock is held, so a run
        killed before it writes them anew leaves none of the old ones beside its new files.
    :raises ValueError: the folder is a file, is locked by a live run, holds a finished run and neither
        ``resume`` nor ``force`` is given, holds an output no run of this name wrote, ``resume_from`` is
        missing, or (``fresh``) holds files of something else.
    """
    out = Path(out)
    if out.is_symlink() and not out.is_dir():
        raise ValueError(f"--out {out}: is a symbolic link to no folder; choose another --out")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    done = read_manifest(out, name)
    # finished, killed half-way (its lock is left), or failed / interrupted (its unfinished mark is left)
    ours = done is not None or lock_path(out, name).exists() or unfinished_path(out, name).exists()
    if fresh and not ours and not force and out.is_dir() and any(out.iterdir()):
        raise ValueError(f"--out {out}: folder is not empty and was not made by probgen {command or name}; "
                         "choose an empty or new folder (or pass --force to write into it)")
    if resume and resume_from is not None and not Path(resume_from).is_file():
        afresh = " with --force (it replaces the finished run)" if done is not None else ""
        raise ValueError(f"--resume: {resume_from} does not exist, so there is nothing to continue; leave out "
                         f"--resume to train afresh{afresh}")
    foreign = [p for p in map(Path, outputs) if os.path.lexists(p)] if not (ours or force or resume) else []
    if foreign:  # a copied file, or one written before run folders had manifests: not ours to replace
        raise ValueError(f"{foreign[0]}: exists, and no probgen {command or name} run in {out} wrote it (no "
                         f"{manifest_path(out, name).name}); pass --force to replace it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    lock = lock_path(out, name)
    _take_lock(lock)
    held = _HELD.set(_HELD.get() + (out.resolve(),))
    try:
        if done is not None:
            if not (resume or force):
                raise ValueError(f"--out {out}: holds a finished {name} run ({manifest_path(out, name).name}); "
                                 "pass --resume to continue it or --force to replace it, or choose another --out")
            manifest_path(out, name).unlink(missing_ok=True)  # unfinished until the new manifest exists
        unfinished_path(out, name).write_text(f"{command or name}\n", encoding="utf-8")
        for path in stale:  # the replaced run's results: never left beside the new run's files
            Path(path).unlink(missing_ok=True)
        started = time.time()
        yield out
        files = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*"))
                 if p.is_file() and not p.name.startswith(".") and p.stat().st_mtime >= started - 1}
        from ._version import __version__

        write_json(manifest_path(out, name), {"name": name, "command": command, "probgen": __version__,
                                              "started": started, "finished": time.time(), "files": files})
        unfinished_path(out, name).unlink(missing_ok=True)
    finally:
        _HELD.reset(held)
        try:
            lock.unlink()
        except OSError:
            pass
