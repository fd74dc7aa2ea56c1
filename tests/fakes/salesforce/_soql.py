"""The subset of SOQL the fake org answers, parsed for real; anything else is refused.

    SELECT field, ... FROM Object
      [WHERE condition]            field op literal | field IN (literal, ...) |
                                   condition AND/OR condition | ( condition )
      [ORDER BY field [ASC|DESC], ...]
      [LIMIT n]

Literals: 'quoted strings' (with backslash escapes), unquoted datetimes
(``2024-05-01T00:00:00Z``), numbers, ``true``/``false``/``null``. A query outside this
grammar raises `SoqlError` with ``MALFORMED_QUERY``, as Salesforce answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["Query", "SoqlError", "parse_query"]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*')
      | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"select", "from", "where", "order", "by", "limit", "and", "or", "in", "asc", "desc"}


class SoqlError(Exception):
    """A query the fake refuses; ``code`` is Salesforce's errorCode."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    position = 0
    while position < len(text):
        if not text[position:].strip():
            break
        match = _TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected text at {text[position:][:20]!r}")
        found.append(_Token(match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    return found


Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]
    sobject: str
    where: Predicate | None
    filtered: frozenset[str]
    """Fields the WHERE clause names (lower case)."""
    order: tuple[tuple[str, bool], ...]
    limit: int | None


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.at = 0
        self.filtered: set[str] = set()

    def peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise SoqlError("MALFORMED_QUERY", "unexpected end of query")
        self.at += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.lower() == word:
            self.at += 1
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.keyword(word):
            raise SoqlError("MALFORMED_QUERY", f"expecting {word.upper()}")

    def name(self) -> str:
        token = self.take()
        if token.kind != "word" or token.text.lower() in _KEYWORDS:
            raise SoqlError("MALFORMED_QUERY", f"expecting a field name, got {token.text!r}")
        return token.text

    def query(self) -> Query:
        self.expect("select")
        fields = [self.name()]
        while self.peek() == _Token("punct", ","):
            self.take()
            fields.append(self.name())
        self.expect("from")
        sobject = self.name()
        where = self.condition() if self.keyword("where") else None
        order: list[tuple[str, bool]] = []
        if self.keyword("order"):
            self.expect("by")
            while True:
                field = self.name()
                descending = self.keyword("desc")
                if not descending:
                    self.keyword("asc")
                order.append((field, descending))
                if self.peek() != _Token("punct", ","):
                    break
                self.take()
        limit = None
        if self.keyword("limit"):
            token = self.take()
            if token.kind != "number" or not token.text.isdigit():
                raise SoqlError("MALFORMED_QUERY", "LIMIT takes a whole number")
            limit = int(token.text)
        if self.peek() is not None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token {self.take().text!r}")
        return Query(tuple(fields), sobject, where, frozenset(self.filtered), tuple(order), limit)

    def condition(self) -> Predicate:
        left = self.conjunction()
        while self.keyword("or"):
            right = self.conjunction()
            left = (lambda a, b: lambda row: a(row) or b(row))(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.comparison()
        while self.keyword("and"):
            right = self.comparison()
            left = (lambda a, b: lambda row: a(row) and b(row))(left, right)
        return left

    def comparison(self) -> Predicate:
        if self.peek() == _Token("punct", "("):
            self.take()
            inner = self.condition()
            if self.take() != _Token("punct", ")"):
                raise SoqlError("MALFORMED_QUERY", "expecting )")
            return inner
        field = self.name()
        self.filtered.add(field.lower())
        if self.keyword("in"):
            if self.take() != _Token("punct", "("):
                raise SoqlError("MALFORMED_QUERY", "IN takes a parenthesised list")
            values = [self.literal()]
            while (token := self.take()) == _Token("punct", ","):
                values.append(self.literal())
            if token != _Token("punct", ")"):
                raise SoqlError("MALFORMED_QUERY", "expecting ) after the IN list")
            return lambda row: _get(row, field) in values
        token = self.take()
        if token.kind != "op":
            raise SoqlError("MALFORMED_QUERY", f"expecting an operator after {field}")
        value = self.literal()
        return _compare(field, token.text, value)

    def literal(self) -> Any:
        token = self.take()
        if token.kind == "string":
            return re.sub(r"\\(.)", r"\1", token.text[1:-1])
        if token.kind == "datetime":
            return _datetime(token.text)
        if token.kind == "number":
            return float(token.text)
        if token.kind == "word" and token.text.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[token.text.lower()]
        raise SoqlError("MALFORMED_QUERY", f"expecting a value, got {token.text!r}")


def _datetime(text: str) -> datetime:
    cleaned = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", cleaned):
        cleaned = cleaned[:-2] + ":" + cleaned[-2:]
    return datetime.fromisoformat(cleaned).astimezone(UTC)


def _get(row: Row, field: str) -> Any:
    for key, value in row.items():
        if key.lower() == field.lower():
            return value
    return None


def _compare(field: str, op: str, value: Any) -> Predicate:
    def test(row: Row) -> bool:
        actual = _get(row, field)
        if op in ("=", "!=", "<>"):
            equal = actual == value
            return equal if op == "=" else not equal
        if actual is None or value is None:
            return False
        if op == "<":
            return bool(actual < value)
        if op == "<=":
            return bool(actual <= value)
        if op == ">":
            return bool(actual > value)
        return bool(actual >= value)

    return test


def parse_query(text: str) -> Query:
    """The parsed query, or `SoqlError`."""
    return _Parser(_tokens(text)).query()
