"""JSON values as the sandbox handles them, and PHP-compatible encoding."""

from __future__ import annotations

import json
import re
from typing import TypeAlias

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = "dict[str, JsonValue]"

# API Platform encodes with JSON_HEX_TAG|JSON_HEX_APOS|JSON_HEX_AMP|JSON_HEX_QUOT and without
# JSON_UNESCAPED_SLASHES: reproduce the bytes so clients are tested against the real escaping.
# One str.replace per character: a translate table maps character by character in Python
# objects, a third of the sandbox's time per listing page. No replacement brings in a
# character another one replaces, so the order does not matter.
_HEX = (("/", "\\/"), ("<", "\\u003C"), (">", "\\u003E"), ("&", "\\u0026"), ("'", "\\u0027"))
_ESCAPE_PAIR = re.compile(r"\\(.)")


def _hex_quote(match: re.Match[str]) -> str:
    return "\\u0022" if match.group(1) == '"' else match.group(0)


def encode(value: JsonValue) -> bytes:
    """Serialise like PHP's ``json_encode`` with API Platform's flags."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in _HEX:
        if char in text:
            text = text.replace(char, escaped)
    if '\\"' in text:
        text = _ESCAPE_PAIR.sub(_hex_quote, text)
    return text.encode("utf-8")


def type_name(value: JsonValue) -> str:
    """PHP's ``gettype()`` of the decoded value, as API Platform's messages print it."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    return "array"
