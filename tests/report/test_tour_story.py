"""``probgen tour --story FILE.py:NAME`` (its own section, its row in the comparison) and
``probgen sample CKPT --story FILE.py:NAME`` (a user-program checkpoint loads only with its code named)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from probgen.cli import main
from probgen.report import sections
from probgen.report.tour import PROFILES, SECTIONS, TourConfig, tour

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "pyro_vae.py") + ":VAE"


def _config(out, **kw):
    from probgen.recipes.config import RunConfig

    return TourConfig(quick=True, run=RunConfig(out=str(out), quiet=True), **kw)


def _only_the_story(monkeypatch):
    """Every family stubbed; the comparison scores what was trained (here: the story) by the one policy."""
    for key in SECTIONS:
        monkeypatch.setattr(sections, key.replace("-", "_"), lambda sec, t: None)

    def compare(sec, t):
        rows, _, _ = sections.score_rows(sec, t)
        t.numbers["compare"]["models"] = rows

    monkeypatch.setattr(sections, "compare", compare)
    monkeypatch.setitem(PROFILES["quick"], "vae_epochs", 1)
    monkeypatch.setitem(PROFILES["quick"], "iwae_k", 4)


@pytest.fixture(scope="module")
def story_tour(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    try:
        _only_the_story(mp)
        out = tmp_path_factory.mktemp("tour")
        return out, tour(_config(out, story=EXAMPLE, story_args=['{"hidden_dim": 16}']))
    finally:
        mp.undo()


def test_the_story_has_a_section_and_a_row(story_tour):
    out, res = story_tour
    assert not res.failed
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.index('<section id="story">') < page.index('<section id="compare">')
    story = page.split('<section id="story">')[1].split("</section>")[0]
    assert "Your own story" in story and "<img " in story and 'class="error"' not in page
    r = json.loads((out / "report.json").read_text())
    s = r["sections"]["story"]
    assert s["ok"] and s["kind"] == "vae" and Path(s["checkpoint"]).parent == out / "story"
    (row,) = r["sections"]["compare"]["models"]
    assert row["name"] == "your story" and row["num_samples"] == 4 and row["n_test"] == 250
    assert "IWAE" in row["estimator"]


def test_sample_needs_the_code_named(story_tour, tmp_path, capsys):
    out, _ = story_tour
    ckpt = str(out / "story" / "pyro_vae.VAE.pt")  # named after the story, not the built-in vae
    png = tmp_path / "s.png"
    assert main(["sample", ckpt, "--out", str(png)]) == 2  # never imports the file implicitly
    assert "--story" in capsys.readouterr().err and not png.exists()
    assert main(["sample", ckpt, "--story", EXAMPLE, "-n", "4", "--out", str(png)]) == 0
    from PIL import Image

    assert Image.open(png).format == "PNG"


def test_bad_story_options_fail_before_training(tmp_path):
    with pytest.raises(FileNotFoundError, match="story file not found"):
        tour(_config(tmp_path, story=str(tmp_path / "nope.py") + ":VAE"))
    with pytest.raises(ValueError, match="--story-args"):
        tour(_config(tmp_path, story=EXAMPLE, story_args=["not a pair"]))
    assert not (tmp_path / "models").exists()
