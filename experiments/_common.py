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


def experiment_parser(doc: str, rows: tuple[str, ...]) -> argparse.ArgumentParser:
    """The parser with ``--models`` (a comma-separated choice of ``rows``) and ``--minutes``; the
    script adds its own flags, then :func:`add_run_flags`."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--models", default=",".join(rows), help=f"comma-separated rows: {', '.join(rows)}")
    ap.add_argument("--minutes", type=float, default=20.0,
                    help="training wall time per model and invocation (0: score the existing checkpoint)")
    return ap


def add_run_flags(ap: argparse.ArgumentParser, *, work: str, out: str, outputs: str, quick: str) -> None:
    """Where and how a run happens: device, data, seed, the resume folder, the results folder."""
    ap.add_argument("--device", default=DEVICE, type=device_name,
                    help="auto (CUDA when available, else the CPU), cpu, cuda or cuda:N (default: auto)")
    ap.add_argument("--data-dir", default=None, help="default: $PROBGEN_DATA_DIR")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=work, help="checkpoints and resume files")
    ap.add_argument("--out", default=out, help=outputs)
    ap.add_argument("--quick", action="store_true", help=quick)
    ap.add_argument("--quiet", action="store_true")


def device_name(text: str) -> str:
    """argparse ``type`` of every script's ``--device``: the device it resolves to (``auto``: CUDA when
    available), as a name the results record (``cuda``, ``cpu``); one line and exit 2 when it is none."""
    from probgen.recipes.config import resolve_device

    try:
        return str(resolve_device(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def chosen_rows(ap: argparse.ArgumentParser, args: argparse.Namespace, rows: tuple[str, ...]) -> list[str]:
    """``--models`` as a list, each checked against ``rows``; ``--minutes`` checked too (exit 2 on error)."""
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    for name in names:
        if name not in rows:
            ap.error(f"unknown model {name!r}; choose from {', '.join(rows)}")
    if args.minutes < 0:
        ap.error("--minutes must be >= 0")
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
