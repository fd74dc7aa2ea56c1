"""Data values shown literally: never as terminal control, markup, Markdown or HTML.

Values come from a CRM export or a Flowtly account, so they may hold anything: an escape
sequence that retitles or clears the terminal (``\\x1b]0;...``), a newline that breaks a
table, ``[bold]`` that rich would read as markup, ``<script>`` or ``[x](javascript:...)``
that a Markdown viewer would render. Reports and listings pass every value through here.
"""

from __future__ import annotations

import re

__all__ = ["json_visible", "markdown", "visible"]

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""C0 and C1 controls, DEL, line and paragraph separators, and the bidirectional
overrides and isolates that make text read differently from what it holds."""

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""What ``json.dumps(..., ensure_ascii=False)`` leaves unescaped of `_CONTROL`."""

_MARKDOWN = re.compile(r"[\\`*_~\[\]|<>&]")
_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(value: object) -> str:
    """``value`` as text with every control character spelled out (``\\n``, ``\\x1b``)."""
    text = str(value)
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_escaped, text)


def markdown(value: object) -> str:
    """``value`` as literal Markdown text, safe inside a table cell or a list item.

    Backslash escapes keep emphasis, code spans, links and the cell separator from
    forming; ``<``, ``>`` and ``&`` become entities, so no HTML passes through.
    """
    return _MARKDOWN.sub(
        lambda match: _ENTITIES.get(match.group(), "\\" + match.group()), visible(value)
    )


def json_visible(text: str) -> str:
    """JSON text (as ``json.dumps(..., ensure_ascii=False)`` writes it) with the control
    characters it leaves raw escaped too, so printing it cannot drive a terminal."""
    if _JSON_RAW.search(text) is None:
        return text
    return _JSON_RAW.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
