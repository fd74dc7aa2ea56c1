"""Query strings parsed and rebuilt the way PHP / API Platform do it.

API Platform parses the request query with ``parse_str`` semantics (brackets make nested
arrays, the last plain duplicate wins, key order is first occurrence) and rebuilds view links
with ``http_build_query(..., PHP_QUERY_RFC3986)``, collapsing numeric leaf indexes to ``[]``.
"""

from __future__ import annotations

import re
from typing import TypeAlias
from urllib.parse import quote, unquote_plus

__all__ = ["QueryTree", "build_query", "parse_query", "php_int"]

QueryTree: TypeAlias = "dict[str, str | QueryTree]"

_INT_PREFIX = re.compile(r"[ \t\n\r\v\f]*([+-]?\d+)")
_NUMERIC_LEAF = re.compile(r"%5B\d+%5D(?!%5B)")


def php_int(value: str | QueryTree) -> int:
    """PHP's ``(int)`` cast of a query value: leading integer digits, else 0 (arrays: 1)."""
    if isinstance(value, dict):
        return 1 if value else 0
    match = _INT_PREFIX.match(value)
    return int(match.group(1)) if match else 0


def _split_key(key: str) -> tuple[str, list[str]]:
    """``a[b][]`` -> ``("a", ["b", ""])``; an unclosed bracket stays part of the name."""
    start = key.find("[")
    if start <= 0:
        return key, []
    base, rest, parts = key[:start], key[start:], []
    while rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            break
        parts.append(rest[1:end])
        rest = rest[end + 1 :]
    if not parts:
        return key, []
    return base, parts


def _next_index(tree: QueryTree) -> str:
    numbers = [int(k) for k in tree if k.lstrip("-").isdigit()]
    return str(max(numbers) + 1 if numbers else 0)


def parse_query(raw: str) -> QueryTree:
    """Parse a raw query string into PHP's nested, ordered parameter array."""
    params: QueryTree = {}
    for pair in raw.split("&"):
        if not pair or pair.startswith("="):
            continue
        raw_key, _, raw_value = pair.partition("=")
        key, value = unquote_plus(raw_key), unquote_plus(raw_value)
        base, parts = _split_key(key)
        if not base:
            continue
        if not parts:
            params[base] = value
            continue
        node = params.get(base)
        if not isinstance(node, dict):
            node = {}
            params[base] = node
        for index, part in enumerate(parts):
            name = part if part else _next_index(node)
            if index == len(parts) - 1:
                node[name] = value
                break
            child = node.get(name)
            if not isinstance(child, dict):
                child = {}
                node[name] = child
            node = child
    return params


def _encode(text: str) -> str:
    return quote(text, safe="")


def _pairs(prefix: str, value: str | QueryTree, out: list[str]) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            _pairs(f"{prefix}%5B{_encode(key)}%5D", child, out)
    else:
        out.append(f"{prefix}={_encode(value)}")


def build_query(params: QueryTree) -> str:
    """``http_build_query(params, '', '&', PHP_QUERY_RFC3986)`` then ``[0]`` -> ``[]``."""
    out: list[str] = []
    for key, value in params.items():
        _pairs(_encode(key), value, out)
    collapsed: list[str] = []
    for pair in out:
        key, _, value = pair.partition("=")
        collapsed.append(f"{_NUMERIC_LEAF.sub('%5B%5D', key)}={value}")
    return "&".join(collapsed)
