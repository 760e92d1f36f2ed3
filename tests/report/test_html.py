"""The page writer (probgen.report.html): sections, errors, embedded images."""
from __future__ import annotations

import pytest

from probgen.report import Report, data_uri, image_mime


def test_a_failing_family_is_reported_in_its_section(tmp_path):
    rep = Report("t")
    s = rep.section("x", "X")
    s.figure(tmp_path / "missing.png", "gone")
    s.error("train x: ValueError: bad")
    page = rep.html()
    assert page.count('class="error"') == 2 and "ValueError: bad" in page and "(failed in part)" in page
    (tmp_path / "a.gif").write_bytes(b"GIF89a" + b"\0" * 10)
    assert data_uri(tmp_path / "a.gif").startswith("data:image/gif;base64,")


def test_text_is_escaped_and_the_page_is_written(tmp_path):
    rep = Report("a <b>", subtitle="s & t")
    s = rep.section("k", "K")
    s.table(["h<"], [["<td>"]], caption="c")
    s.pre("<script>")
    s.note("n")
    path = rep.write(tmp_path / "r.html")
    page = path.read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;" in page and "a &lt;b&gt;" in page
    assert 'class="note"' in page and "<caption>c</caption>" in page


def test_image_mime_refuses_other_files():
    assert image_mime(b"\x89PNG\r\n\x1a\n...") == "image/png"
    with pytest.raises(ValueError):
        image_mime(b"not an image")
