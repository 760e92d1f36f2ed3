"""The tour's "Is the encoder right?" section on a tiny VAE, and the page rendered in Chromium at 1280 px:
no element wider than the column (wide figures scale, wide tables scroll in their own box)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from probgen.models import VAE
from probgen.plots.core import new_figure, savefig
from probgen.report import Report
from probgen.report.encoder import encoder
from probgen.report.tour import SECTIONS, TourConfig, Tour

CHROMIUM = "/usr/bin/chromium"


def _tour(tmp_path, digits):
    from probgen.recipes.config import RunConfig

    cfg = TourConfig(quick=True, run=RunConfig(out=str(tmp_path), quiet=True))
    t = Tour(cfg, digits, tmp_path, SECTIONS)
    VAE(64, z_dim=2, hidden=[16], x_shape=[8, 8]).save(t.checkpoint("vae"))
    return t


def _section(tmp_path, digits):
    t = _tour(tmp_path, digits)
    rep = Report("t")
    sec = rep.section("encoder", SECTIONS["encoder"])
    encoder(sec, t)
    page = rep.html()
    assert not sec.errors, sec.errors
    assert page.count("<img") == 2 and "SBC verdict" in page and "active units" in page
    n = t.numbers["encoder"]["vae"]
    assert n["calibration"]["simulations"] == 300 and n["collapse"]["n"] == len(t.ds.test)
    assert f"the {len(t.ds.test)} test images of {t.ds.name}" in page  # the caption says which data, how many
    return rep


def test_encoder_section_shows_the_vae_and_its_numbers(tmp_path, digits):
    _section(tmp_path, digits)


def _wide_png(path: Path, width_px: int) -> Path:
    fig, ax = new_figure(figsize=(width_px / 110, 2))
    ax.plot(np.arange(10))
    fig.subplots_adjust(0, 0, 1, 1)
    return savefig(fig, path)


def test_page_fits_its_column_in_chromium_at_1280px(tmp_path, digits):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"Chromium is not installed ({CHROMIUM}; Debian package `chromium`)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    rep = _section(tmp_path, digits)
    other = rep.section("wide", "Wide things")
    other.figure(_wide_png(tmp_path / "wide.png", 2133), "as wide as the blur comparison was")
    other.table([f"column {i}" for i in range(30)], [[f"cell {i}" for i in range(30)]])
    other.pre("x" * 400)
    other.paragraph("a/very/long/path/" * 30)
    path = rep.write(tmp_path / "page.html")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                                     args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(path.resolve().as_uri(), wait_until="load")
            found = page.evaluate("""() => {
                const col = document.body.getBoundingClientRect();
                const right = col.right - parseFloat(getComputedStyle(document.body).paddingRight) + 1;
                const wide = [];
                for (const el of document.body.querySelectorAll('*')) {
                    if (el.parentElement.closest('.wide, pre')) continue;  // scrolls inside its own box
                    const r = el.getBoundingClientRect();
                    if (r.right > right) wide.push(el.tagName + ' ' + Math.round(r.right) + ' > ' + Math.round(right));
                }
                return {wide, page: document.documentElement.scrollWidth, view: window.innerWidth,
                        imgs: Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)};
            }""")
        finally:
            browser.close()
    assert found["imgs"] and all(found["imgs"])
    assert not found["wide"], found["wide"]
    assert found["page"] <= found["view"]  # no horizontal scroll bar on the page
