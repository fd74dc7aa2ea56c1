"""Hiding what must not be shown: configured secrets scrubbed out of texts, sensitive values
masked.

A side's words (an error body, a violation message, a rejection reason, a crash's text) may
echo what it was sent, the ``Authorization`` header included. Every such text passes a
`Scrubber` before it is logged, stored or rendered. A `Scrubber` knows the configured
secrets (`sync.config.Settings.secrets`) and also removes credentials it was not told about
but recognises by form: ``Bearer <token>`` and the value of an ``Authorization`` header.

Sensitive *values* (tax ids, configured fields) are not secrets the text could carry
anywhere; they are masked by field (`mask`) where a field names them.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO, cast, overload
from urllib.parse import quote, quote_plus

from sync.model import Scalar

__all__ = [
    "EMBEDDED_MIN",
    "NO_SECRETS",
    "REDACTED",
    "Redaction",
    "Scrubber",
    "is_secret_key",
    "mask",
]

REDACTED = "[redacted]"

EMBEDDED_MIN = 8
"""Secrets at least this long are removed wherever they occur, inside longer words too.
Shorter ones only as a whole word: ``abc`` would otherwise eat into ``abcdef``."""

_SECRET_KEYS = frozenset({"token", "authorization", "secret", "password", "api_key", "apikey"})
_SECRET_SUFFIXES = ("_token", "_secret", "_password", "_api_key")

# RFC 6750 b64token. A bearer value must hold a digit, so prose ("Bearer token missing")
# keeps its words; a configured token is removed by value whatever it looks like.
_BEARER = r"\bbearer\s+(?=[A-Za-z0-9\-._~+/]*\d)"
# ``Authorization: X``, ``authorization=X``, ``"Authorization": "Bearer X"``: X goes.
_AUTHORIZATION = r"\bauthorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token)\s+)?"
_CREDENTIAL = re.compile(
    rf"(?i)(?P<lead>{_BEARER}|{_AUTHORIZATION})"
    # Never the scheme word itself: "Authorization: Bearer [redacted]" is done already.
    r"(?P<value>(?!(?:bearer|basic|token)\s)[A-Za-z0-9\-._~+/]+=*)"
)


def is_secret_key(key: object) -> bool:
    """Whether a setting or event key named ``key`` holds a secret by its name."""
    name = str(key).lower()
    return name in _SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)


def _spellings(secret: str) -> set[str]:
    """``secret`` as it may appear in a text: itself, JSON-escaped, URL-encoded."""
    return {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote_plus(secret)}


def _pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    spellings = {
        spelling for secret in secrets if secret.strip() for spelling in _spellings(secret)
    }
    if not spellings:
        return None
    parts = []
    # Longest first: a secret that contains another is removed whole.
    for spelling in sorted(spellings, key=lambda s: (-len(s), s)):
        escaped = re.escape(spelling)
        parts.append(escaped if len(spelling) >= EMBEDDED_MIN else rf"(?<!\w){escaped}(?!\w)")
    return re.compile("|".join(parts))


class Scrubber:
    """Removes the configured secrets, and credentials recognisable by form, from texts.

    Build one from the configuration's secrets and use it wherever a text leaves the
    process (logs, the store, reports, command output).
    """

    __slots__ = ("_known",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._known = _pattern(secrets)

    @overload
    def __call__(self, text: str) -> str: ...
    @overload
    def __call__(self, text: None) -> None: ...
    def __call__(self, text: str | None) -> str | None:
        """``text`` with every secret replaced by `REDACTED` (None stays None)."""
        if not text:
            return text
        if self._known is not None:
            text = self._known.sub(REDACTED, text)
        return _CREDENTIAL.sub(lambda m: m.group("lead") + REDACTED, text)

    def stream(self, out: TextIO) -> TextIO:
        """``out`` with every write scrubbed: for commands that print a side's words as
        they come (``check``, ``merge``). Each write must hold whole words (lines do)."""
        return cast(TextIO, _ScrubbedStream(out, self))


class _ScrubbedStream(io.TextIOBase):
    def __init__(self, out: TextIO, scrub: Scrubber) -> None:
        self._out = out
        self._scrub = scrub

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._out.write(self._scrub(text))
        return len(text)

    def flush(self) -> None:
        self._out.flush()


NO_SECRETS = Scrubber()
"""A scrubber that knows no configured secret (it still removes bearer credentials)."""


def mask(value: Scalar) -> Scalar:
    """Hide all but the last three characters of a sensitive value."""
    if value is None:
        return None
    text = str(value)
    return "•" * max(len(text) - 3, 3) + text[-3:] if len(text) > 3 else "•••"


@dataclass(frozen=True, slots=True)
class Redaction:
    """What a configuration hides in what is kept: secrets in texts, sensitive fields'
    values (masked by `mask`)."""

    scrub: Scrubber = NO_SECRETS
    sensitive: frozenset[str] = frozenset()

    def value(self, field: str | None, value: Scalar) -> Scalar:
        """``value`` of ``field``, masked when the field is sensitive."""
        return mask(value) if field in self.sensitive and value is not None else value
