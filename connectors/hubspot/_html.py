"""A note's body: HubSpot stores HTML, Flowtly plain text.

Reading takes the text out of the HTML (paragraphs and ``<br>`` become line breaks,
entities are decoded); writing wraps plain text in one paragraph with ``<br>`` between
lines, so a body written and read back is the text it was. The standard library's
`html.parser` does the tokenizing.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

__all__ = ["html_from_text", "text_from_html"]

_BLOCKS = frozenset({"p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr"})
_SPACES = re.compile(r"[ \t\r\n]+")


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self._block_edge()

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self._block_edge()

    def handle_data(self, data: str) -> None:
        # Line breaks in the HTML source are layout, not text: they read as a space.
        text = _SPACES.sub(" ", data) if "\n" in data or "\r" in data else data
        if not text.strip() and (not self.parts or self.parts[-1].endswith("\n")):
            return  # indentation between blocks
        self.parts.append(text)

    def _block_edge(self) -> None:
        if self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append("\n")


def text_from_html(body: str) -> str:
    """The plain text of a note body, stripped; blocks and ``<br>`` become line breaks."""
    if "<" not in body and "&" not in body:
        return body.strip()
    collector = _TextCollector()
    collector.feed(body)
    collector.close()
    return "".join(collector.parts).strip()


def html_from_text(text: str) -> str:
    """Simple HTML for plain text: one paragraph, ``<br>`` at each line break."""
    lines = text.replace("\r\n", "\n").split("\n")
    return "<p>" + "<br>".join(html.escape(line) for line in lines) + "</p>"
