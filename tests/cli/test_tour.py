"""``probgen tour --quick``: one self-contained page with every section, and it renders in a browser.

The tour runs once per test session (module fixture, about a minute of CPU); the tests read
its output. The browser test skips, saying why, where Chromium or Playwright is missing.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from probgen.cli import main
from probgen.cli.tour import SECTIONS
from probgen.report import Report, data_uri, image_mime

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def tour(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tour")
    argv = ["tour", "--quick", "--quiet", "--out", str(out)]
    data = os.environ.get("PROBGEN_DATA_DIR") or (str(SHARED) if SHARED.is_dir() else None)
    if data:  # section 7 trains on the sonnets when the shared corpora are there, else it shows a note
        argv += ["--data-dir", data]
    assert main(argv) == 0
    return out


def _images(page: str) -> list[str]:
    return re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", page)


def test_page_has_every_section_and_only_embedded_images(tour):
    page = (tour / "report.html").read_text(encoding="utf-8")
    for title in SECTIONS.values():
        assert f"<h2>{title.replace('&', '&amp;')}</h2>" in page, title
    assert 'class="error"' not in page, re.findall(r'<div class="error">(.*?)</div>', page)
    srcs = _images(page)
    assert len(srcs) >= 15
    for src in srcs:
        m = re.fullmatch(r"data:(image/(?:png|gif));base64,([A-Za-z0-9+/=]+)", src)
        assert m, src[:60]
        raw = base64.b64decode(m.group(2), validate=True)
        assert image_mime(raw) == m.group(1)
        if m.group(1) == "image/png":
            assert raw.startswith(b"\x89PNG\r\n\x1a\n")
        else:
            assert raw[:6] in (b"GIF87a", b"GIF89a")
    # self-contained: nothing fetched from anywhere, no scripts
    assert "<script" not in page
    assert not re.search(r"\b(?:src|href)=\"(?!data:|#)", page)


def test_report_json_has_the_numbers(tour):
    r = json.loads((tour / "report.json").read_text())
    assert set(r["sections"]) == set(SECTIONS)
    assert all(s["ok"] for s in r["sections"].values()), {k: s["errors"] for k, s in r["sections"].items()}
    rows = {m["name"]: m for m in r["sections"]["compare"]["models"]}
    assert {"gmm", "pixelcnn", "vae", "mixture-vae", "cvae", "autoencoder", "gan"} <= set(rows)
    assert rows["gmm"]["estimator"] == "exact" and rows["pixelcnn"]["estimator"] == "exact"
    assert rows["vae"]["estimator"] == "IWAE" and rows["gan"]["estimator"] == "Parzen"
    assert all(m["n_test"] == r["data"]["n_test"] for m in rows.values())  # the same test set
    elpd = r["sections"]["compare"]["elpd"]
    assert set(elpd["models"]) == set(rows)
    assert "vae" in r["sections"]["compare"]["guide_khat"]
    assert r["sections"]["pixel"]["estimator"] == "exact"
    text = r["sections"]["text"]
    assert "test" in text or "skipped" in text


def test_a_failing_family_is_reported_in_its_section(tmp_path):
    rep = Report("t")
    s = rep.section("x", "X")
    s.figure(tmp_path / "missing.png", "gone")
    s.error("train x: ValueError: bad")
    page = rep.html()
    assert page.count('class="error"') == 2 and "ValueError: bad" in page and "(failed in part)" in page
    (tmp_path / "a.gif").write_bytes(b"GIF89a" + b"\0" * 10)
    assert data_uri(tmp_path / "a.gif").startswith("data:image/gif;base64,")


def test_one_failing_family_does_not_end_the_tour(tmp_path, monkeypatch, capsys):
    """Sections stubbed (no training): the pixel section's trainer fails, the others carry on."""
    import probgen.cli.tour as tour

    def failing(sec, *, run, models, **kw):
        run.step(sec, "train pixelcnn", run.cli, "train", "--out", models, "pixelcnn", "--epochs", "-1x")
        sec.paragraph("after the failure")

    def fine(sec, *, out, **kw):
        from probgen.plots import image_grid

        image_grid([[[0.0, 1.0], [1.0, 0.0]]], out / sec.key / "x.png")
        sec.figure(out / sec.key / "x.png", "a figure")

    monkeypatch.setattr(tour, "_pixel", failing)
    for name in ("_gmm", "_vae", "_cvae", "_gan", "_compare", "_text"):
        monkeypatch.setattr(tour, name, fine)
    assert main(["tour", "--quick", "--out", str(tmp_path)]) == 0
    assert "failed in part: 1. Autoregressive pixel model" in capsys.readouterr().out
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    pixel = page.split('<section id="pixel">')[1].split("</section>")[0]
    assert 'class="error"' in pixel and "train pixelcnn: RuntimeError: " in pixel and "--epochs" in pixel
    assert "after the failure" in pixel
    assert page.count('class="error"') == 1 and len(_images(page)) == 6
    r = json.loads((tmp_path / "report.json").read_text())
    assert not r["sections"]["pixel"]["ok"] and all(r["sections"][k]["ok"] for k in SECTIONS if k != "pixel")
    assert "Traceback" not in page and "failed" in (tmp_path / "tour.log").read_text()


def test_without_a_corpus_section_7_says_how_to_point_at_one(tmp_path, monkeypatch):
    import probgen.cli.tour as tour

    for name in ("_pixel", "_gmm", "_vae", "_cvae", "_gan", "_compare"):
        monkeypatch.setattr(tour, name, lambda sec, **kw: None)
    assert main(["tour", "--quick", "--quiet", "--text", str(tmp_path / "none.txt"), "--out", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    text = page.split('<section id="text">')[1]
    assert 'class="note"' in text and "PROBGEN_DATA_DIR" in text and "--text FILE.txt" in text
    assert 'class="error"' not in page
    assert "skipped" in json.loads((tmp_path / "report.json").read_text())["sections"]["text"]


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert main(["tour", "--quick", "--threads", "0", "--out", str(tmp_path)]) == 2
    assert "--threads" in capsys.readouterr().err
    assert main(["tour", "--quick", "--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path)]) == 2


def test_page_renders_in_headless_chromium(tour):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"Chromium is not installed ({CHROMIUM}; Debian package `chromium`)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    page_url = (tour / "report.html").resolve().as_uri()
    errors, failed = [], []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url[:80]))
            page.goto(page_url, wait_until="load")
            state = page.evaluate("""() => Array.from(document.images).map(
                img => ({ok: img.complete && img.naturalWidth > 0, alt: img.alt}))""")
            headings = page.evaluate("() => Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
        finally:
            browser.close()
    assert state and all(s["ok"] for s in state), [s["alt"][:60] for s in state if not s["ok"]]
    assert headings == list(SECTIONS.values())
    assert not errors, errors
    assert not failed, failed
