"""The tour's folder: the tour owns its ``--out`` by a manifest of what it wrote there.

``OUT/tour.json`` is written before the first section and again after every step (so a tour stopped by
Ctrl-C leaves it too): the data set, the options, the status (``running``, ``interrupted``, ``failed``,
``finished``) and every file the tour wrote with its size. A new tour

- into a folder whose manifest names **the same data set** starts again there: the previous tour's files
  (those its manifest lists, nothing else) are removed first, so nothing of it is mixed into the new page;
- into a folder of **another data set** is refused in one line naming both, unless ``--force`` (then the
  previous tour's files are removed the same way);
- into any other non-empty folder is refused by :func:`probgen.runs.run_folder` (``fresh``).

A folder written by a tour older than this manifest is recognised by its run manifest
(``tour.manifest.json``) and its ``report.json``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from .._version import __version__
from ..io import write_json

__all__ = ["MANIFEST", "TourFolder", "previous_tour", "check_folder", "remove_previous"]

#: the tour's own manifest in its folder
MANIFEST = "tour.json"
#: files of the folder that are never a previous tour's output to remove (the run folder's own)
_KEEP = {MANIFEST, "tour.manifest.json", ".tour.lock"}


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def previous_tour(out: Path) -> dict | None:
    """What an earlier tour left in ``out``: ``{"data": NAME or None, "status", "files": {path: size}}``, or
    ``None`` when no tour wrote there. ``data`` is ``None`` when the manifest is unreadable, or (``"legacy"``)
    when a tour older than :data:`MANIFEST` left no ``report.json``."""
    mine = out / MANIFEST
    if mine.is_file():
        m = _read_json(mine) or {}
        files = m.get("files") if isinstance(m.get("files"), dict) else {}
        return {"data": m.get("data") if isinstance(m.get("data"), str) else None,
                "status": m.get("status", "?"), "files": files}
    legacy = out / "tour.manifest.json"  # a tour from before tour.json: the run manifest and report.json
    if legacy.is_file():
        m, report = _read_json(legacy) or {}, _read_json(out / "report.json") or {}
        name = (report.get("data") or {}).get("name") if isinstance(report.get("data"), dict) else None
        files = m.get("files") if isinstance(m.get("files"), dict) else {}
        return {"data": name if isinstance(name, str) else None, "status": "finished", "files": files,
                "legacy": True}
    return None


def check_folder(out: Path, data: str, *, force: bool) -> dict | None:
    """May a tour of ``data`` write into ``out``? Returns the previous tour there (its files are the new
    tour's to remove), or ``None``.

    :raises ValueError: ``out`` is not a folder, or holds a tour of another data set (or one whose manifest
        cannot be read) and ``force`` is not given.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    prev = previous_tour(out) if out.is_dir() else None
    if prev is None or force or prev["data"] == data or (prev["data"] is None and prev.get("legacy")):
        return prev  # (an older tour that did not say its data set: its files are replaced, as they were then)
    if prev["data"] is None:
        raise ValueError(f"--out {out}: holds a tour whose manifest ({MANIFEST}) cannot be read; choose another "
                         "--out, or pass --force to replace that tour")
    raise ValueError(f"--out {out}: holds the tour of {prev['data']}, not of {data}; choose another --out for "
                     f"the {data} tour, or pass --force to replace the {prev['data']} tour")


def remove_previous(out: Path, prev: dict | None) -> list[str]:
    """Remove the files ``prev`` (:func:`previous_tour`) lists, and the folders that leaves empty; a listed
    path outside ``out``, a symbolic link or anything not a regular file is left alone."""
    if not prev:
        return []
    root, removed = out.resolve(), []
    for rel in prev.get("files") or {}:
        path = out / rel
        if (not isinstance(rel, str) or rel in _KEEP or os.path.isabs(rel)
                or not path.resolve().is_relative_to(root) or path.is_symlink() or not path.is_file()):
            continue
        path.unlink()
        removed.append(rel)
    for folder in sorted({(out / r).parent for r in removed}, key=lambda p: len(p.parts), reverse=True):
        while folder != out and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent
    return removed


class TourFolder:
    """The manifest of the tour writing into ``out``: :meth:`update` after every step, :meth:`finish` last."""

    def __init__(self, out: Path, cfg, data: str):
        self.out, self.data, self.started = out, data, time.time()
        self.options = dataclasses.asdict(cfg)
        self.status = "running"
        self._before = self._scan()  # what was there already (a user's files under --force): never listed
        self.update()

    def _scan(self) -> dict[str, tuple[int, int, int]]:
        """Regular files of the folder -> (inode, mtime in ns, size); the run folder's own files left out."""
        found = {}
        for p in sorted(self.out.rglob("*")):
            rel = str(p.relative_to(self.out))
            if rel not in _KEEP and not p.is_symlink() and p.is_file():
                st = p.stat()
                found[rel] = (st.st_ino, st.st_mtime_ns, st.st_size)
        return found

    def files(self) -> dict[str, int]:
        """This tour's files -> their sizes: those written (or rewritten: the atomic writer makes a new file)
        since it started."""
        return {rel: ident[2] for rel, ident in self._scan().items() if self._before.get(rel) != ident}

    def update(self, status: str | None = None) -> None:
        """Write ``OUT/tour.json`` now (atomically): the status and the files written so far."""
        self.status = status or self.status
        write_json(self.out / MANIFEST, {"command": "tour", "probgen": __version__, "data": self.data,
                                         "options": self.options, "status": self.status, "started": self.started,
                                         "updated": time.time(), "files": self.files()})

    def mark(self, status: str) -> None:
        """:meth:`update` while an exception is on its way out: a full disk must not replace that exception."""
        try:
            self.update(status)
        except OSError:
            pass

    def finish(self) -> None:
        self.update("finished")
