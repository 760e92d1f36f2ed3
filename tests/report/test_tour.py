"""The tour (probgen.report.tour) with its sections stubbed: a failing family is reported in its
own section and the tour goes on; a corpus that is not there is refused before the first section."""
from __future__ import annotations

import json

import pytest

from probgen.report import sections
from probgen.report.tour import SECTIONS, TourConfig, tour


def _config(out, **kw):
    from probgen.recipes.config import RunConfig

    return TourConfig(quick=True, run=RunConfig(out=str(out), quiet=True), **kw)


def test_one_failing_family_does_not_end_the_tour(tmp_path, monkeypatch):
    """The pixel section's trainer fails (bad epochs), the others carry on."""
    def failing(sec, t):
        name = t.lead(sec.key)
        t.step(sec, f"train {name}", t.train, name, epochs=-1)
        sec.paragraph("after the failure")

    def fine(sec, t):
        from probgen.plots import image_grid

        image_grid([[[0.0, 1.0], [1.0, 0.0]]], t.out / sec.key / "x.png")
        sec.figure(t.out / sec.key / "x.png", "a figure")

    monkeypatch.setattr(sections, "pixels", failing)
    for name in ("mixture", "gmm_to_vae", "conditional", "adversarial", "compare", "text"):
        monkeypatch.setattr(sections, name, fine)
    res = tour(_config(tmp_path))
    assert res.failed == [SECTIONS["pixels"]] and "failed in part: 1. Autoregressive pixel model" in res.lines[0]
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    pixel = page.split('<section id="pixels">')[1].split("</section>")[0]
    assert 'class="error"' in pixel and "train pixelcnn: ValueError: " in pixel and "epochs" in pixel
    assert "after the failure" in pixel
    assert page.count('class="error"') == 1 and page.count("<img ") == 6
    r = json.loads((tmp_path / "report.json").read_text())
    assert not r["sections"]["pixels"]["ok"] and all(r["sections"][k]["ok"] for k in SECTIONS if k != "pixels")
    assert r == res.summary
    assert "Traceback" not in page and "failed" in (tmp_path / "tour.log").read_text()


def test_a_corpus_that_is_not_there_is_refused_before_the_first_section(tmp_path, monkeypatch):
    """(It used to become a note in section 7 after every family had trained; tests/report/test_tour_folder.py
    has the other bad inputs.)"""
    monkeypatch.delenv("PROBGEN_DATA_DIR", raising=False)
    for name in ("pixels", "mixture", "gmm_to_vae", "conditional", "adversarial", "compare", "text"):
        monkeypatch.setattr(sections, name, lambda sec, t: pytest.fail("a section ran"))
    with pytest.raises(ValueError, match="--text: text corpus 'ptb' needs a data folder.*PROBGEN_DATA_DIR"):
        tour(_config(tmp_path / "out", text="ptb"))
    assert not (tmp_path / "out").exists()


def test_bad_options_are_one_line_value_errors(tmp_path):
    with pytest.raises(ValueError, match="--threads"):
        tour(_config(tmp_path, threads=0))
    with pytest.raises((ValueError, FileNotFoundError)):
        tour(_config(tmp_path, data=str(tmp_path / "nope.npz")))


def test_frey_faces_page_on_a_tiny_subset(tmp_path, data_dir):
    """--data frey-face: the faces page (two-dimension traversal, map, samples) and the problems section."""
    from probgen.report.tour import FACE_SECTIONS

    if not (data_dir / "frey_face").is_dir():
        pytest.skip(f"no frey_face folder in {data_dir}")
    res = tour(_config(tmp_path, data="frey-face", data_dir=str(data_dir), train_size=200))
    assert res.failed == [] and list(res.summary["sections"]) == list(FACE_SECTIONS)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    for title in FACE_SECTIONS.values():
        assert f"<h2>{title}</h2>" in page
    faces = res.summary["sections"]["faces"]
    assert sorted(faces["traverse"]["dims"]) == [0, 1] and faces["recipe"]["likelihood"] == "bernoulli"
    assert res.summary["data"]["binarized"] is False and res.summary["train_size"] == 200
    assert (tmp_path / "faces" / "traverse.png").is_file() and (tmp_path / "problems" / "blur.png").is_file()
    assert "first 200 of 1573" in (tmp_path / "tour.log").read_text()
    with pytest.raises(ValueError, match="--train-size"):
        tour(_config(tmp_path, train_size=0))
