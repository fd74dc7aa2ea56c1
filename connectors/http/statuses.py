"""Turn an API's HTTP failures into the typed exceptions of :mod:`sync.errors`.

The mapping by status is the same for every API; what differs per vendor is where the
error document says what went wrong and how its violations look. A client passes that
in as an `ErrorReader`. Messages name the method and the path (never the query string,
which may carry search terms) and what the API said; tokens and headers never appear.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from sync.errors import (
    ApiError,
    AuthenticationError,
    DeadlineExceeded,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    TransientError,
    ValidationFailed,
    Violation,
)

__all__ = [
    "ErrorReader",
    "Side",
    "deadline_passed",
    "error_from_response",
    "error_from_transport",
    "error_timed_out",
    "error_too_large",
    "json_body",
    "parse_retry_after",
    "retry_after_too_long",
    "seconds_text",
]

PROTOCOL_STATUSES = frozenset({405, 406, 409, 415})


@dataclass(frozen=True, slots=True)
class ErrorReader:
    """What a vendor's error documents say: a message, and the violations of a refusal."""

    message: Callable[[object], str | None]
    violations: Callable[[object], tuple[Violation, ...]] = lambda body: ()


@dataclass(frozen=True, slots=True)
class Side:
    """Which API a client talks to: ``name`` in errors (``flowtly``), ``label`` in messages
    (``Flowtly``), ``settings`` the config table its limits come from (``flowtly``), and
    ``protocol_error`` the exception for answers outside the API's protocol."""

    name: str
    label: str
    settings: str
    protocol_error: type[ApiError] = ApiError
    credentials: str = ""
    """Where the credentials are configured (``[flowtly] token ...``), named in the message
    of a 401 so that a missing or wrong token says which setting to fix."""

    def key(self, setting: str) -> str:
        """The dotted config key of one of this side's settings."""
        return f"{self.settings}.{setting}"


def json_body(response: httpx.Response) -> Any:
    """The parsed body, or None when it is not JSON (a proxy's HTML page, an empty body)
    or is nested past the parser's recursion limit."""
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):
        return None


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


def error_from_response(
    side: Side, reader: ErrorReader, method: str, path: str, response: httpx.Response
) -> ApiError:
    """The exception for a non-2xx ``response`` to ``method path``."""
    status = response.status_code
    body = json_body(response)
    detail = reader.message(body)
    said = detail or response.reason_phrase or "no detail"
    message = f"{method} {path} failed: HTTP {status}: {said}"
    common: dict[str, Any] = {
        "method": method,
        "url": path,
        "status": status,
        "detail": detail,
        "side": side.name,
    }
    if status == 401 and side.credentials:
        common["hint"] = (
            f"{side.label} refused the credentials or got none: check {side.credentials}"
        )
    if status in (401, 403):
        return AuthenticationError(message, **common)
    if status == 404:
        return NotFound(message, **common)
    if status in (400, 422):
        return ValidationFailed(message, violations=reader.violations(body), **common)
    if status in PROTOCOL_STATUSES:
        return MethodNotAllowed(message, **common)
    if status == 429:
        retry_after = parse_retry_after(
            response.headers.get("Retry-After"), now=_server_now(response)
        )
        return RateLimited(message, retry_after=retry_after, **common)
    if status >= 500:
        return TransientError(message, **common)
    return side.protocol_error(message, **common)


def error_from_transport(
    side: Side, method: str, path: str, exc: httpx.TransportError
) -> TransientError:
    """The exception for a request that got no response (timeout, refused, reset)."""
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    reason = str(exc) or type(exc).__name__
    return TransientError(
        f"{method} {path} {kind}: {type(exc).__name__}: {reason}",
        method=method,
        url=path,
        status=None,
        detail=reason,
        side=side.name,
    )


def seconds_text(seconds: float) -> str:
    """``300`` for 300.0, ``44.8`` for 44.777, ``0.25`` for 0.25, ``1000000000`` for 1e9."""
    digits = 0 if seconds >= 100 else 1 if seconds >= 10 else 3
    return f"{seconds:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{seconds:.0f}"


def error_timed_out(
    side: Side,
    method: str,
    path: str,
    *,
    seconds: float,
    key: str,
    status: int | None,
    received: int,
) -> TransientError:
    """An attempt whose answer was not complete within ``seconds`` (the limit ``key``)."""
    if status is None:
        arrived = "no response arrived"
    else:
        arrived = f"the HTTP {status} headers and {received:,} bytes of the body arrived"
    return TransientError(
        f"{method} {path} timed out: {side.label}'s answer was not complete within "
        f"{seconds_text(seconds)} s ({key}); {arrived}",
        method=method,
        url=path,
        status=None,
        detail=arrived,
        side=side.name,
    )


def error_too_large(
    side: Side, method: str, path: str, *, limit: int, key: str, status: int
) -> ApiError:
    """An answer whose body passed ``limit`` bytes; it is not read any further."""
    return side.protocol_error(
        f"{method} {path}: {side.label}'s answer (HTTP {status}) is larger than {limit:,} "
        f"bytes ({key}); stopped reading it",
        method=method,
        url=path,
        status=status,
        side=side.name,
    )


def retry_after_too_long(
    side: Side, method: str, path: str, *, retry_after: float, limit: float, key: str
) -> DeadlineExceeded:
    """The API asked for a wait longer than we sit through."""
    return DeadlineExceeded(
        key,
        f"{side.label} asked to wait {seconds_text(retry_after)} s (Retry-After) on {method} "
        f"{path}; more than {key} ({seconds_text(limit)} s), so the run stops",
    )


def deadline_passed(
    side: Side, method: str, path: str, *, seconds: float, key: str, attempts: int, last: ApiError
) -> DeadlineExceeded:
    """A request that got no usable answer within its whole time budget."""
    return DeadlineExceeded(
        key,
        f"{method} {path}: no usable answer from {side.label} within {seconds_text(seconds)} s "
        f"({key}) over {attempts} attempt(s); the last: {last}",
    )
