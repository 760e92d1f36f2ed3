"""The HTML report (:mod:`.html`: one self-contained page) and the tour that fills it (:mod:`.tour`)."""
from __future__ import annotations

from .html import Report, Section, data_uri, image_mime

__all__ = ["Report", "Section", "data_uri", "image_mime"]
