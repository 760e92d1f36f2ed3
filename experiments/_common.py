"""What the long experiment scripts (``binarized_mnist.py``, ``ptb.py``) share: their command line.

Each script trains named rows within a wall-time budget, resumes from ``--work`` and merges its
rows into a table under ``--out``; the flags for that are written here once.
"""
from __future__ import annotations

import argparse


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
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data-dir", default=None, help="default: $PROBGEN_DATA_DIR")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=work, help="checkpoints and resume files")
    ap.add_argument("--out", default=out, help=outputs)
    ap.add_argument("--quick", action="store_true", help=quick)
    ap.add_argument("--quiet", action="store_true")


def chosen_rows(ap: argparse.ArgumentParser, args: argparse.Namespace, rows: tuple[str, ...]) -> list[str]:
    """``--models`` as a list, each checked against ``rows``; ``--minutes`` checked too (exit 2 on error)."""
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    for name in names:
        if name not in rows:
            ap.error(f"unknown model {name!r}; choose from {', '.join(rows)}")
    if args.minutes < 0:
        ap.error("--minutes must be >= 0")
    return names

