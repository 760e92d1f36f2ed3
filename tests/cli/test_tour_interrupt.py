"""Ctrl-C during a real ``probgen tour --quick`` (a subprocess sent SIGINT once it has trained its first
checkpoint): the folder stays the tour's (its manifest says so), and a rerun into it is accepted and starts
afresh. The rerun has its sections stubbed: what is tested is the folder, not the training."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from probgen.cli import main
from probgen.report import sections
from probgen.report.folder import MANIFEST
from probgen.report.tour import SECTIONS

ROOT = Path(__file__).resolve().parents[2]


def _interrupted_tour(out: Path) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "probgen", "tour", "--quick", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            # a background job of a script inherits SIGINT ignored (and then Python keeps
                            # it so): give the child the default, as a terminal's Ctrl-C would find it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (out / "models" / "pixelcnn.pt").is_file():  # the first family is trained: mid-tour
            assert proc.poll() is None and time.monotonic() < deadline, "the tour ended before it was interrupted"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def test_a_tour_stopped_by_ctrl_c_is_rerun_into_its_own_folder(tmp_path, monkeypatch, capsys):
    out = tmp_path / "tour"
    code, err = _interrupted_tour(out)
    assert code == 130 and "interrupted" in err and "Traceback" not in err, err
    m = json.loads((out / MANIFEST).read_text())
    assert m["status"] == "interrupted" and m["data"] == "digits" and "models/pixelcnn.pt" in m["files"]
    assert not (out / "report.html").exists()

    for key in SECTIONS:  # the rerun: every section stubbed, trains nothing
        monkeypatch.setattr(sections, key.replace("-", "_"), lambda sec, t: None)
    assert main(["tour", "--quick", "--out", str(out)]) == 0, capsys.readouterr().err
    assert "held an interrupted digits tour" in capsys.readouterr().out
    m = json.loads((out / MANIFEST).read_text())
    assert m["status"] == "finished" and (out / "report.html").is_file()
    assert not (out / "models" / "pixelcnn.pt").exists()  # the interrupted run's files are gone, not mixed in
