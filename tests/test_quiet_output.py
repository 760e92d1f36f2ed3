"""Quiet output stays quiet (issue 20): the tour prints no Python warning line, and probgen
filters warnings in one place only (``probgen/_warnings.py``)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from probgen._warnings import THIRD_PARTY, quiet

ROOT = Path(__file__).resolve().parents[1]
WARNING_LINE = re.compile(r"\w*Warning\b")


@pytest.mark.slow
def test_quick_tour_prints_no_warning(tmp_path):
    """``probgen tour --quick`` in the normal environment (no ``-W``, no PYTHONWARNINGS): no
    ``...Warning`` line on stderr or stdout (about 35 s on 2 shared cores)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.run([sys.executable, "-m", "probgen", "tour", "--quick", "--quiet", "--out", str(tmp_path / "t")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if WARNING_LINE.search(ln)]
    assert not lines, "\n".join(lines)


def test_filters_live_in_one_place():
    """No ``warnings.filterwarnings`` / ``simplefilter`` in probgen/ or experiments/ outside _warnings.py."""
    bad = []
    for folder in ("probgen", "experiments"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "_warnings.py":
                continue
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"\b(filterwarnings|simplefilter)\s*\(", line):
                    bad.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_quiet_filters_only_the_named_third_party_warnings():
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet("jit-trace", "arviz-pandas"):
            warnings.warn("`torch.jit.trace` is deprecated. Please switch to `torch.compile`.", FutureWarning)
            warnings.warn("The inplace keyword in DataFrame.sort_values is deprecated", DeprecationWarning)
            warnings.warn("something of our own", UserWarning)
    assert [str(w.message) for w in seen] == ["something of our own"]
    assert all(why for why, _, _ in THIRD_PARTY.values())
    with pytest.raises(ValueError, match="unknown warning filter"):
        with quiet("everything"):
            pass
