"""The tour owns its folder by a manifest (``OUT/tour.json``, :mod:`probgen.report.folder`) and checks every
input before the first section (:func:`probgen.report.tour.check_inputs`). Sections are stubbed: no model
trains here, except the one tiny save that stands for a stale checkpoint.

(A real interrupted tour, Ctrl-C in a subprocess, is in tests/cli/test_tour_interrupt.py.)"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from probgen.cli import main
from probgen.report import sections
from probgen.report.folder import MANIFEST
from probgen.report.tour import FACE_SECTIONS, SECTIONS, TourConfig, tour


def _config(out, **kw):
    from probgen.recipes.config import RunConfig

    force, seed = kw.pop("force", False), kw.pop("seed", 0)
    return TourConfig(quick=True, run=RunConfig(out=str(out), quiet=True, force=force, seed=seed), **kw)


def _stub(monkeypatch, seen: dict | None = None):
    """Every section writes one small file in its folder; ``seen`` gets, per section, which of the
    families' checkpoints the tour would pick up (``Tour.has``)."""
    def write(sec, t):
        (t.out / sec.key / "part.txt").write_text(f"{sec.key} of {t.cfg.data}\n")
        if seen is not None:
            seen[sec.key] = [n for n in ("pixelcnn", "gan", "vae") if t.has(n)]

    for key in {**SECTIONS, **FACE_SECTIONS}:
        monkeypatch.setattr(sections, key.replace("-", "_"), write)


def _faces(tmp_path) -> str:
    """An unlabelled grey-level image set of the user's own (the faces page), as an .npz."""
    path = tmp_path.resolve() / "faces.npz"  # resolved: the name the tour records for a user's file
    np.savez(path, x=np.random.default_rng(0).random((40, 6, 5)).astype(np.float32))
    return str(path)


def test_another_data_set_is_refused_naming_both_and_replaced_only_with_force(tmp_path, monkeypatch):
    out, seen = tmp_path / "tour", {}
    _stub(monkeypatch, seen)
    tour(_config(out))
    m = json.loads((out / MANIFEST).read_text())
    assert m["data"] == "digits" and m["status"] == "finished" and m["options"]["quick"] is True
    assert {"report.html", "report.json", "pixels/part.txt", "tour.log"} <= set(m["files"])
    assert m["files"]["report.html"] == (out / "report.html").stat().st_size
    page = (out / "report.html").read_bytes()

    faces = _faces(tmp_path)
    with pytest.raises(ValueError) as e:
        tour(_config(out, data=faces))
    msg = str(e.value)
    assert "digits" in msg and faces in msg and "--out" in msg and "--force" in msg and "\n" not in msg
    assert (out / "report.html").read_bytes() == page and (out / "pixels" / "part.txt").is_file()  # nothing lost

    # the README's command, no --out: one line, exit 2, no traceback
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    os.rename(out, tmp_path / "runs" / "tour")
    assert main(["tour", "--quick", "--quiet", "--data", faces]) == 2

    # --force replaces the digits tour: its files go, nothing of it is picked up
    from probgen.models import VAE

    out = tmp_path / "runs" / "tour"
    VAE(30, z_dim=2, hidden=[4], x_shape=[6, 5]).save(out / "models" / "gan.pt")  # a file no manifest lists
    tour(_config(out, data=faces, force=True))
    m = json.loads((out / MANIFEST).read_text())
    assert m["data"] == faces and list(json.loads((out / "report.json").read_text())["sections"]) == list(FACE_SECTIONS)
    assert not (out / "pixels").exists() and (out / "faces" / "part.txt").is_file()
    assert (out / "models" / "gan.pt").is_file() and seen["problems"] == []  # kept, never picked up


def test_a_rerun_of_the_same_data_set_starts_afresh(tmp_path, monkeypatch):
    out = tmp_path / "tour"
    _stub(monkeypatch)
    tour(_config(out, text="sonnets"))
    (out / "mine.txt").write_text("a file of the user's, not the tour's\n")
    monkeypatch.setattr(sections, "text", lambda sec, t: None)  # this time the text section writes nothing
    tour(_config(out))
    assert not (out / "text" / "part.txt").exists() and (out / "pixels" / "part.txt").is_file()
    assert (out / "mine.txt").is_file() and "mine.txt" not in json.loads((out / MANIFEST).read_text())["files"]


