"""probgen.runs.run_folder (issue 30): a resume without its resume file, a file no run of this name wrote, and
the results of the run being replaced (removed before anything new is written)."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from probgen.runs import lock_path, manifest_path, run_folder, unfinished_path


def _finished(out, name="vae", files=("vae.pt",)):
    with run_folder(out, name=name):
        for f in files:
            (out / f).write_text("old run")


def test_resume_without_the_resume_file_is_refused_before_anything_changes(tmp_path):
    _finished(tmp_path)
    with pytest.raises(ValueError, match=r"--resume: .*vae\.last\.pt does not exist.*--force"):
        with run_folder(tmp_path, name="vae", resume=True, resume_from=tmp_path / "vae.last.pt"):
            (tmp_path / "vae.pt").write_text("new")  # never reached
    assert (tmp_path / "vae.pt").read_text() == "old run" and manifest_path(tmp_path, "vae").is_file()
    (tmp_path / "vae.last.pt").write_text("state")
    with run_folder(tmp_path, name="vae", resume=True, resume_from=tmp_path / "vae.last.pt"):
        pass  # with it, the finished run is continued


def test_an_output_no_run_of_this_name_wrote_is_replaced_only_with_force_or_resume(tmp_path):
    (tmp_path / "vae.pt").write_text("copied here")  # a copied checkpoint, or one from before manifests
    with pytest.raises(ValueError, match=r"vae\.pt: exists, and no probgen train vae run .*--force"):
        with run_folder(tmp_path, name="vae", command="train vae", outputs=[tmp_path / "vae.pt"]):
            pass
    assert (tmp_path / "vae.pt").read_text() == "copied here" and not lock_path(tmp_path, "vae").exists()
    for kw in ({"force": True}, {"resume": True}):
        with run_folder(tmp_path, name="vae", outputs=[tmp_path / "vae.pt"], **kw):
            pass


def test_a_killed_runs_files_are_its_own(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "vae.pt").write_text("best so far")  # a run killed half-way: its lock is left
    lock_path(tmp_path, "vae").write_text(f"{dead.pid} {socket.gethostname()}\n")
    with run_folder(tmp_path, name="vae", outputs=[tmp_path / "vae.pt"]):
        pass
    assert manifest_path(tmp_path, "vae").is_file()


def test_an_interrupted_runs_files_are_its_own_too(tmp_path):
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C: the lock is freed, the run is marked unfinished
        with run_folder(tmp_path, name="vae", outputs=[tmp_path / "vae.pt"]):
            (tmp_path / "vae.pt").write_text("best so far")
            raise KeyboardInterrupt
    assert not lock_path(tmp_path, "vae").exists() and not manifest_path(tmp_path, "vae").exists()
    with run_folder(tmp_path, name="vae", outputs=[tmp_path / "vae.pt"]):  # a rerun replaces them
        pass
    assert manifest_path(tmp_path, "vae").is_file() and not unfinished_path(tmp_path, "vae").exists()


def test_the_replaced_runs_results_go_first_and_only_when_the_run_is_allowed(tmp_path):
    _finished(tmp_path, "compare", ("results.json", "gmm.pt"))
    stale = [tmp_path / "results.json"]
    with pytest.raises(ValueError, match="finished compare run"):
        with run_folder(tmp_path, name="compare", outputs=stale, stale=stale):
            pass
    assert (tmp_path / "results.json").is_file()  # refused: nothing removed
    with run_folder(tmp_path, name="compare", force=True, outputs=stale, stale=stale):
        assert not (tmp_path / "results.json").exists()  # before the new run writes anything
        assert (tmp_path / "gmm.pt").is_file()  # a checkpoint is replaced by its own writer, not removed
