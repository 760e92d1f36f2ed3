"""What the long experiment scripts (``binarized_mnist.py``, ``ptb.py``) share: their command line, a row's
learning curve and training time over every invocation (and where it was measured), and rewinding a row to
its best epoch.

Each script trains named rows within a wall-time budget, resumes from ``--work`` and merges its
rows into a table under ``--out``; the flags for that are written here once.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from probgen.recipes.config import DEVICE


class OneLineParser(argparse.ArgumentParser):
    """A bad argument is one line and exit 2, as in probgen's commands (experiments never import the CLI)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def experiment_parser(doc: str, rows: tuple[str, ...]) -> argparse.ArgumentParser:
    """The parser with ``--models`` (a comma-separated choice of ``rows``) and ``--minutes``; the
    script adds its own flags, then :func:`add_run_flags`."""
    ap = OneLineParser(description=doc.splitlines()[0])
    ap.add_argument("--models", default=",".join(rows), help=f"comma-separated rows: {', '.join(rows)}")
    ap.add_argument("--minutes", type=minutes, default=20.0,
                    help="training wall time per model and invocation (0: score the existing checkpoint)")
    return ap


def minutes(text: str) -> float:
    """argparse ``type`` of ``--minutes``: a finite number >= 0 (``nan`` compares false with everything, so
    ``nan`` and ``inf`` are refused here, not somewhere in a trainer)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def folders(ap: argparse.ArgumentParser, *, make: bool = True, **flags: str) -> list[Path]:
    """The folders of ``flags`` (``work=args.work, out=args.out``), created unless ``make`` is false (a check
    before the data is read); a path that exists and is not a folder (a file, ``/dev/null``) or cannot be
    made is one line and exit 2."""
    paths = {flag: Path(path) for flag, path in flags.items()}
    for flag, path in paths.items():  # all checked before any is made
        if path.exists() and not path.is_dir():
            ap.error(f"--{flag} {path}: exists and is not a folder")
        above = next((a for a in path.absolute().parents if a.exists()), None)
        if above is not None and not above.is_dir():
            ap.error(f"--{flag} {path}: {above} is not a folder")
    for flag, path in paths.items() if make else ():
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # read-only, no permission, a part of the path is a file
            ap.error(f"--{flag} {path}: cannot make this folder ({e.strerror or e})")
    return list(paths.values())


def add_run_flags(ap: argparse.ArgumentParser, *, work: str, out: str, outputs: str, quick: str) -> None:
    """Where and how a run happens: device, data, seed, the resume folder, the results folder."""
    ap.add_argument("--device", default=DEVICE, type=device_name,
                    help="auto (CUDA when available, else the CPU), cpu, cuda or cuda:N (default: auto)")
    ap.add_argument("--data-dir", default=None, help="default: $PROBGEN_DATA_DIR")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=None, help=f"checkpoints and resume files (default: {work}; "
                                                   f"with --quick: {work}-quick)")
    ap.add_argument("--out", default=None, help=f"{outputs} (default: {out}; with --quick: {work}-quick/results, "
                                                "so a smoke run never replaces the committed results)")
    ap.add_argument("--quick", action="store_true", help=quick)
    ap.add_argument("--quiet", action="store_true")
    ap.set_defaults(_folders=(work, out))


def settle_folders(args: argparse.Namespace) -> argparse.Namespace:
    """Fill ``--work``/``--out`` left out: the script's defaults, or for ``--quick`` folders of its own."""
    work, out = args._folders
    if args.work is None:
        args.work = f"{work}-quick" if args.quick else work
    if args.out is None:
        args.out = f"{work}-quick/results" if args.quick else out
    return args