def test_a_stale_checkpoint_is_never_picked_up(tmp_path, monkeypatch):
    """A checkpoint that was in models/ before the tour began is not the tour's until it rewrites it."""
    from probgen.models import VAE

    out, seen = tmp_path / "tour", {}
    (out / "models").mkdir(parents=True)
    VAE(64, z_dim=2, hidden=[4], x_shape=[8, 8]).save(out / "models" / "vae.pt")

    def gmm_to_vae(sec, t):  # this tour trains (here: saves) its VAE in section 3
        VAE(64, z_dim=2, hidden=[4], x_shape=[8, 8]).save(t.checkpoint("vae"))

    _stub(monkeypatch, seen)
    monkeypatch.setattr(sections, "gmm_to_vae", gmm_to_vae)
    tour(_config(out, force=True))  # a folder the tour did not make: --force writes into it
    assert seen["pixels"] == [] and seen["problems"] == ["vae"]


def test_a_damaged_manifest_is_refused_unless_forced(tmp_path, monkeypatch):
    out = tmp_path / "tour"
    _stub(monkeypatch)
    tour(_config(out))
    (out / MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match="cannot be read.*--force"):
        tour(_config(out))
    tour(_config(out, force=True))
    assert json.loads((out / MANIFEST).read_text())["status"] == "finished"


def _bad_inputs(tmp_path) -> dict:
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 20)
    (tmp_path / "empty.txt").write_text("")
    os.mkfifo(tmp_path / "fifo.txt")
    (tmp_path / "a_file").write_text("x\n")
    (tmp_path / "broken.py").write_text("def model(:\n")
    return {
        "threads past int32": ({"threads": 2**31}, "--threads"),
        "negative seed": ({"seed": -1}, "--seed"),
        "missing corpus": ({"text": str(tmp_path / "nosuch.txt")}, "nosuch.txt"),
        "binary corpus": ({"text": str(tmp_path / "binary.txt")}, "not UTF-8"),
        "empty corpus": ({"text": str(tmp_path / "empty.txt")}, "too few"),
        "FIFO corpus": ({"text": str(tmp_path / "fifo.txt")}, "FIFO"),
        "missing data dir": ({"data_dir": str(tmp_path / "nope")}, "--data-dir"),
        "data dir is a file": ({"data_dir": str(tmp_path / "a_file")}, "not a folder"),
        "missing data": ({"data": str(tmp_path / "nope.npz")}, "nope.npz"),
        "missing story": ({"story": str(tmp_path / "nope.py") + ":M"}, "nope.py"),
        "broken story": ({"story": str(tmp_path / "broken.py") + ":M"}, "SyntaxError"),
        "bad story args": ({"story": str(Path(__file__).resolve().parents[2] / "examples" / "pyro_vae.py") + ":VAE",
                            "story_args": ["{"]}, "story"),
    }


def test_every_input_is_checked_before_the_first_section(tmp_path, monkeypatch):
    def never(sec, t):
        raise AssertionError(f"section {sec.key} ran with a bad input")

    for key in {**SECTIONS, **FACE_SECTIONS}:
        monkeypatch.setattr(sections, key.replace("-", "_"), never)
    for case, (kw, named) in _bad_inputs(tmp_path).items():
        out = tmp_path / f"out {case}"
        with pytest.raises((ValueError, FileNotFoundError)) as e:
            tour(_config(out, **kw))
        assert named in str(e.value) and "\n" not in str(e.value).strip(), (case, str(e.value))
        assert not out.exists(), case  # nothing written


@pytest.mark.parametrize("flag", ["text", "data-dir"])
def test_the_command_line_says_one_line_and_exits_2(tmp_path, capsys, flag):
    arg = str(tmp_path / ("nosuch.txt" if flag == "text" else "nope"))
    assert main(["tour", "--quick", "--quiet", f"--{flag}", arg, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("probgen tour: error: ") and arg in err[-1] and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "out").exists()


def test_a_folder_of_a_tour_older_than_the_manifest(tmp_path, monkeypatch):
    """The issue's case: a digits tour written before tour.json existed (run manifest + report.json), then a
    tour of other images into the same folder."""
    from probgen.runs import run_folder

    out = tmp_path / "tour"
    with run_folder(out, name="tour", fresh=True):
        (out / "report.json").write_text(json.dumps({"data": {"name": "digits"}}))
        (out / "models").mkdir()
        (out / "models" / "pixelcnn.pt").write_bytes(b"an 8x8 model")
    _stub(monkeypatch)
    with pytest.raises(ValueError, match="holds the tour of digits, not of .*faces.npz"):
        tour(_config(out, data=_faces(tmp_path)))
    tour(_config(out))  # digits again: accepted, the old files replaced
    assert not (out / "models" / "pixelcnn.pt").exists()
    assert json.loads((out / MANIFEST).read_text())["status"] == "finished"
