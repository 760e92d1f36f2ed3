"""A self-contained HTML report: one page, images embedded as base64 data URIs, inline CSS.

No JavaScript, no external resources (fonts, scripts, style sheets, images), so the page
renders the same from a file, an e-mail attachment or a CI artefact, offline. Nothing is wider than the
column: a figure scales down to it, a wide table or program output scrolls inside its own box. Used by
``probgen tour``; nothing here knows about models.

    rep = Report("probgen tour", subtitle="digits, seed 0")
    s = rep.section("pixel", "1. Autoregressive pixel model", "What this section shows ...")
    s.figure("runs/tour/pixel/samples.png", "64 samples drawn pixel by pixel.")
    s.table(["model", "nats"], [["pixelcnn", "-23.1"]])
    s.error("training failed: ValueError: ...")
    rep.write("runs/tour/report.html")
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

__all__ = ["Report", "Section", "data_uri", "image_mime"]

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;overflow-wrap:anywhere;color:#1d1d1f;line-height:1.5;background:#fff}
h1{font-size:1.8rem;margin-bottom:.2rem}h2{font-size:1.35rem;margin-top:2.5rem;border-bottom:1px solid #ddd;
padding-bottom:.2rem}h3{font-size:1.05rem;margin:1.2rem 0 .3rem}
.meta{color:#666;font-size:.9rem}nav ol{columns:2;font-size:.95rem}
figure{margin:1rem 0;display:inline-block;vertical-align:top;max-width:100%}
figure img{max-width:100%;height:auto;image-rendering:pixelated;border:1px solid #eee;box-sizing:border-box}
.wide{max-width:100%;overflow-x:auto}
figcaption{font-size:.88rem;color:#444;max-width:34rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}th,td{border:1px solid #ddd;padding:.25rem .55rem;
text-align:right}th{background:#f5f5f7}td:first-child,th:first-child{text-align:left}
caption{caption-side:bottom;font-size:.85rem;color:#555;text-align:left;padding-top:.3rem}
pre{background:#f5f5f7;padding:.7rem;overflow-x:auto;font-size:.85rem;max-width:100%;box-sizing:border-box}
.error{background:#fdecea;border-left:4px solid #d93025;padding:.5rem .8rem;margin:.8rem 0}
.note{background:#eef4fd;border-left:4px solid #1a73e8;padding:.5rem .8rem;margin:.8rem 0}
.status{font-size:.85rem;color:#666}
"""


def image_mime(data: bytes) -> str:
    """MIME type of an image from its first bytes (PNG, GIF, JPEG, SVG).

    :raises ValueError: not one of those.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.lstrip()[:5] in (b"<?xml", b"<svg ", b"<svg>"):
        return "image/svg+xml"
    raise ValueError("not a PNG, GIF, JPEG or SVG image")


def data_uri(path: str | Path) -> str:
    """``data:image/...;base64,...`` of an image file."""
    data = Path(path).read_bytes()
    return f"data:{image_mime(data)};base64,{base64.b64encode(data).decode('ascii')}"


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


@dataclass
class Section:
    """One section of the page: a heading, an introduction, then blocks in the order added."""

    key: str
    title: str
    intro: str = ""
    blocks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def paragraph(self, text: str) -> None:
        """A paragraph of plain text (escaped)."""
        self.blocks.append(f"<p>{_esc(text)}</p>")

    def heading(self, text: str) -> None:
        self.blocks.append(f"<h3>{_esc(text)}</h3>")

    def figure(self, path: str | Path, caption: str, *, alt: str | None = None, width: int | None = None) -> None:
        """An image from a file, embedded; a missing or unreadable file becomes an error line."""
        try:
            uri = data_uri(path)
        except (OSError, ValueError) as e:
            self.error(f"figure {Path(path).name}: {e}")
            return
        style = f' style="width:{int(width)}px"' if width else ""
        self.blocks.append(f'<figure><img src="{uri}" alt="{_esc(alt or caption)}"{style}>'
                           f"<figcaption>{_esc(caption)}</figcaption></figure>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence], *, caption: str = "") -> None:
        """A table of already formatted cells (escaped)."""
        head = "".join(f"<th>{_esc(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
        cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
        # a table wider than the column scrolls inside its own box, never the page
        self.blocks.append(f'<div class="wide"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
                           "</table></div>")

    def pre(self, text: str) -> None:
        """Preformatted text (program output, generated lines)."""
        self.blocks.append(f"<pre>{_esc(text)}</pre>")

    def note(self, text: str) -> None:
        self.blocks.append(f'<div class="note">{_esc(text)}</div>')

    def error(self, text: str) -> None:
        """Something in this section failed: say so on the page (and in ``errors``)."""
        self.errors.append(str(text))
        self.blocks.append(f'<div class="error"><strong>failed:</strong> {_esc(text)}</div>')

    def html(self) -> str:
        intro = f"<p>{_esc(self.intro)}</p>" if self.intro else ""
        return f'<section id="{_esc(self.key)}"><h2>{_esc(self.title)}</h2>{intro}{"".join(self.blocks)}</section>'


class Report:
    """A page of sections, written as one self-contained HTML file."""

    def __init__(self, title: str, *, subtitle: str = "", intro: str = ""):
        self.title, self.subtitle, self.intro = title, subtitle, intro
        self.sections: list[Section] = []
        self.footer = ""

    def section(self, key: str, title: str, intro: str = "") -> Section:
        s = Section(key, title, intro)
        self.sections.append(s)
        return s

    def html(self) -> str:
        toc = "".join(f'<li><a href="#{_esc(s.key)}">{_esc(s.title)}</a>'
                      + (" (failed in part)" if s.errors else "") + "</li>" for s in self.sections)
        parts = [
            "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<link rel="icon" href="data:,">',  # no favicon request (a console error in browsers)
            f"<title>{_esc(self.title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{_esc(self.title)}</h1>",
            f'<p class="meta">{_esc(self.subtitle)}</p>' if self.subtitle else "",
            f"<p>{_esc(self.intro)}</p>" if self.intro else "",
            f"<nav><ol>{toc}</ol></nav>" if self.sections else "",
            *(s.html() for s in self.sections),
            f'<hr><p class="meta">{_esc(self.footer)}</p>' if self.footer else "",
            "</body></html>",
        ]
        return "\n".join(p for p in parts if p)

    def write(self, path: str | Path) -> Path:
        """Write the page atomically (UTF-8)."""
        from ..io import atomic_write

        text = self.html().encode("utf-8")
        return atomic_write(path, lambda f: f.write(text))
