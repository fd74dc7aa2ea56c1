"""Turn Flowtly's HTTP failures into the typed exceptions of :mod:`sync.errors`.

Messages name the method, the path (never the query string, which may carry search terms)
and what Flowtly said; the token and the request headers never appear in them.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from sync.errors import (
    AuthenticationError,
    DeadlineExceeded,
    FlowtlyError,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    TransientError,
    ValidationFailed,
    Violation,
)

__all__ = [
    "deadline_passed",
    "error_from_response",
    "error_from_transport",
    "error_timed_out",
    "error_too_large",
    "flowtly_message",
    "parse_retry_after",
    "parse_violations",
    "retry_after_too_long",
    "seconds_text",
]

_MESSAGE_KEYS = ("detail", "hydra:description", "description", "title", "hydra:title", "message")
_MAX_MESSAGE = 500
_PROTOCOL_STATUSES = frozenset({405, 406, 409, 415})


def _json_body(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    # Not JSON (a proxy's HTML page, an empty body) or nested past the parser's recursion
    # limit: no detail to report.
    except (ValueError, RecursionError):
        return None


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


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds from delta-seconds or an HTTP date (relative to ``now``).

    None when absent or unreadable; never negative.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive result means "-0000"
        when = when.replace(tzinfo=UTC)
    reference = now or datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


def _server_now(response: httpx.Response) -> datetime | None:
    """The server's ``Date``: measuring Retry-After against it cancels clock skew."""
    header = response.headers.get("Date")
    if not header:
        return None
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def error_from_response(method: str, path: str, response: httpx.Response) -> FlowtlyError:
    """The exception for a non-2xx ``response`` to ``method path``."""
    status = response.status_code
    body = _json_body(response)
    detail = flowtly_message(body)
    said = detail or response.reason_phrase or "no detail"
    message = f"{method} {path} failed: HTTP {status}: {said}"
    common: dict[str, Any] = {"method": method, "url": path, "status": status, "detail": detail}
    if status in (401, 403):
        return AuthenticationError(message, **common)
    if status == 404:
        return NotFound(message, **common)
    if status in (400, 422):
        return ValidationFailed(message, violations=parse_violations(body), **common)
    if status in _PROTOCOL_STATUSES:
        return MethodNotAllowed(message, **common)
    if status == 429:
        retry_after = parse_retry_after(
            response.headers.get("Retry-After"), now=_server_now(response)
        )
        return RateLimited(message, retry_after=retry_after, **common)
    if status >= 500:
        return TransientError(message, **common)
    return FlowtlyError(message, **common)


def error_from_transport(method: str, path: str, exc: httpx.TransportError) -> TransientError:
    """The exception for a request that got no response (timeout, refused, reset)."""
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    reason = str(exc) or type(exc).__name__
    return TransientError(
        f"{method} {path} {kind}: {type(exc).__name__}: {reason}",
        method=method,
        url=path,
        status=None,
        detail=reason,
    )


def seconds_text(seconds: float) -> str:
    """``300`` for 300.0, ``44.8`` for 44.777, ``0.25`` for 0.25, ``1000000000`` for 1e9."""
    digits = 0 if seconds >= 100 else 1 if seconds >= 10 else 3
    return f"{seconds:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{seconds:.0f}"


def error_timed_out(
    method: str, path: str, *, seconds: float, key: str, status: int | None, received: int
) -> TransientError:
    """An attempt whose answer was not complete within ``seconds`` (the limit ``key``)."""
    if status is None:
        arrived = "no response arrived"
    else:
        arrived = f"the HTTP {status} headers and {received:,} bytes of the body arrived"
    return TransientError(
        f"{method} {path} timed out: Flowtly's answer was not complete within "
        f"{seconds_text(seconds)} s ({key}); {arrived}",
        method=method,
        url=path,
        status=None,
        detail=arrived,
    )


def error_too_large(method: str, path: str, *, limit: int, key: str, status: int) -> FlowtlyError:
    """An answer whose body passed ``limit`` bytes; it is not read any further."""
    return FlowtlyError(
        f"{method} {path}: Flowtly's answer (HTTP {status}) is larger than {limit:,} bytes "
        f"({key}); stopped reading it",
        method=method,
        url=path,
        status=status,
    )


def retry_after_too_long(
    method: str, path: str, *, retry_after: float, limit: float, key: str
) -> DeadlineExceeded:
    """Flowtly asked for a wait longer than we sit through."""
    return DeadlineExceeded(
        key,
        f"Flowtly asked to wait {seconds_text(retry_after)} s (Retry-After) on {method} "
        f"{path}; more than {key} ({seconds_text(limit)} s), so the run stops",
    )


def deadline_passed(
    method: str, path: str, *, seconds: float, key: str, attempts: int, last: FlowtlyError
) -> DeadlineExceeded:
    """A request that got no usable answer within its whole time budget."""
    return DeadlineExceeded(
        key,
        f"{method} {path}: no usable answer from Flowtly within {seconds_text(seconds)} s "
        f"({key}) over {attempts} attempt(s); the last: {last}",
    )