def device_name(text: str) -> str:
    """argparse ``type`` of every script's ``--device``: the device it resolves to (``auto``: CUDA when
    available), as a name the results record (``cuda``, ``cpu``); one line and exit 2 when it is none."""
    from probgen.recipes.config import resolve_device

    try:
        return str(resolve_device(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def need_checkpoints(ap: argparse.ArgumentParser, minutes: float, work: Path, names: list[str]) -> None:
    """``--minutes 0`` only scores: every row's checkpoint ``WORK/<name>.pt`` must be there (exit 2 naming the
    missing ones, before the data is loaded)."""
    missing = [str(work / f"{n}.pt") for n in names if not (work / f"{n}.pt").is_file()] if minutes == 0 else []
    if missing:
        ap.error(f"--minutes 0 scores existing checkpoints, and there is none at {', '.join(missing)} "
                 "(train with --minutes > 0 first, or point --work at that run)")


def chosen_rows(ap: argparse.ArgumentParser, args: argparse.Namespace, rows: tuple[str, ...]) -> list[str]:
    """``--models`` as a list, each checked against ``rows`` (exit 2 on error; ``--minutes`` is checked by its
    type, :func:`minutes`)."""
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    for name in names:
        if name not in rows:
            ap.error(f"unknown model {name!r}; choose from {', '.join(rows)}")
    return names


def rewind_to_best(path: Path) -> dict | None:
    """``--rewind``: make ``<path>``'s resume file continue from its best-validation epoch instead of its
    last (the weights, history and early-stopping state up to that epoch, and a fresh Adam), e.g. before
    an lr decay once a row overfits. The old resume file is kept beside it (``.before-rewind``, then
    ``.before-rewind.2``, ...) and the discarded epochs are appended to ``<path stem>.rewind.json`` so
    their cost is still counted.

    :return: ``{"best_epoch", "discarded_epochs", "discarded_seconds"}``, or ``None`` when there is no resume
        file or its last epoch is its best.
    """
    import shutil

    from probgen.io import last_path, load_checkpoint, write_json
    from probgen.models import load

    last = last_path(path)
    if not last.is_file():
        return None
    p = load_checkpoint(last)
    tr = dict(p.get("trainer") or {})
    hist, best = tr.get("history") or [], tr.get("best_epoch")
    if best is None or "best_state_dict" not in tr or best + 1 >= len(hist):
        return None
    kept, dropped = hist[: best + 1], hist[best + 1:]
    # a record's "seconds" restarts at each invocation: the dropped epochs' own durations
    secs = [r.get("seconds", 0.0) for r in hist]
    cost = sum(s - secs[i - 1] if s >= secs[i - 1] else s for i, s in enumerate(secs) if i > best)
    info = {"best_epoch": best + 1, "discarded_epochs": len(dropped), "discarded_seconds": cost}
    write_json(path.with_suffix(".rewind.json"), rewinds(path) + [info])
    keep, n = last.with_name(last.name + ".before-rewind"), 1
    while keep.exists():  # an earlier rewind's copy stays too
        n += 1
        keep = last.with_name(f"{last.name}.before-rewind.{n}")
    shutil.copy2(last, keep)
    tr.update({"epoch": best, "history": kept, "bad_epochs": 0,
               "steps": int(tr.get("steps", 0) * len(kept) / len(hist))})
    optimizer = {"state": {}, "param_groups": (p.get("optimizer") or {}).get("param_groups", [])}
    model = load(last)  # written back through the one writer (Story.save), its best weights in place
    model.load_state_dict(tr["best_state_dict"])
    model.save(last, optimizer=optimizer, trainer=tr, data=p.get("data"), extra=p.get("extra"))
    return info


def rewinds(path: Path) -> list[dict]:
    """What :func:`rewind_to_best` did to ``path``'s run, oldest first (empty when never rewound)."""
    import json

    log = path.with_suffix(".rewind.json")
    return json.loads(log.read_text()) if log.is_file() else []


def rewound_seconds(path: Path) -> float:
    """Training seconds discarded by :func:`rewind_to_best` for ``path`` (0 when never rewound)."""
    return sum(r["discarded_seconds"] for r in rewinds(path))


# -- learning curves and training time over every invocation ---------------------------------------
def history_of(path: Path) -> list[dict]:
    """A row's learning curve: its resume file's history (SVI, the GAN), else its checkpoint's (EM); the
    numbers of each epoch's record only."""
    from probgen.io import last_path, load_checkpoint

    for p in (last_path(path), path):
        if p.is_file():
            payload = load_checkpoint(p)
            hist = (payload.get("trainer") or {}).get("history") or (payload.get("extra") or {}).get("history")
            if hist:
                return [{k: v for k, v in r.items() if isinstance(v, (int, float))} for r in hist]
    return []


def elapsed(history: list[dict]) -> list[float]:
    """Training wall seconds at the end of each epoch, over every invocation (a record's ``seconds``
    restarts at each resume)."""
    total, prev, out = 0.0, 0.0, []
    for r in history:
        s = float(r.get("seconds", 0.0))
        total += s - prev if s >= prev else s
        prev = s
        out.append(total)
    return out


def train_seconds(history: list[dict]) -> float:
    """Training wall seconds over every invocation."""
    return (elapsed(history) or [0.0])[-1]


def measured_on(row: dict) -> str:
    """Where a row's times were measured, as its table says it: ``cuda:0``, or ``cpu×N`` for N torch threads
    (the row's ``device`` and ``torch_threads``)."""
    device = str(row.get("device") or "?")
    return device if device.startswith("cuda") else f"{device}×{row.get('torch_threads') or '?'}"


def wall_hours(row: dict) -> str:
    """The table cell of a row's training time: wall hours and where, ``0.67 (cpu×1)``; ``—`` when untrained."""
    hours = row.get("train_wall_hours")
    return "—" if hours is None else f"{hours:.2f} ({measured_on(row)})"


#: the footnote of the tables' time column
WALL_HOURS = ("train wall-h = training wall-clock hours over every invocation, on the device in brackets "
              "(cpu×N: N torch threads; a shared, niced machine unless the row says otherwise)")
