"""What Flowtly's error documents say: the message of an RFC 7807 / Hydra error, and
API Platform's constraint violations. The mapping by status is the HTTP kit's
(`connectors.http.statuses`); this is the part only Flowtly's dialect knows.
"""

from __future__ import annotations

from connectors.http.statuses import ErrorReader, parse_retry_after
from sync.errors import Violation

__all__ = ["FLOWTLY_ERRORS", "flowtly_message", "parse_retry_after", "parse_violations"]

_MESSAGE_KEYS = ("detail", "hydra:description", "description", "title", "hydra:title", "message")
_MAX_MESSAGE = 500


def flowtly_message(body: object) -> str | None:
    """What Flowtly said in an error document (RFC 7807 or legacy Hydra), if anything."""
    if not isinstance(body, dict):
        return None
    for key in _MESSAGE_KEYS:
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            text = value.strip()
            return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
    return None


def parse_violations(body: object) -> tuple[Violation, ...]:
    """The ``violations`` of an API Platform validation document, in the server's order."""
    if not isinstance(body, dict):
        return ()
    raw = body.get("violations")
    if not isinstance(raw, list):
        return ()
    found: list[Violation] = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        path = item.get("propertyPath")
        message = item.get("message")
        code = item.get("code")
        found.append(
            Violation(
                property_path=path if isinstance(path, str) else "",
                message=message if isinstance(message, str) else "",
                code=code if isinstance(code, str) else None,
            )
        )
    return tuple(found)


FLOWTLY_ERRORS = ErrorReader(flowtly_message, parse_violations)
"""How the HTTP kit reads Flowtly's error documents."""
