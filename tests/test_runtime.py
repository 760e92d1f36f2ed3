"""The progress bar and the log line survive a missing or closed stderr (issue 30, item 3).

``probgen train ... 2>&-`` starts Python with descriptor 2 closed (``sys.stderr`` is ``None``); started
through a shell script (pyenv's shim) descriptor 2 is that script, open for reading only. Both ended in
exit 1 or 2 with no word. The subprocess tests close the stream for real.
"""
from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probgen import runtime

ROOT = Path(__file__).resolve().parents[1]


def _closed(fd: int):
    def pre():
        os.close(fd)
    return pre


def _read_only(fd: int):
    def pre():  # what `2>&-` leaves behind a shell script that runs python: fd 2 is the script, read-only
        os.close(fd)
        os.open(os.devnull, os.O_RDONLY)
    return pre


def _run(args, preexec, cwd, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, preexec_fn=preexec, stdout=subprocess.PIPE,
                          text=True, timeout=300, **kw)


@pytest.mark.parametrize("stderr", ["closed", "read-only"])
def test_train_with_stderr_closed_trains_and_exits_0(stderr, tmp_path):
    pre = _closed(2) if stderr == "closed" else _read_only(2)
    out = _run(["-m", "probgen", "train", "--out", "r", "vae", "--data", "digits", "--epochs", "2"], pre, tmp_path)
    assert out.returncode == 0, out.stdout
    assert "trained vae on digits" in out.stdout
    assert {"vae.pt", "vae.last.pt"} <= {p.name for p in (tmp_path / "r").iterdir()}


def test_a_closed_std_descriptor_is_never_handed_to_a_file(tmp_path):
    """With descriptor 2 closed the next file opened would get it, and a C-level write to stderr (a torch
    warning) would land inside a checkpoint: importing probgen puts /dev/null there first."""
    code = ("import os, sys, tempfile, probgen.runtime; fd, _ = tempfile.mkstemp(dir=sys.argv[1]); "
            "print(fd, sys.stderr is None, os.readlink('/proc/self/fd/2'))")
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("no /proc here")
    out = _run(["-c", code, str(tmp_path)], _closed(2), tmp_path)
    fd, none, target = out.stdout.split()
    assert int(fd) > 2 and none == "True" and target == os.devnull


def test_log_and_bar_without_stderr(monkeypatch):
    monkeypatch.setattr(sys, "stderr", None)
    runtime.log("nowhere to go")  # no AttributeError
    assert list(runtime.progress_bar(range(3), desc="t")) == [0, 1, 2]


def test_log_and_bar_on_a_read_only_stderr(monkeypatch):
    with open(os.devnull) as ro:  # a real descriptor, open for reading only
        monkeypatch.setattr(sys, "stderr", ro)
        runtime.log("nowhere to go")
        bar = runtime.progress_bar(range(2), desc="t")
        assert type(bar).__name__ == "_Quiet" and list(bar) == [0, 1]


class _Failing:
    """A terminal whose reader leaves after ``ok`` writes: every later write (and flush) fails, as a closed
    pipe does."""

    def __init__(self, ok: int):
        self.ok, self.writes = ok, 0

    def write(self, s):
        self.writes += 1
        if self.writes > self.ok:
            raise OSError(errno.EPIPE, "Broken pipe")
        return len(s)

    def flush(self):
        if self.writes > self.ok:
            raise OSError(errno.EPIPE, "Broken pipe")

    def isatty(self):
        return True  # the bar is drawn


def test_a_stream_that_fails_mid_run_goes_quiet(monkeypatch):
    stream = _Failing(ok=2)
    monkeypatch.setattr(sys, "stderr", stream)
    bar = runtime.progress_bar(range(50), desc="t", unit="step")
    assert type(bar).__name__ != "_Quiet"  # drawn: the failure comes while it runs
    for _ in bar:
        runtime.log("a line")
    bar.close()
    runtime.log("after")
    assert stream.writes == 3  # two drawn, one failed, then silence: no write per step after the failure
